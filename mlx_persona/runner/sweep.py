"""Sweeps: the same recipe run once per value of one setting, then one report comparing them.

    sweep: {sft.fine_tune_type: [lora, dora, full]}      # in a recipe, or
    mlx-persona run RECIPE --sweep sft.fine_tune_type=lora,dora,full

Each value is an ordinary run, ``runs/<name>-<value>/`` (so each one resumes, and each gets its
own report and twin). The comparison, ``runs/<name>-compare.md`` and ``.html``, puts side by
side what tells the variants apart: the SFT validation loss, the eval metrics of each variant's
final twin, peak memory and time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_write_text
from mlx_persona.core.settings import parse_override


def parse_sweep(spec: Any, source: str = "--sweep") -> tuple[str, list]:
    """``key=v1,v2`` or ``{key: [v1, v2]}`` -> (dotted key, [values])."""
    if isinstance(spec, dict):
        if len(spec) != 1:
            raise PersonaError(f"{source}: sweep one setting at a time, e.g. {{sft.fine_tune_type: [lora, dora]}}")
        key, values = next(iter(spec.items()))
        values = values if isinstance(values, list) else [values]
    else:
        keys, raw = parse_override(str(spec))
        key = ".".join(keys)
        values = raw if isinstance(raw, list) else [v.strip() for v in str(raw).split(",") if v.strip()]
    if len(values) < 2:
        raise PersonaError(f"{source}: give at least two values for {key}")
    return str(key), values


def variant_name(base: str, value) -> str:
    return f"{base}-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value))


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _twin_metrics(ev: dict) -> tuple[str, dict]:
    models = ev.get("models", {}) if ev else {}
    for name in ("dpo", "sft"):
        if name in models:
            return name, models[name]
    return "-", {}


def _num(d: dict, *path, fmt="{:.3f}") -> str:
    for p in path:
        d = d.get(p) if isinstance(d, dict) else None
    return fmt.format(d) if isinstance(d, (int, float)) else "-"


def compare(runs_root: Path, base: str, key: str, values: list) -> tuple[Path, Path]:
    """Write the comparison of the sweep's runs; returns (markdown, html)."""
    from mlx_persona.report.render import to_html, to_markdown

    headers = [
        key,
        "SFT best val loss",
        "twin",
        "perplexity",
        "similarity (mean)",
        "twin score",
        "slop / 1k words",
        "median words (real)",
        "peak memory GB",
        "minutes",
    ]
    rows = []
    for v in values:
        run = runs_root / variant_name(base, v)
        m = _read(run / layout.MANIFEST) or {}
        stages = m.get("stages", {})
        sft = _read(run / layout.SFT_DIR / layout.STATUS) or {}
        which, tm = _twin_metrics(_read(run / layout.EVAL_DIR / layout.EVAL_METRICS))
        peaks = [s.get("peak_memory_gb") for s in stages.values() if isinstance(s.get("peak_memory_gb"), (int, float))]
        secs = sum(s.get("seconds") or 0 for s in stages.values() if isinstance(s, dict))
        length = tm.get("style", {}).get("length", {}) if tm else {}
        words = f"{length.get('median_words', '-')} ({length.get('real_median_words', '-')})" if length else "-"
        rows.append(
            [
                str(v),
                _num(sft, "best_val_loss", fmt="{:.4f}"),
                which,
                _num(tm, "perplexity", "perplexity", fmt="{:.1f}"),
                _num(tm, "similarity", "mean"),
                _num(tm, "twin_score", "share", fmt="{:.2f}"),
                _num(tm, "style", "slop", "per_1000_words", fmt="{:.1f}"),
                words,
                f"{max(peaks):.2f}" if peaks else "-",
                f"{secs / 60:.1f}",
            ]
        )
    blocks = [
        ("h1", f"{base}: {key} compared"),
        ("p", f"One run per value of {key}; each run folder has its own report and twin."),
        ("table", headers, rows),
        ("list", [f"{v}: {runs_root / variant_name(base, v)}" for v in values]),
    ]
    md = runs_root / f"{base}-compare.md"
    html = runs_root / f"{base}-compare.html"
    atomic_write_text(md, to_markdown(blocks, runs_root, "."))
    atomic_write_text(html, to_html(blocks, f"{base}: {key} compared"))
    return md, html
