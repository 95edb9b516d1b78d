"""Eval stage: ``mlx-persona eval`` (parent) and ``python -m mlx_persona.eval`` (one model).

The story, in the parent:

1. find the test split and the models (base, SFT, DPO; :mod:`mlx_persona.eval.models`);
2. for each model, a child process (``python -m mlx_persona.eval --name ... --model ...``)
   measures perplexity, generates one reply per test prompt (batched) and times it, writes
   ``eval/generations/<name>.json`` and exits, handing its memory back to the OS;
3. with no LLM left in memory, embed the real and generated replies with all-MiniLM-L6-v2 and
   compute similarity, twin score and style (:mod:`mlx_persona.eval.metrics`);
4. train the style classifier on the train split (the person against the other speakers) and
   score every model's replies with it: style-fidelity (:mod:`mlx_persona.data.fidelity`);
5. resample the test conversations: a 95% interval for every number and for every difference
   between two models, real or noise (:mod:`mlx_persona.eval.intervals`);
6. the leakage check (:mod:`mlx_persona.eval.leakage`): personal data from the training data
   that a model says back, in its test replies or its replies to probing questions;
7. write ``eval/metrics.json`` (``twin``: the model the caller names the twin, else null) and
   ``eval/samples.jsonl`` (prompt, real, base, sft, dpo).

Anything missing (no test split, a model that is absent or fails to load, no embedder) is listed
under ``skipped`` with its reason; what can be computed still is.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import click

from mlx_persona.core import layout
from mlx_persona.core.blas import fast_blas_env
from mlx_persona.core.child import child_error, child_main
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_write_json, atomic_write_text
from mlx_persona.eval.bootstrap import RESAMPLES, SEED
from mlx_persona.eval.models import find_models, load_test_split, prompt_text

MODEL_NAMES = ("base", "sft", "dpo")
EMBED_ERRORS = (PersonaError, ImportError, OSError)  # no MiniLM here: what needs it is skipped


def _run_child(spec, test: Path, out_json: Path, settings: dict, log: Callable) -> str | None:
    """Evaluate one model in its own process; return None on success, else the reason it failed."""
    cmd = [
        sys.executable,
        "-m",
        "mlx_persona.eval",
        "--name",
        spec.name,
        "--model",
        str(spec.model),
        "--test",
        str(test),
        "--out",
        str(out_json),
        "--max-tokens",
        str(settings["max_tokens"]),
        "--batch-size",
        str(settings["batch_size"]),
        "--mode",
        settings["mode"],
    ]
    if spec.adapter:
        cmd += ["--adapter", str(spec.adapter)]
    if settings.get("limit"):
        cmd += ["--limit", str(settings["limit"])]
    if settings.get("probes"):
        cmd += ["--probes", str(settings["probes"])]
    if not settings.get("perplexity", True):
        cmd += ["--no-perplexity"]
    if settings.get("temperature"):
        cmd += ["--samples", str(settings["samples"]), "--temperature", str(settings["temperature"])]
    status = out_json.parent / layout.STATUS  # where the child records a failure (core/child.py)
    status.unlink(missing_ok=True)
    cmd += ["--status", str(status)]
    tail: deque[str] = deque(maxlen=20)
    env = fast_blas_env()  # one OpenBLAS thread unless the user says otherwise (see blas.py)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            tail.append(line)
            log(f"  [{spec.name}] {line}")
    if proc.wait() != 0:
        return (
            child_error(status, proc.pid)
            or f"the eval child exited with code {proc.returncode}: {tail[-1] if tail else 'no output'}"
        )
    return None


def check_sampling(samples: int, temperature: float, where: str = "eval") -> None:
    """Several replies per prompt need sampling: greedy decoding would give the same one each time."""
    if samples < 1:
        raise PersonaError(f"{where}: samples must be at least 1 (got {samples})")
    if temperature < 0:
        raise PersonaError(f"{where}: temperature must not be negative (got {temperature})")
    if samples > 1 and temperature == 0:
        raise PersonaError(
            f"{where}: samples {samples} needs a temperature above 0 (greedy replies to one prompt are all the same)"
        )


def _embed_all(embed: Callable, real: list[str], replies: dict[str, list[str]], samples: int = 1):
    """Embeddings of the real replies and each model's replies, in one call of ``embed``; each
    real reply is embedded once and repeated for the ``samples`` replies of its conversation."""
    import numpy as np

    names = list(replies)
    vecs = embed(real + [t for n in names for t in replies[n]])
    n, k = len(real), len(real) * samples
    real_emb = np.repeat(vecs[:n], samples, axis=0)
    return real_emb, {name: vecs[n + k * i : n + k * (i + 1)] for i, name in enumerate(names)}


def _style_fidelity(
    result: dict, train: Path, held_out: list[Path], real: list[str], replies: dict[str, list[str]], embed: Callable
) -> dict:
    """Train the style classifier, score the real and generated replies; P(person) per model."""
    from mlx_persona.data import fidelity

    if not train.is_file():
        result["skipped"].append(
            {
                "item": "style-fidelity",
                "reason": f"no train split at {train} (the style classifier learns the person from it; give --train)",
            }
        )
        return {}
    try:
        clf, record, why = fidelity.build(train, held_out, embed)
    except (OSError, UnicodeDecodeError) as e:
        result["skipped"].append({"item": "style-fidelity", "reason": f"{train}: cannot read ({type(e).__name__})"})
        return {}
    result["style_classifier"] = record
    if clf is None:
        result["skipped"].append({"item": "style-fidelity", "reason": why})
        return {}
    result["real"]["style_fidelity"] = fidelity.summary(clf.p_person(real))  # the ceiling
    scores = {name: clf.p_person(texts) for name, texts in replies.items()}
    for name, p in scores.items():
        result["models"][name]["style_fidelity"] = fidelity.summary(p)
    return scores


def run_eval(
    test: Path | None,
    out_dir: Path,
    specs: list,
    skipped: list[dict],
    max_tokens: int | None = None,
    batch_size: int = 16,
    limit: int | None = None,
    mode: str = "batched",
    perplexity: bool = True,
    log: Callable = print,
    train: Path | None = None,
    twin: str | None = None,
    embedder: Callable | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    checks: bool = True,
    samples: int = 1,
    temperature: float = 0.0,
) -> dict:
    """Evaluate ``specs`` on ``test``; write metrics.json and samples.jsonl into ``out_dir``.

    ``train``: the split the style classifier learns from (default: ``train.jsonl`` beside
    ``test``; ``valid.jsonl`` beside it and ``test`` check it). ``twin``: the model the caller
    calls the twin, recorded as is. ``embedder``: texts -> unit vectors (default MiniLM).
    ``checks=False`` leaves out what only a report needs (the style classifier, the bootstrap
    intervals and the leakage probes): the twin pick compares replies and nothing else.
    ``samples`` > 1: that many replies per test prompt, sampled at ``temperature`` (the twin as
    chat answers, not one greedy decoding); every figure is over all of them, and the intervals
    resample whole conversations with their replies. ``max_tokens`` None: room for the
    person's long replies, sized on the train split (:func:`mlx_persona.data.stats.room_for`).
    """
    from mlx_persona.eval import intervals, leakage
    from mlx_persona.eval import metrics as eval_metrics
    from mlx_persona.models.embed import pair_similarity

    if twin is not None and twin not in MODEL_NAMES:
        raise PersonaError(f"--twin: one of {', '.join(MODEL_NAMES)} (got {twin!r})")
    check_sampling(samples, temperature)
    out_dir = Path(out_dir)
    tic = time.perf_counter()
    if max_tokens is None:  # sized to the person's replies: a cut reply would score as less like them
        from mlx_persona.data.stats import room_for

        split = Path(train) if train else Path(test).parent / layout.TRAIN_SPLIT if test else Path()
        max_tokens, why = room_for(split, specs[0].model if specs else None)
        log(f"eval: replies up to {max_tokens} tokens ({why})")
    settings = {
        "max_tokens": max_tokens,
        "batch_size": batch_size,
        "limit": limit,
        "mode": mode,
        "perplexity": perplexity,
        "samples": samples,
        "temperature": temperature,
    }
    result = {
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "settings": settings,
        "twin": twin,
        "test": {"path": str(test) if test else None},
        "models": {},
        "skipped": list(skipped),
    }
    convs: list[dict] = []
    if test is None or not Path(test).is_file():
        result["skipped"].append(
            {"item": "all metrics", "reason": f"no test split at {test}" if test else "no test split given"}
        )
    else:
        convs, bad = load_test_split(Path(test), limit)
        result["test"].update(conversations=len(convs), lines_left_out=len(bad), first_problems=bad[:10])
        if not convs:
            result["skipped"].append(
                {"item": "all metrics", "reason": f"{test}: no usable conversation (a prompt, then an assistant reply)"}
            )
    real = [c["messages"][-1]["content"] for c in convs]
    # one entry per generated reply: conversation i's replies are i*samples .. i*samples+samples-1
    prompts = [prompt_text(c) for c in convs for _ in range(samples)]
    real_each = [r for r in real for _ in range(samples)]

    replies: dict[str, list[str]] = {}
    probe_replies: dict[str, list[str]] = {}
    per_sample: dict[str, dict] = {}  # model -> per-conversation inputs of intervals.statistics
    data_dir = Path(train).parent if train else Path(test).parent if test else None
    if convs:
        gen_dir = out_dir / layout.GENERATIONS_DIR
        gen_dir.mkdir(parents=True, exist_ok=True)
        # the child reads exactly the conversations we kept, in our order
        subset = gen_dir / layout.EVAL_TEST_USED
        atomic_write_text(subset, "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in convs))
        probes = gen_dir / "probes.jsonl" if checks else None  # the leakage check's questions
        if probes:  # with the training system prompt
            system = leakage.training_system(data_dir)
            atomic_write_text(probes, "".join(json.dumps(c) + "\n" for c in leakage.probe_conversations(system)))
        for spec in specs:
            if spec.same_as in result["models"]:  # the same model: the same replies and figures
                log(f"eval {spec.name}: {spec.describe()} is the {spec.same_as} model (its stage kept step 0)")
                replies[spec.name] = list(replies[spec.same_as])
                probe_replies[spec.name] = list(probe_replies[spec.same_as])
                per_sample[spec.name] = copy.deepcopy(per_sample[spec.same_as])
                result["models"][spec.name] = {
                    **copy.deepcopy(result["models"][spec.same_as]),
                    "source": spec.describe(),
                    "same_as": spec.same_as,
                    "note": f"the {spec.name} stage kept its step-0 adapter: this is the {spec.same_as} model, "
                    "so its figures are the same",
                }
                continue
            log(f"eval {spec.name}: {spec.describe()}")
            out_json = gen_dir / f"{spec.name}.json"
            out_json.unlink(missing_ok=True)
            why = _run_child(spec, subset, out_json, {**settings, "limit": None, "probes": probes}, log)
            if why is not None:
                result["skipped"].append({"item": spec.name, "reason": why})
                continue
            child = json.loads(out_json.read_text())
            replies[spec.name] = child.pop("replies")
            probe_replies[spec.name] = child.pop("probe_replies", [])
            per_sample[spec.name] = {  # nll_sum, tokens: per conversation, repeated for each of its replies
                k: [v for v in vals for _ in range(samples)]
                for k, vals in child.get("perplexity", {}).pop("per_sample", {}).items()
            }
            result["models"][spec.name] = {"source": spec.describe(), **child}

    if replies:
        result["real"] = eval_metrics.real_style(real)
        if embedder is None:
            from mlx_persona.models.embed import embed as embedder
        try:
            real_emb, emb = _embed_all(embedder, real, replies, samples)
        except EMBED_ERRORS as e:
            reason = e.message if isinstance(e, PersonaError) else f"{type(e).__name__}: {e}"
            result["skipped"].append({"item": "similarity, twin score and style-fidelity", "reason": reason})
            for name, texts in replies.items():
                result["models"][name]["style"] = eval_metrics.style_metrics(texts, real_each)
        else:
            base_emb = emb.get("base")
            if base_emb is None and checks:
                result["skipped"].append({"item": "twin score", "reason": "needs the base model's replies"})
            for name, texts in replies.items():
                twin_base = base_emb if name != "base" else None
                result["models"][name].update(
                    eval_metrics.model_metrics(prompts, real_each, texts, emb[name], real_emb, twin_base)
                )
                per_sample[name]["sims"] = pair_similarity(emb[name], real_emb)
                if twin_base is not None:
                    per_sample[name]["closer"] = eval_metrics.closer_to_real(emb[name], real_emb, twin_base)
            train = Path(train) if train else Path(test).parent / layout.TRAIN_SPLIT
            held_out = [train.parent / layout.VALID_SPLIT, Path(test)]
            for name, p in (
                _style_fidelity(result, train, held_out, real, replies, embedder) if checks else {}
            ).items():
                per_sample[name]["p_person"] = p
        if checks:
            stats = {name: intervals.statistics(replies[name], real_each, **per_sample[name]) for name in replies}
            result["intervals"] = intervals.intervals(stats, len(real), resamples, seed, group=samples)
    if replies and checks:
        result["leakage"] = leakage.check(leakage.known_pii(leakage.training_texts(data_dir)), replies, probe_replies)
        for name in result["leakage"]["flagged"]:
            log(
                f"warning: {name} says back personal data from its training data ({result['leakage']['models'][name]['leaked']} distinct)"
            )
    result["seconds"] = round(time.perf_counter() - tic, 3)

    atomic_write_json(out_dir / layout.EVAL_METRICS, result)
    rows = [
        {
            "prompt": p,
            "real": r,
            **({"sample": i % samples} if samples > 1 else {}),
            **{n: replies[n][i] if n in replies else None for n in MODEL_NAMES},
        }
        for i, (p, r) in enumerate(zip(prompts, real_each))
    ]
    atomic_write_text(out_dir / layout.EVAL_SAMPLES, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    for s in result["skipped"]:
        log(f"skipped {s['item']}: {s['reason']}")
    return result


# -- the command (parent) -----------------------------------------------------------------------


@click.command("eval")
@click.argument("run_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--base", help="Base model: folder, hub id or 'default' (run folder: from its recipe).")
@click.option("--sft-adapter", type=click.Path(path_type=Path), help="SFT adapter folder, applied on the base.")
@click.option("--dpo", type=click.Path(path_type=Path), help="DPO twin: a fused model folder or an adapter folder.")
@click.option(
    "--test",
    "test",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Test split, mlx_lm chat JSONL (run folder: clean/test.jsonl).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder (run folder: eval/).")
@click.option(
    "--train",
    "train",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Train split the style classifier learns the person from (default: train.jsonl beside the test split).",
)
@click.option(
    "--twin", type=click.Choice(MODEL_NAMES), help="The model this run calls the twin (recorded in metrics.json)."
)
@click.option("--limit", type=click.IntRange(1), help="Evaluate on the first N test conversations only.")
@click.option(
    "--max-tokens",
    type=click.IntRange(1),
    help="Longest generated reply, in tokens (default: 1.5x the person's 99th-percentile train reply, at least 64).",
)
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1), help="Prompts generated together.")
@click.option("--no-perplexity", is_flag=True, help="Skip the perplexity pass.")
@click.option(
    "--samples",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Replies per test prompt; more than 1 samples them at --temperature and measures over all of them.",
)
@click.option(
    "--temperature",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Sampling temperature of the test replies (0: greedy; chat answers at 0.7).",
)
def eval_command(
    run_dir,
    base,
    sft_adapter,
    dpo,
    test,
    out,
    train,
    twin,
    limit,
    max_tokens,
    batch_size,
    no_perplexity,
    samples,
    temperature,
) -> None:
    """Measure base, SFT and DPO on the held-out test split: perplexity, similarity, style, speed.

    Give a run folder, or the models and the test split explicitly. Writes metrics.json (with
    style-fidelity and 95% bootstrap intervals) and samples.jsonl; whatever cannot be measured
    is listed as skipped with the reason.
    """
    from rich.console import Console

    err = Console(stderr=True)
    if run_dir is None and out is None:
        raise PersonaError("give a run folder or --out for the results")
    if run_dir is not None and not run_dir.is_dir():
        raise PersonaError(f"run folder not found: {run_dir}")
    test = test or (run_dir / layout.CLEAN_DIR / layout.TEST_SPLIT if run_dir else None)
    out = out or run_dir / layout.EVAL_DIR
    specs, skipped = find_models(run_dir, base=base, sft_adapter=sft_adapter, dpo=dpo)
    result = run_eval(
        test,
        out,
        specs,
        skipped,
        max_tokens=max_tokens,
        batch_size=batch_size,
        limit=limit,
        perplexity=not no_perplexity,
        log=lambda m: err.print(m, markup=False, highlight=False),
        train=train,
        twin=twin,
        samples=samples,
        temperature=temperature,
    )
    _print_summary(result)
    click.echo(str(out / layout.EVAL_METRICS))


def _print_summary(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    if not result["models"]:
        return
    table = Table(title="eval")
    for col in ("model", "perplexity", "similarity", "≥ 0.7", "twin score", "style-fidelity", "slop/1k words", "tok/s"):
        table.add_column(col)
    for name, m in result["models"].items():

        def f(v, fmt="{:.3f}"):
            return fmt.format(v) if isinstance(v, (int, float)) else "-"

        sim = m.get("similarity", {})
        table.add_row(
            name,
            f(m.get("perplexity", {}).get("perplexity"), "{:.2f}"),
            f(sim.get("mean")),
            f(sim.get("share_ge_threshold"), "{:.0%}"),
            f(m.get("twin_score", {}).get("share"), "{:.0%}"),
            f(m.get("style_fidelity", {}).get("mean"), "{:.2f}"),
            f(m.get("style", {}).get("slop", {}).get("per_1000_words"), "{:.1f}"),
            f(m.get("speed", {}).get("tokens_per_sec"), "{:.1f}"),
        )
    real = result.get("real", {}).get("style_fidelity", {}).get("mean")
    if real is not None:
        table.add_row("real replies", "-", "-", "-", "-", f"{real:.2f}", "-", "-")
    Console(stderr=True).print(table)
    held = result.get("style_classifier", {}).get("held_out", {})
    if "balanced_accuracy" in held:
        Console(stderr=True).print(
            f"style classifier: balanced accuracy {held['balanced_accuracy']:.0%} on "
            f"{held['person_messages'] + held['other_messages']} held-out messages",
            highlight=False,
        )


# -- the child: one model ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mlx_persona.eval", description="Evaluate one model (child process).")
    p.add_argument("--name", required=True, choices=MODEL_NAMES, help="Which model this is.")
    p.add_argument("--model", required=True, help="Local MLX model folder.")
    p.add_argument("--adapter", help="Adapter folder applied on --model.")
    p.add_argument("--test", required=True, help="Test conversations, mlx_lm chat JSONL.")
    p.add_argument("--out", required=True, help="JSON file for perplexity, replies and speed.")
    p.add_argument("--limit", type=int, help="First N conversations only.")
    p.add_argument("--max-tokens", type=int, default=96, help="Longest generated reply, in tokens.")
    p.add_argument("--batch-size", type=int, default=16, help="Prompts generated together.")
    p.add_argument(
        "--mode",
        choices=("batched", "sequential"),
        default="batched",
        help="batched: mlx_lm BatchGenerator; sequential: one stream_generate per prompt (baseline).",
    )
    p.add_argument("--no-perplexity", action="store_true", help="Skip the perplexity pass.")
    p.add_argument("--samples", type=int, default=1, help="Replies per test prompt (more than 1: sampled).")
    p.add_argument("--temperature", type=float, default=0.0, help="Sampling temperature (0: greedy).")
    p.add_argument("--probes", help="Conversations to answer for the leakage check (JSONL); replies not scored.")
    p.add_argument("--status", help="status.json to record a failure in, for the parent.")
    return p


def main(argv=None) -> None:
    from mlx_persona.eval.model import ModelSpec, evaluate_model

    a = build_parser().parse_args(argv)

    def work() -> None:
        try:
            convs, _ = load_test_split(Path(a.test), a.limit)
            probes = load_test_split(Path(a.probes))[0] if a.probes else []
            spec = ModelSpec(a.name, Path(a.model), Path(a.adapter) if a.adapter else None)
            result = evaluate_model(
                spec,
                convs,
                max_tokens=a.max_tokens,
                batch_size=a.batch_size,
                mode=a.mode,
                with_perplexity=not a.no_perplexity,
                log=lambda m: print(m, flush=True),
                probes=probes,
                samples=a.samples,
                temperature=a.temperature,
            )
        except (OSError, ValueError) as e:  # an unreadable model folder or weights that do not fit
            raise PersonaError(f"{a.name}: {type(e).__name__}: {e}") from None
        atomic_write_json(Path(a.out), result)

    child_main(work, Path(a.status) if a.status else None)


if __name__ == "__main__":
    main()
