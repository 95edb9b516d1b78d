"""Child process for budget_accuracy.py: build a random model, train a few steps, print peak memory.

Run as ``python bench/_train_probe.py '<json spec>'``; prints one JSON line. A fresh process per
configuration so one run's buffers never count in the next one's peak.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time


def main(spec: dict) -> dict:
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx_lm.models import llama
    from mlx_lm.tuner.trainer import TrainingArgs, train
    from mlx_lm.tuner.utils import linear_to_lora_layers

    cfg = spec["config"]
    mx.random.seed(0)
    model = llama.Model(llama.ModelArgs.from_dict(cfg))
    if cfg.get("quantization"):
        q = cfg["quantization"]
        nn.quantize(model, group_size=q["group_size"], bits=q["bits"])
    elif spec.get("dtype", "float32") != "float32":
        model.set_dtype(getattr(mx, spec["dtype"]))
    mx.eval(model.parameters())
    model.freeze()
    kind = spec["fine_tune_type"]
    if kind in ("lora", "dora"):
        lora = {"rank": spec["rank"], "scale": 20.0, "dropout": 0.0, "keys": spec.get("keys")}
        linear_to_lora_layers(model, spec["num_layers"], lora, use_dora=kind == "dora")
    else:
        for layer in model.layers[-spec["num_layers"] :]:
            layer.unfreeze()
    mx.eval(model.parameters())
    weights_gb = mx.get_active_memory() / 1e9
    mx.reset_peak_memory()

    seq, bs = spec["max_seq_length"], spec["batch_size"]
    vocab = cfg["vocab_size"]
    data = [([(7 * i + j) % vocab for j in range(seq)], 0) for i in range(max(bs * 2, 4))]
    opt = optim.Adam(learning_rate=1e-5)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArgs(
            batch_size=bs,
            iters=spec.get("iters", 3),
            max_seq_length=seq,
            grad_checkpoint=spec["grad_checkpoint"],
            grad_accumulation_steps=spec.get("grad_accumulation_steps", 1),
            steps_per_report=10**6,
            steps_per_eval=10**6,
            steps_per_save=10**6,
            adapter_file=f"{tmp}/adapters.safetensors",
        )
        tic = time.perf_counter()
        train(model, opt, data, None, args=args)
        secs = time.perf_counter() - tic
    return {"peak_gb": mx.get_peak_memory() / 1e9, "weights_gb": weights_gb, "seconds": secs}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(json.loads(sys.argv[1]))), flush=True)
