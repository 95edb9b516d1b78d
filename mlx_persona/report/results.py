"""The report's results section: the metrics table with its intervals, and what they mean.

Reads ``eval/metrics.json`` only. Each row is one number per model beside the person's own; each
difference column is a later model minus an earlier one (base→SFT, base→DPO, SFT→DPO). Where the
eval resampled the test conversations (``intervals``), a difference carries its 95% bootstrap
interval and a verdict: **real** when the interval excludes 0, **noise** otherwise. Speed and
memory are single measurements, so no difference is claimed for them. An older metrics.json
without intervals still renders, its differences without a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

MODELS = ("base", "sft", "dpo")
WEAK_CLASSIFIER = 0.6  # held-out balanced accuracy below this: the style-fidelity score says little


@dataclass(frozen=True)
class Row:
    label: str
    path: tuple  # into a model's eval entry
    real: tuple | None  # into eval "real" (the person's own value), or None
    fmt: str
    lower_is_better: bool | None  # None: neither direction is better by itself
    interval: str | None = None  # key in eval "intervals"; None: a single measurement, no Δ
    value_ci: bool = False  # also show the interval of each model's value


ROWS = [
    Row("perplexity on the persona's replies", ("perplexity", "perplexity"), None, "{:.2f}", True, "perplexity"),
    Row("similarity to the real reply, mean", ("similarity", "mean"), None, "{:.3f}", False, "similarity_mean", True),
    Row("similarity, median", ("similarity", "median"), None, "{:.3f}", False, "similarity_median"),
    Row(
        "share of replies with similarity ≥ 0.7",
        ("similarity", "share_ge_threshold"),
        None,
        "{:.0%}",
        False,
        "similarity_share_ge_threshold",
    ),
    Row("twin score (closer to the person than to base)", ("twin_score", "share"), None, "{:.0%}", False, "twin_score"),
    Row(
        "style-fidelity: P(person) by the style classifier, mean",
        ("style_fidelity", "mean"),
        ("style_fidelity", "mean"),
        "{:.2f}",
        False,
        "style_fidelity",
        True,
    ),
    Row(
        "assistant slop per 1,000 words",
        ("style", "slop", "per_1000_words"),
        ("slop", "per_1000_words"),
        "{:.1f}",
        True,
        "slop_per_1000_words",
    ),
    Row(
        "median words per reply", ("style", "length", "median_words"), ("median_words",), "{:.1f}", None, "median_words"
    ),
    Row(
        "median length ratio (model / real)", ("style", "length", "median_ratio"), None, "{:.2f}", None, "length_ratio"
    ),
    Row(
        "length distance to real (Wasserstein, words)",
        ("style", "length", "wasserstein_words"),
        None,
        "{:.2f}",
        True,
        "length_wasserstein",
    ),
    Row(
        "emoji per reply",
        ("style", "habits", "emoji_per_reply"),
        ("habits", "emoji_per_reply"),
        "{:.2f}",
        None,
        "emoji_per_reply",
    ),
    Row(
        "replies with an emoji",
        ("style", "habits", "share_with_emoji"),
        ("habits", "share_with_emoji"),
        "{:.0%}",
        None,
        "share_with_emoji",
    ),
    Row(
        "replies starting lower-case",
        ("style", "habits", "share_lowercase_start"),
        ("habits", "share_lowercase_start"),
        "{:.0%}",
        None,
        "share_lowercase_start",
    ),
    Row(
        "exclamation marks per 100 words",
        ("style", "habits", "exclamations_per_100_words"),
        ("habits", "exclamations_per_100_words"),
        "{:.1f}",
        None,
        "exclamations_per_100_words",
    ),
    Row("generated tokens per second", ("speed", "tokens_per_sec"), None, "{:.1f}", False),
    Row("time to first token, median (s)", ("speed", "ttft_median_s"), None, "{:.2f}", True),
    Row("peak memory in eval (GB)", ("peak_memory_gb",), None, "{:.2f}", True),
]


def get_number(d, path) -> float | None:
    for k in path:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d if isinstance(d, (int, float)) and not isinstance(d, bool) else None


def fmt_value(v, fmt) -> str:
    return "–" if v is None else fmt.format(v)


def _signed(x: float, fmt: str) -> str:
    return ("+" if x >= 0 else "−") + fmt.format(abs(x))


def delta_cell(v, earlier, row: Row, interval: dict | None = None) -> str:
    """``−8.00 ✓ (-40.0%) [−9.10, −6.80] real``: the change, ✓ where it goes the better way, the
    relative change of a perplexity, then the 95% interval and its verdict when there is one."""
    if v is None or earlier is None:
        return "–"
    d = v - earlier
    text = _signed(d, row.fmt)
    if (
        row.lower_is_better is not None
        and row.fmt.format(abs(d)) != row.fmt.format(0)
        and (d < 0) == row.lower_is_better
    ):
        text += " ✓"
    if row.interval == "perplexity" and earlier:
        text += f" ({v / earlier - 1:+.1%})"
    if interval and interval.get("low") is not None and interval.get("high") is not None:
        text += f" [{_signed(interval['low'], row.fmt)}, {_signed(interval['high'], row.fmt)}] " + (
            "real" if interval.get("real") else "noise"
        )
    return text


def metrics_table(ev: dict) -> tuple[list[str], list[list[str]]]:
    """ROWS for the models present: the person's value, each model's, and each ordered pair's Δ."""
    models = [m for m in MODELS if m in ev.get("models", {})]
    iv = ev.get("intervals") if isinstance(ev.get("intervals"), dict) else {}
    headers = ["metric", "real replies"]
    for i, m in enumerate(models):
        headers += [m] + [f"Δ {m} vs {e}" for e in models[:i]]
    rows = []
    for row in ROWS:
        vals = {m: get_number(ev["models"][m], row.path) for m in models}
        if all(v is None for v in vals.values()):
            continue
        cells = [row.label, fmt_value(get_number(ev.get("real", {}), row.real), row.fmt) if row.real else "–"]
        for i, m in enumerate(models):
            value = fmt_value(vals[m], row.fmt)
            ci = iv.get("models", {}).get(m, {}).get(row.interval) if row.value_ci and row.interval else None
            if vals[m] is not None and ci and ci.get("low") is not None and ci.get("high") is not None:
                value += f" [{row.fmt.format(ci['low'])}, {row.fmt.format(ci['high'])}]"
            cells.append(value)
            for e in models[:i]:
                if row.interval is None:
                    cells.append("–")
                    continue
                pair = iv.get("deltas", {}).get(f"{e}->{m}", {}).get("metrics", {})
                cells.append(delta_cell(vals[m], vals[e], row, pair.get(row.interval)))
        rows.append(cells)
    return headers, rows


def legend(ev: dict) -> str | None:
    """What the intervals are, in one paragraph (None when the eval did not resample)."""
    iv = ev.get("intervals")
    if not isinstance(iv, dict) or not iv.get("deltas"):
        return None
    return (
        f"Δ: the later model minus the earlier one; [low, high]: its {iv.get('level', 0.95):.0%} paired bootstrap "
        f"interval ({iv.get('resamples')} resamples of the {iv.get('conversations')} test conversations, seed "
        f"{iv.get('seed')}, the same resamples for every model; beside a similarity or style-fidelity value, the "
        "interval of the value itself). real: the interval excludes 0; noise: it does not, so this test split "
        "cannot tell the two models apart on that number. ✓: the better direction, where one is better. Speed "
        "and memory are single measurements: no difference is claimed for them."
    )


def classifier_note(ev: dict) -> str | None:
    """How the style-fidelity score was made and whether to trust it (None when it was not)."""
    clf = ev.get("style_classifier")
    if not isinstance(clf, dict) or not isinstance(clf.get("train"), dict):
        return None
    t, held = clf["train"], clf.get("held_out", {})
    text = (
        f"Style-fidelity needs no base model: a logistic-regression classifier ({t.get('features', 'embedding and habit features')}) "
        f"learns the person's {t.get('person_messages')} messages against the other speakers' "
        f"{t.get('other_messages')} in the train split; a model's score is the mean P(person) over its test replies. "
    )
    acc = held.get("balanced_accuracy")
    if isinstance(acc, (int, float)):
        n = held.get("person_messages", 0) + held.get("other_messages", 0)
        text += (
            f"On {n} held-out messages (valid and test splits) it is right {held.get('accuracy', acc):.0%} of the "
            f"time ({acc:.0%} balanced; the other speakers' messages score {held.get('other_mean_p', float('nan')):.2f}). "
        )
        if acc < WEAK_CLASSIFIER:
            text += "That is barely better than a coin: on this data the score says little. "
    else:
        text += "It could not be checked on held-out messages of both speakers, so treat the score with care. "
    ceiling = get_number(ev.get("real", {}), ("style_fidelity", "mean"))
    if ceiling is not None:
        text += (
            f"The person's own test replies score {ceiling:.2f}, the ceiling; a model far above it writes more "
            "like the person than the person does, a caricature."
        )
    return text.strip()
