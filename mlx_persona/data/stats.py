"""What the cleaning did, in numbers: ``stats.json`` and the rich table the command prints.

Everything here is deterministic (no times, no absolute paths), so two runs with one seed write
byte-identical ``stats.json``.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from mlx_persona.core.errors import PersonaError


def percentiles(values) -> dict:
    """Nearest-rank percentiles of ``values`` (p10/p50/p90/p99, min, max, count)."""
    v = sorted(values)
    if not v:
        return {"count": 0}
    pick = lambda q: v[min(len(v) - 1, int(q * len(v)))]  # noqa: E731
    return {
        "count": len(v),
        "min": v[0],
        "p10": pick(0.10),
        "p50": pick(0.50),
        "p90": pick(0.90),
        "p99": pick(0.99),
        "max": v[-1],
    }


class TokenCounter:
    """Counts tokens with a model's tokenizer; batches and caches, since turns repeat in contexts."""

    def __init__(self, model: str):
        from mlx_persona.models.resolve import resolve_model

        folder = resolve_model(model)
        try:
            from mlx_lm.utils import load_tokenizer

            self._tok = load_tokenizer(Path(folder))
        except Exception as e:  # a folder without a usable tokenizer
            raise PersonaError(f"could not load a tokenizer from {folder}: {e}") from None
        self.name = str(model)
        self._cache: dict[str, int] = {}

    def prime(self, texts) -> None:
        todo = sorted({t for t in texts if t not in self._cache})
        backend = getattr(self._tok, "_tokenizer", self._tok)
        for i in range(0, len(todo), 1024):
            chunk = todo[i : i + 1024]
            ids = backend(chunk, add_special_tokens=False)["input_ids"]
            self._cache.update((t, len(x)) for t, x in zip(chunk, ids))

    def __call__(self, text: str) -> int:
        n = self._cache.get(text)
        if n is None:
            n = self._cache[text] = len(self._tok.encode(text, add_special_tokens=False))
        return n


def render(stats: dict, console: Console | None = None) -> None:
    """Print the funnel, the splits and the length distributions as rich tables."""
    console = console or Console()
    funnel = Table(title=f"clean: persona {stats['persona']!r}", show_header=True)
    funnel.add_column("step / rule")
    funnel.add_column("records", justify="right")
    for src in stats["inputs"]:
        funnel.add_row(f"read {src['path']} ({src['format']})", str(src["messages"]))
    for rule, n in stats["dropped"].items():
        funnel.add_row(f"  dropped: {rule}", f"-{n}")
    f = stats["funnel"]
    funnel.add_row("  merged into previous turn", f"-{f['merged']}")
    funnel.add_row("conversations (after splitting at silences)", str(f["conversations"]))
    funnel.add_row("persona turns", str(f["persona_turns"]))
    funnel.add_row("samples written", str(f["samples_out"]), style="bold")
    console.print(funnel)

    splits = Table(show_header=True)
    for col in ("split", "conversations", "samples", "tokens"):
        splits.add_column(col, justify="right" if col != "split" else "left")
    for name, s in stats["splits"].items():
        splits.add_row(name, str(s["conversations"]), str(s["samples"]), str(s["tokens"]))
    console.print(splits)
    for name, s in stats["splits"].items():
        if not s["samples"]:
            console.print(f"[yellow]{name} split is empty[/] (too few conversations); no {name}.jsonl written")

    dist = Table(show_header=True, title=f"lengths (tokens by {stats['tokens']['counter']})")
    dist.add_column("")
    for col in ("count", "p10", "p50", "p90", "p99", "max"):
        dist.add_column(col, justify="right")
    for label, p in (
        ("reply chars", stats["reply_chars"]),
        ("system chars before", stats["system_chars"]["before"]),
        ("system chars after", stats["system_chars"]["after"]),
        ("sample tokens", stats["tokens"]["per_sample"]),
    ):
        dist.add_row(label, *(str(p.get(k, "-")) for k in ("count", "p10", "p50", "p90", "p99", "max")))
    console.print(dist)
