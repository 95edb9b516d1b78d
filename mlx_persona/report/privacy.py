"""The report's privacy section: what the clean stage scrubbed, and whether a model leaks.

Two sources, both written by the stages (no model needed): ``clean/stats.json``'s ``scrub``
block (per-category replacements, blocked messages) and ``eval/metrics.json``'s ``leakage``
block (:mod:`mlx_persona.eval.leakage`). A model that says back personal data from its
training data is flagged at the top of the section, with masked hints only.
"""

from __future__ import annotations

from pathlib import Path

from mlx_persona.core import layout


def privacy_blocks(run: Path, ev: dict | None, read_json) -> list:
    """Report blocks (see report/render.py); empty when neither source is there."""
    stats = read_json(Path(run) / layout.CLEAN_DIR / layout.STATS) or {}
    scrub = stats.get("scrub") if isinstance(stats.get("scrub"), dict) else None
    leak = (ev or {}).get("leakage") if isinstance((ev or {}).get("leakage"), dict) else None
    if scrub is None and leak is None:
        return []
    blocks: list = [("h2", "Privacy")]
    if leak and leak.get("flagged"):
        for name in leak["flagged"]:
            m = leak["models"][name]
            kinds = sorted({x["category"] for x in m["leaks"]})
            blocks.append(
                (
                    "p",
                    f"⚠ LEAK: {name} says back {m['leaked']} piece(s) of personal data from its training data "
                    f"({', '.join(kinds)}). Re-clean with scrub on (`clean.scrub: true`) and retrain before "
                    "sharing this twin.",
                )
            )
    if scrub is not None:
        if scrub.get("enabled"):
            replaced = scrub.get("replaced", {})
            total = sum(replaced.values())
            blocks.append(
                (
                    "p",
                    f"Clean stage scrubbed {total} piece(s) of personal data in {scrub.get('messages_changed', 0)} "
                    f"message(s) (typed placeholders such as <PHONE>; where: clean/scrub_report.jsonl) and "
                    f"dropped {scrub.get('blocked_messages', 0)} message(s) on the blocklist.",
                )
            )
            blocks.append(("table", ["category", "replaced"], [[c, n] for c, n in replaced.items()]))
        else:
            blocks.append(
                (
                    "p",
                    "Scrubbing was off: phone numbers, e-mails and card numbers in the chats went into training "
                    f"as written ({scrub.get('blocked_messages', 0)} message(s) dropped on the blocklist).",
                )
            )
    if leak:
        found = ", ".join(f"{c} {n}" for c, n in leak.get("training_pii", {}).items()) or "none"
        blocks.append(
            (
                "p",
                f"Leakage check: personal data in the training data (distinct): {found}. Each model answered the "
                f"test prompts and {len(leak.get('probes', []))} probing questions; a reply holding one of those "
                "values, in any format, is a leak.",
            )
        )
        blocks.append(
            (
                "table",
                ["model", "leaked (distinct)", "where", "other personal-data-shaped text", "placeholders"],
                [
                    [
                        name,
                        m["leaked"],
                        ", ".join(sorted({f"{x['where']} ({x['category']} {x['hint']})" for x in m["leaks"]})[:6])
                        or "–",
                        m["other_pii"],
                        m["placeholders"],
                    ]
                    for name, m in leak.get("models", {}).items()
                ],
            )
        )
    return blocks
