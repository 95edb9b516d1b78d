"""The report's persona card (:mod:`mlx_persona.data.persona`) and the twin's habits against it.

The card comes from ``persona.json`` in the run folder (``mlx-persona persona RUN``), or is
built from the run's data when there is none. Each evaluated model's habits (the eval's
``style.habits`` on its test replies) stand in columns beside the person's, so a twin that
writes in full sentences with emoji for a person who does neither shows at a glance.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlx_persona.core.errors import PersonaError
from mlx_persona.data.persona import PERSONA_FILE, build_card, card_rows

HABITS = (
    ("share with emoji", lambda h: h.get("share_with_emoji"), "{:.0%}"),
    ("emoji per reply", lambda h: h.get("emoji_per_reply"), "{:.2f}"),
    ("lower-case start", lambda h: h.get("share_lowercase_start"), "{:.0%}"),
    ("ends without a mark", lambda h: h.get("ends_with", {}).get("none"), "{:.0%}"),
    ("ends with a full stop", lambda h: h.get("ends_with", {}).get("period"), "{:.0%}"),
    ("! per 100 words", lambda h: h.get("exclamations_per_100_words"), "{:.1f}"),
    ("? per 100 words", lambda h: h.get("questions_per_100_words"), "{:.1f}"),
)


def load_card(run: Path) -> dict | None:
    path = Path(run) / PERSONA_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    try:
        return build_card(run)
    except PersonaError:
        return None


def card_blocks(run: Path, ev: dict | None) -> list:
    """Report blocks: the card, the suggested system prompt, the habits table."""
    card = load_card(run)
    if not card:
        return []
    blocks: list = [
        ("h2", f"Persona card: {card.get('persona')}"),
        ("p", f"From {card.get('replies')} of the person's replies in {card.get('source')}."),
        ("table", ["", "the person"], [list(r) for r in card_rows(card)]),
        ("p", f"Suggested system prompt: {card.get('system_prompt')}"),
    ]
    models = {
        m: v["style"]["habits"] for m, v in (ev or {}).get("models", {}).items() if v.get("style", {}).get("habits")
    }
    if models:

        def fmt(v, f):
            return f.format(v) if isinstance(v, (int, float)) else "–"

        rows = [
            [label, fmt(get(card["habits"]), f), *(fmt(get(h), f) for h in models.values())] for label, get, f in HABITS
        ]
        words = card["length"]["words"].get("p50")
        rows.insert(0, ["median words", fmt(words, "{}"), *(_median_words(ev, m) for m in models)])
        blocks += [("h3", "The models' habits against the card"), ("table", ["habit", "the person", *models], rows)]
    return blocks


def _median_words(ev: dict, model: str) -> str:
    v = ev["models"][model].get("style", {}).get("length", {}).get("median_words")
    return f"{v:g}" if isinstance(v, (int, float)) else "–"
