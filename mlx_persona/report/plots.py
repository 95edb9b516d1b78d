"""Report figures as PNG bytes, drawn with matplotlib's Agg backend (no display needed).

Each function takes parsed ``metrics.jsonl`` events (or eval numbers) and returns the PNG, or
None when there is nothing to draw, so the report can say "no data" instead of failing.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: a training box or CI has no display

from matplotlib.figure import Figure

COLORS = {
    "train": "#1f77b4",
    "val": "#d62728",
    "base": "#7f7f7f",
    "sft": "#1f77b4",
    "dpo": "#2ca02c",
    "real": "#ff7f0e",
}


def series(events: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    """(iterations, values) of the events that carry a number under ``key``."""
    xs, ys = [], []
    for e in events:
        v, it = e.get(key), e.get("iter", e.get("iteration"))
        if isinstance(v, (int, float)) and isinstance(it, (int, float)):
            xs.append(it)
            ys.append(v)
    return xs, ys


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _lines(title: str, ylabel: str, curves: list[tuple[str, list, list, str]]) -> bytes | None:
    curves = [c for c in curves if c[1]]
    if not curves:
        return None
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    for label, xs, ys, color in curves:
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=label, color=color)
    ax.set_title(title)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def sft_loss_plot(events: Sequence[dict]) -> bytes | None:
    """SFT train and validation loss against the step (``val_loss`` at step 0 is the base)."""
    return _lines(
        "SFT loss",
        "loss (persona tokens)",
        [
            ("train", *series(events, "train_loss"), COLORS["train"]),
            ("validation", *series(events, "val_loss"), COLORS["val"]),
        ],
    )


def dpo_loss_plot(events: Sequence[dict]) -> bytes | None:
    return _lines(
        "DPO loss",
        "loss",
        [
            ("train", *series(events, "train_loss"), COLORS["train"]),
            ("validation", *series(events, "val_loss"), COLORS["val"]),
        ],
    )


def dpo_margin_plot(events: Sequence[dict]) -> bytes | None:
    """Reward margin (chosen − rejected, in β-scaled log-ratio units): it should climb."""
    return _lines(
        "DPO reward margin",
        "margin",
        [
            ("train", *series(events, "margin"), COLORS["train"]),
            ("validation", *series(events, "val_margin"), COLORS["val"]),
        ],
    )


def length_plot(lengths: dict[str, list[int]]) -> bytes | None:
    """Words per reply: the person's real replies against each model's, as step histograms."""
    lengths = {k: v for k, v in lengths.items() if v}
    if not lengths:
        return None
    top = max(max(v) for v in lengths.values())
    bins = list(range(0, top + 2, max(1, (top + 1) // 30 or 1)))
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    for name, v in lengths.items():
        ax.hist(
            v, bins=bins, histtype="step", linewidth=2 if name == "real" else 1.2, label=name, color=COLORS.get(name)
        )
    ax.set_title("Reply length")
    ax.set_xlabel("words per reply")
    ax.set_ylabel("replies")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)
