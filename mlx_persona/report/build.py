"""``mlx-persona report RUN_DIR``: report.md and a self-contained report.html for one run.

Reads what the stages left in the run folder (:mod:`mlx_persona.core.layout`) and never needs a
model: ``manifest.json`` (stage status, timings, budget estimates, peak memory), ``recipe.yaml``,
the training stages' ``metrics.jsonl`` (SFT train/val loss; DPO loss and reward margin) and
the eval outputs (``eval/metrics.json``, ``eval/samples.jsonl``; the results table and its
intervals: :mod:`mlx_persona.report.results`). Whatever is missing becomes a line under "Not in
this report" with its reason; the rest is still written.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path

import click

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_write_text
from mlx_persona.data.style import word_count
from mlx_persona.report.card import card_blocks
from mlx_persona.report.privacy import privacy_blocks
from mlx_persona.report.refresh import refresh_blocks
from mlx_persona.report.render import to_html, to_markdown
from mlx_persona.report.results import MODELS, classifier_note, legend, metrics_table
from mlx_persona.report.results import fmt_value as _fmt

SAMPLE_ROWS = 10  # side-by-side examples shown


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path) -> list[dict]:
    """The JSON objects of a JSONL file; a torn last line (a stage still writing) is skipped."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _hms(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "–"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _stage_peak(run: Path, stage_dir: str, entry: dict) -> float | None:
    if isinstance(entry.get("peak_memory_gb"), (int, float)):
        return float(entry["peak_memory_gb"])
    peaks = [
        e["peak_memory_gb"]
        for e in read_jsonl(run / stage_dir / layout.STAGE_METRICS)
        if isinstance(e.get("peak_memory_gb"), (int, float))
    ]
    return max(peaks) if peaks else None


def build_blocks(run: Path) -> tuple[list, str]:
    """The report's content, in order; also returns its title."""
    from mlx_persona.report import plots  # matplotlib: loaded when a report is built, not at CLI start-up

    manifest = read_json(run / layout.MANIFEST) or {}
    ev = read_json(run / layout.EVAL_DIR / layout.EVAL_METRICS)
    samples = read_jsonl(run / layout.EVAL_DIR / layout.EVAL_SAMPLES)
    sft_events = read_jsonl(run / layout.SFT_DIR / layout.STAGE_METRICS)
    dpo_events = read_jsonl(run / layout.DPO_DIR / layout.STAGE_METRICS)
    missing: list[str] = []
    name = manifest.get("name") or run.name
    title = f"Persona twin report: {name}"
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    blocks: list = [
        ("h1", title),
        (
            "p",
            f"Run folder {run.resolve()} · report written {now}"
            + (f" · eval of {ev['created']}" if ev and ev.get("created") else ""),
        ),
    ]

    chosen = read_json(run / layout.TWIN_DIR / layout.TWIN_FILE) or {}
    if chosen.get("twin"):
        blocks.append(("h2", f"The twin: {chosen['twin']} ({chosen.get('folder')}/)"))
        blocks.append(
            (
                "p",
                f"Chosen on the validation split, never the test split: {chosen.get('why', '')}. "
                "Score = MiniLM similarity to the real reply − |log median length ratio| − habit "
                "distance (emoji, exclamation marks, lower-case starts); DPO is the twin only when it "
                "scores higher than SFT. Chat, and anything that serves or exports this run, use it.",
            )
        )
        rows = [
            [
                name,
                f"{v['score']:.3f}",
                f"{v['similarity']:.3f}",
                f"{v['length_distance']:.3f}",
                f"{v['habit_distance']:.3f}",
            ]
            for name, v in chosen.get("scores", {}).items()
        ]
        if rows:
            blocks.append(("table", ["model", "score", "similarity", "length distance", "habit distance"], rows))

    blocks.append(("h2", "Results on the held-out test split"))
    if ev and ev.get("models"):
        t, settings = ev.get("test", {}), ev.get("settings", {})
        named = f" The run calls {ev['twin']} the twin." if ev.get("twin") in ev["models"] else ""
        k = settings.get("samples") or 1
        how = (
            f"{k} replies per prompt sampled at temperature {settings.get('temperature')}"
            if k > 1
            else "greedy replies"
        )
        blocks.append(
            (
                "p",
                f"{t.get('conversations', '?')} test conversations from {t.get('path')}; "
                f"{how} of up to {settings.get('max_tokens', '?')} tokens. "
                "Similarity: all-MiniLM-L6-v2 cosine to the real reply. Twin score: share of replies "
                "closer to the person's reply than to the base model's (it also rewards a caricature)." + named,
            )
        )
        blocks.append(("table", *metrics_table(ev)))
        blocks += [("p", text) for text in (legend(ev), classifier_note(ev)) if text]
    else:
        missing.append("results: no eval/metrics.json with a measured model (run `mlx-persona eval RUN_DIR`)")
    for s in (ev or {}).get("skipped", []):
        missing.append(f"{s.get('item')}: {s.get('reason')}")

    blocks += refresh_blocks(run, read_json)
    blocks += card_blocks(run, ev)
    blocks += privacy_blocks(run, ev, read_json)

    blocks.append(("h2", "Training curves"))
    plots_before = len(blocks)
    for label, events, plot, stage in (
        ("SFT train and validation loss", sft_events, plots.sft_loss_plot, "sft"),
        ("DPO loss", dpo_events, plots.dpo_loss_plot, "dpo"),
        ("DPO reward margin (chosen − rejected)", dpo_events, plots.dpo_margin_plot, "dpo"),
    ):
        png = plot(events)
        if png:
            blocks.append(("img", label.split(" (")[0].lower().replace(" ", "_"), png, label))
        else:
            missing.append(f"{label}: no {stage}/{layout.STAGE_METRICS} with these values")
    if len(blocks) == plots_before:
        blocks.append(("p", "No training metrics in this run folder (see the list at the end)."))

    if samples:
        lengths = {"real": [word_count(r.get("real") or "") for r in samples]}
        for m in MODELS:
            if any(r.get(m) is not None for r in samples):
                lengths[m] = [word_count(r.get(m) or "") for r in samples]
        png = plots.length_plot(lengths)
        if png:
            blocks += [("h2", "Reply length"), ("img", "reply_length", png, "Words per reply: real against generated")]

    twin = (
        ev["twin"]
        if ev and ev.get("twin") in ev.get("models", {})
        else next((m for m in ("dpo", "sft", "base") if ev and m in ev.get("models", {})), None)
    )
    sim = (ev or {}).get("models", {}).get(twin, {}).get("similarity", {}) if twin else {}
    if sim.get("top"):
        blocks.append(("h2", f"Closest and furthest replies ({twin})"))
        for what in ("top", "bottom"):
            blocks.append(("h3", "Closest to the real reply" if what == "top" else "Furthest from the real reply"))
            blocks.append(
                (
                    "table",
                    ["similarity", "prompt", "real", twin],
                    [[f"{r['similarity']:.3f}", r["prompt"], r["real"], r["reply"]] for r in sim[what]],
                )
            )

    if samples:
        present = [m for m in MODELS if any(r.get(m) is not None for r in samples)]
        blocks += [
            ("h2", f"Side by side (first {min(SAMPLE_ROWS, len(samples))} of {len(samples)})"),
            (
                "table",
                ["prompt", "real", *present],
                [[r.get("prompt"), r.get("real"), *[r.get(m) for m in present]] for r in samples[:SAMPLE_ROWS]],
            ),
        ]
    else:
        missing.append("side-by-side samples: no eval/samples.jsonl rows")

    stages = manifest.get("stages") if isinstance(manifest.get("stages"), dict) else {}
    budget = manifest.get("budget") if isinstance(manifest.get("budget"), dict) else {}
    if not budget and (run / layout.BUDGET).exists():
        budget = read_json(run / layout.BUDGET) or {}
    rows = []
    for stage, stage_dir in (("sft", layout.SFT_DIR), ("dpo", layout.DPO_DIR)):
        est = budget.get(stage) if isinstance(budget.get(stage), dict) else {}
        peak = _stage_peak(run, stage_dir, stages.get(stage, {}) if isinstance(stages.get(stage), dict) else {})
        total = est.get("total_gb") if isinstance(est.get("total_gb"), (int, float)) else None
        if total is None and peak is None:
            continue
        ratio = f"{peak / total:.2f}" if total and peak is not None else "–"
        rows.append([stage, _fmt(total, "{:.2f}"), est.get("verdict", "–"), _fmt(peak, "{:.2f}"), ratio])
    for m, entry in (ev or {}).get("models", {}).items():
        rows.append([f"eval {m}", "–", "–", _fmt(entry.get("peak_memory_gb"), "{:.2f}"), "–"])
    blocks.append(("h2", "Memory: budget estimate against measured peak"))
    if rows:
        blocks.append(
            ("table", ["stage", "estimate (GB)", "verdict", "measured peak (GB)", "measured / estimate"], rows)
        )
    else:
        missing.append("memory: no budget estimate in manifest.json and no measured peak")

    blocks.append(("h2", "Stage timings"))
    if stages:
        blocks.append(
            (
                "table",
                ["stage", "status", "time (h:mm:ss)", "seconds"],
                [
                    [
                        s,
                        "writing this report"
                        if s == "report" and e.get("status") == "running"
                        else e.get("status", "?"),
                        _hms(e.get("seconds")),
                        _fmt(e.get("seconds"), "{:.1f}"),
                    ]
                    for s, e in stages.items()
                    if isinstance(e, dict)
                ],
            )
        )
    else:
        missing.append("stage timings: no manifest.json with stages (the recipe runner writes it)")

    recipe = run / layout.RECIPE
    blocks.append(("h2", "Recipe"))
    if recipe.is_file():
        blocks.append(("pre", recipe.read_text(encoding="utf-8", errors="replace")))
    else:
        missing.append(f"recipe: no {layout.RECIPE} in the run folder")

    if missing:
        blocks += [("h2", "Not in this report"), ("list", missing)]
    return blocks, title


def build_report(run_dir: Path, log: Callable = lambda _m: None) -> tuple[Path, Path]:
    """Write ``report.md`` (+ ``report_files/*.png``) and ``report.html`` into the run folder."""
    run = Path(run_dir)
    if not run.is_dir():
        raise PersonaError(f"run folder not found: {run}")
    blocks, title = build_blocks(run)
    md, html = run / layout.REPORT_MD, run / layout.REPORT_HTML
    atomic_write_text(md, to_markdown(blocks, run / layout.REPORT_FILES, layout.REPORT_FILES))
    atomic_write_text(html, to_html(blocks, title))
    log(f"report: {md} and {html} ({sum(1 for b in blocks if b[0] == 'img')} plots)")
    return md, html


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
def report_command(run_dir: Path) -> None:
    """Write report.md and a self-contained report.html for a run: metrics, curves, samples."""
    md, html = build_report(run_dir)
    click.echo(str(html))
