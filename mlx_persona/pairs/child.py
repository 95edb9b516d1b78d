"""The pair generator's child process: one model answers the prompts, ``python -m mlx_persona.pairs``.

The parent (:func:`mlx_persona.pairs.build.run_pairs`) starts one child per model
(:func:`run_generator`: the base model, then the fused twin), so only one model is in memory at a
time. The child (:func:`main`, :func:`generate_child`) loads its model, answers every prompt not
yet in its replies file with batched sampling (:func:`mlx_persona.models.generate.generate_batched`)
and appends each reply as it finishes; a re-run skips what is answered, so a killed run resumes
where it stopped. It prints its generation stats as one JSON line on stdout and logs to stderr;
a user mistake goes into ``status.json`` for the parent (:mod:`mlx_persona.core.child`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from mlx_persona.core import layout
from mlx_persona.core.child import child_main, run_child
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_write_text
from mlx_persona.pairs.config import PairsConfig
from mlx_persona.pairs.prompts import chat_messages, read_samples


def generate_child(
    model_dir: Path,
    prompts_file: Path,
    out_file: Path,
    cfg: PairsConfig,
    only: set | None = None,
    log: Callable = print,
    samples: int = 1,
) -> dict:
    """Answer every prompt ``samples`` times with ``model_dir``, skipping the replies already in
    ``out_file``; append replies as they finish."""
    import mlx.core as mx

    from mlx_persona.models.generate import chat_prompt, generate_batched, load_for_generation, make_sampler

    prompts = [json.loads(line) for line in prompts_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    done = read_samples(out_file)
    todo = [
        (p, j) for p in prompts if only is None or p["id"] in only for j in range(len(done.get(p["id"], ())), samples)
    ]
    if done and out_file.read_bytes()[-1:] != b"\n":  # a killed child left half a line: cut it
        keep = out_file.read_bytes().rsplit(b"\n", 1)[0]
        atomic_write_text(out_file, keep.decode("utf-8", "replace") + "\n")
    on_disk = sum(map(len, done.values()))
    log(f"{model_dir.name}: {on_disk} replies on disk, {len(todo)} to generate")
    if not todo:
        return {"generated": 0}
    model, tokenizer = load_for_generation(model_dir)
    mx.random.seed(cfg.seed + on_disk)  # a resumed run draws fresh samples, not the same ones again
    ids = [chat_prompt(tokenizer, chat_messages(p)) for p, _ in todo]
    with open(out_file, "a", encoding="utf-8") as f:

        def write(reply):
            p, j = todo[reply.index]
            record = {"id": p["id"], "text": reply.text, "finish_reason": reply.finish_reason, "tokens": reply.tokens}
            if samples > 1:
                record["sample"] = j
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()

        _, stats = generate_batched(
            model,
            tokenizer,
            ids,
            cfg.max_tokens,
            cfg.batch_size,
            make_sampler(cfg.temperature, cfg.top_p),
            on_reply=write,
        )
    log(
        f"{model_dir.name}: {stats['generated_tokens']} tokens in {stats['seconds']:.1f} s "
        f"({stats['tokens_per_sec']:.1f} tokens/s, batch {cfg.batch_size})"
    )
    return {"generated": len(todo), **stats}


def run_generator(model_dir: Path, out: Path, role: str, only: set | None, log: Callable, samples: int = 1) -> dict:
    """Run the child for ``role`` (base or twin) on the prompts in ``out``, answering only the ids in
    ``only`` (all when None), ``samples`` times each; relay its log, and return its generation stats."""
    cmd = [
        sys.executable,
        "-m",
        "mlx_persona.pairs",
        "--model",
        str(model_dir),
        "--prompts",
        str(out / layout.PAIRS_PROMPTS),
        "--out",
        str(out / layout.replies_file(role)),
        "--config",
        str(out / layout.stage_config("pairs")),
        "--samples",
        str(samples),
    ]
    if only is not None:
        (out / layout.only_file(role)).write_text(json.dumps(sorted(only)))
        cmd += ["--only", str(out / layout.only_file(role))]
    child = run_child(cmd, out / layout.STATUS)
    if child.returncode != 0:
        why = child.error or " | ".join(child.stderr.strip().splitlines()[-3:])
        raise PersonaError(f"pairs: the {role} generator failed: {why}")
    for line in child.stderr.splitlines():
        log(line)
    stdout = child.stdout.strip()
    return json.loads(stdout.splitlines()[-1]) if stdout else {}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m mlx_persona.pairs", description="Pair generator child: one model answers the prompts."
    )
    p.add_argument("--model", required=True, help="MLX model folder (base, or the fused twin).")
    p.add_argument("--prompts", required=True, help="prompts.jsonl written by the parent.")
    p.add_argument("--out", required=True, help="JSONL to append replies to (resumable).")
    p.add_argument("--config", required=True, help="pairs_config.json.")
    p.add_argument("--only", help="JSON list of prompt ids to answer (default: all).")
    p.add_argument("--samples", type=int, default=1, help="Replies per prompt (default: 1).")
    p.add_argument("--status", help="status.json to record a failure in, for the parent.")
    a = p.parse_args(argv)

    def work() -> None:
        cfg = PairsConfig.from_mapping(json.loads(Path(a.config).read_text()))
        only = set(json.loads(Path(a.only).read_text())) if a.only else None
        stats = generate_child(
            Path(a.model),
            Path(a.prompts),
            Path(a.out),
            cfg,
            only,
            log=lambda m: print(m, file=sys.stderr, flush=True),
            samples=a.samples,
        )
        print(json.dumps(stats), flush=True)

    child_main(work, Path(a.status) if a.status else None)
