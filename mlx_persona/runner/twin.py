"""Which model is "the twin": the better of the SFT and DPO models on the validation split.

DPO has to earn its place. After both fused models exist, each answers the validation prompts
(the eval stage's child processes, one model in memory at a time; one greedy reply per prompt, or
``eval.samples`` replies sampled at ``eval.temperature``, as the eval measures), and the replies are
scored against the person's real ones with :func:`mlx_persona.train.select.twin_score` (MiniLM
similarity, length match and habit gaps on one scale, so neither a blank nor a caricature wins).
The DPO model is the twin only when it scores higher than the SFT model; otherwise the SFT model
is. The test split is never looked at here: the eval stage measures the chosen twin on it after.

Written to ``twin/``: the eval stage's ``metrics.json`` and ``samples.jsonl`` on the validation
split, and ``twin.json``::

    {"twin": "dpo", "folder": "dpo_fused", "split": "valid", "prompts": 13,
     "scores": {"sft": {"score": ..., "similarity": ..., ...}, "dpo": {...}},
     "why": "dpo scores 0.412 against sft's 0.380 on 13 validation prompts"}

Chat, the report, the run command's last lines (and anything that serves or exports a run) read
it through :func:`mlx_persona.core.runs.run_twin`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from mlx_persona.core import layout
from mlx_persona.core.runs import atomic_write_json, kept_its_start

CANDIDATES = (("sft", layout.SFT_FUSED_DIR), ("dpo", layout.DPO_FUSED_DIR))


def describe(scores: dict, name: str) -> str:
    s = scores[name]
    return (
        f"{name} {s['score']:.3f} (similarity {s['similarity']:.3f}, length distance "
        f"{s['length_distance']:.3f}, habit distance {s['habit_distance']:.3f})"
    )


def decide(scores: dict, prompts: int) -> tuple[str, str]:
    """(name, why): DPO when it scores strictly higher than SFT, else SFT (or the only one)."""
    if not scores:
        raise ValueError("no model to choose from")
    if len(scores) == 1:
        (name,) = scores
        return name, f"{name} is the only trained model ({describe(scores, name)})"
    if scores["dpo"]["score"] > scores["sft"]["score"]:
        return "dpo", (
            f"dpo scores higher than sft on {prompts} validation prompts: {describe(scores, 'dpo')} "
            f"against {describe(scores, 'sft')}"
        )
    return "sft", (
        f"dpo did not beat sft on {prompts} validation prompts: {describe(scores, 'sft')} "
        f"against {describe(scores, 'dpo')}"
    )


def pick_twin(
    run_dir: Path,
    out: Path,
    max_tokens: int | None,
    batch_size: int,
    limit: int | None = None,
    log: Callable = print,
    embed: Callable | None = None,
    samples: int = 1,
    temperature: float = 0.0,
) -> dict:
    """Generate with each fused model on ``clean/valid.jsonl``, score, decide; write ``twin.json``.

    ``samples``/``temperature``: as the eval stage's (one greedy reply per prompt, or several
    sampled), so the pick measures the models the way the report will; every reply counts.
    """
    from mlx_persona.eval.evaluate import run_eval
    from mlx_persona.eval.models import ModelSpec
    from mlx_persona.train.select import twin_score

    run_dir, out = Path(run_dir), Path(out)
    specs = [ModelSpec(name, run_dir / folder) for name, folder in CANDIDATES if layout.is_model_dir(run_dir / folder)]
    same = kept_its_start(run_dir / layout.DPO_DIR) and len(specs) == 2
    if same:  # DPO kept its step-0 adapter: dpo_fused is the SFT model; nothing to compare
        specs = specs[:1]
    if not specs:
        raise FileNotFoundError(f"{run_dir}: neither {layout.SFT_FUSED_DIR}/ nor {layout.DPO_FUSED_DIR}/ holds a model")
    clean = run_dir / layout.CLEAN_DIR
    result = run_eval(
        clean / layout.VALID_SPLIT,
        out,
        specs,
        [],
        max_tokens=max_tokens,
        batch_size=batch_size,
        limit=limit,
        perplexity=False,
        log=log,
        train=clean / layout.TRAIN_SPLIT,
        checks=False,  # replies only: no classifier, intervals or leakage probes for a pick
        samples=samples,
        temperature=temperature,
    )
    rows = [json.loads(line) for line in (out / layout.EVAL_SAMPLES).read_text().splitlines() if line.strip()]
    real = [r["real"] for r in rows]
    scores = {
        s.name: twin_score([r[s.name] or "" for r in rows], real, embed=embed)
        for s in specs
        if rows and all(r.get(s.name) is not None for r in rows)
    }
    if not scores:
        reasons = "; ".join(f"{s['item']}: {s['reason']}" for s in result.get("skipped", []))
        raise RuntimeError(f"no model answered the validation prompts ({reasons or 'see the log'})")
    prompts = len(rows) // samples
    name, why = decide(scores, prompts)
    if samples > 1:
        why += f" ({samples} replies per prompt sampled at temperature {temperature:g})"
    if same:
        why = (
            "the dpo stage kept its step-0 adapter (no validation beat its start), so its model is "
            f"the sft model: {describe(scores, 'sft')}"
        )
    record = {
        "twin": name,
        "folder": dict(CANDIDATES)[name],
        "split": "valid",
        "prompts": prompts,
        "replies_per_prompt": samples,
        "scores": scores,
        "why": why,
    }
    atomic_write_json(out / layout.TWIN_FILE, record)
    log(f"twin: {why}")
    return record
