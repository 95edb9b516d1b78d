"""DPO's reference pass: the budget's estimate against the measured peak.

The DPO stage scores every pair with the reference model before its first step, a forward pass
without gradients over ``reference_batch_size`` pairs at a time (``dpo/reference.py``). For each
model and batch below: random weights of that shape, one batch of ``pairs`` pairs of ``tokens``
tokens (replies of half that, minus 8) through ``sequence_logps`` with the reply-only head, as
the stage runs it, and ``mx.get_peak_memory()`` against ``Estimate.reference_pass_gb`` for the
same batch (weights included). The goal is the budget's: within ±10%, or ±50 MB under 1 GB
(the estimate's fixed 5 MB overhead is most of the error on the smallest batches). About a
minute on this machine.

    python -m mlx_persona.core.blas python bench/reference_pass.py
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))  # the tiny test models' Qwen2 config

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models import qwen2
from tiny import qwen2_config

from mlx_persona.budget.data import DataShape
from mlx_persona.budget.estimate import estimate
from mlx_persona.dpo.data import Pair, collate
from mlx_persona.dpo.logps import sequence_logps
from mlx_persona.models.head import output_head

# (name, config, dtype, 4-bit)
MODELS = [
    ("qwen2 h256 x4, vocab 400", qwen2_config(256, 4, 400, False), "float32", False),
    ("the same, 4-bit g64", qwen2_config(256, 4, 400, False), "float32", True),
    ("qwen2 h64 x2, vocab 32000", qwen2_config(64, 2, 32000, True), "float32", False),
    ("the same, bfloat16", qwen2_config(64, 2, 32000, True), "bfloat16", False),
]
BATCHES = [(1, 128), (8, 128), (1, 512), (8, 512)]  # (pairs, tokens per row)


def main() -> None:
    rng = random.Random(0)
    print("| model | pairs | tokens | estimate GB | measured GB | error | error MB |")
    print("|---|---|---|---|---|---|---|")
    for name, config, dtype, four_bit in MODELS:
        model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
        model.set_dtype(getattr(mx, dtype))
        saved = {**config, "torch_dtype": dtype}
        if four_bit:
            nn.quantize(model, group_size=64, bits=4)
            saved["quantization"] = {"group_size": 64, "bits": 4}
        mx.eval(model.parameters())
        model.eval()
        head = output_head(model)
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "config.json").write_text(json.dumps(saved))
            for n, tokens in BATCHES:
                reply = tokens // 2 - 8
                pairs = [
                    Pair(
                        [rng.randrange(5, 300) for _ in range(tokens - reply)],
                        [rng.randrange(5, 300) for _ in range(reply)],
                        [rng.randrange(5, 300) for _ in range(reply - 3)],
                        "bench",
                    )
                    for _ in range(n)
                ]
                batch = collate(pairs)
                mx.synchronize()
                mx.clear_cache()
                mx.reset_peak_memory()
                sums, counts = sequence_logps(model, *batch, head=head)
                mx.eval(sums, counts)
                measured = mx.get_peak_memory() / 1e9
                width, reply_width = batch[0].shape[1], batch[3].shape[1]
                data = DataShape("dpo", n, 1, 1, 1, tokens, "bench", width, reply_width)
                est = estimate(
                    tmp, device="cpu", stage="dpo", batch_size=1, num_layers=1, reference_batch_size=n, data=data
                ).reference_pass_gb
                print(
                    f"| {name} | {n} | {tokens} | {est:.3f} | {measured:.3f} | {(est - measured) / measured:+.1%} "
                    f"| {(est - measured) * 1000:+.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
