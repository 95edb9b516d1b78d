"""The persona card: how the person writes, in numbers, and a one-line system prompt from it.

``mlx-persona persona RUN|DATA`` reads the cleaned splits (the person's replies are each
sample's last message; everyone else's are the ``user`` messages) and, for a run, the raw
exports its recipe names (the cleaned data keeps no times):

- **length**: words and characters per reply (:func:`stats.percentiles`);
- **habits**: emoji, how replies end, lower-case starts, ! and ? per 100 words
  (:func:`style.habits`, the measure the eval uses on the twin), the other speakers' beside it;
- **capitalisation**: lower-case starts, all-lower-case replies, ALL-CAPS words per 100 words;
- **languages**: per reply, the language whose common words it uses most, else its script;
- **characteristic words and phrases** against the other speakers: the log-odds ratio with an
  informative Dirichlet prior (Monroe, Colaresi & Quinn 2008). For word ``w`` with counts
  ``y_p`` (person, ``n_p`` words in all) and ``y_o`` (others, ``n_o``), prior
  ``a_w = A * (y_p + y_o) / (n_p + n_o)`` (``A`` = :data:`PRIOR_WORDS`)::

      d_w = log((y_p + a_w) / (n_p + A - y_p - a_w)) - log((y_o + a_w) / (n_o + A - y_o - a_w))
      z_w = d_w / sqrt(1 / (y_p + a_w) + 1 / (y_o + a_w))

  the top ``z`` with ``y_p >= 3`` (words, and two-word phrases);
- **active hours** (a 24-bin histogram of the person's messages, in the clock the export
  writes: local for WhatsApp, UTC for unix-time exports) and **reply latency** (seconds from
  another speaker's message to the person's next one, within ``split_gap_hours``);
- **system prompt**: the persona line, then the habits above in words.

The result is ``persona.json``; the report shows it as a card beside the twin's habits.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import click

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_write_json
from mlx_persona.data.stats import percentiles
from mlx_persona.data.style import habits, word_count

PERSONA_FILE = "persona.json"
PRIOR_WORDS = 500.0  # A: how many words of prior the log-odds lean on (smooths rare words)
MIN_COUNT = 3  # a characteristic word must appear this often in the person's replies
_TOKEN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
_CAPS = re.compile(r"\b[A-Z]{2,}\b")
STOPWORDS = {
    "English": "the and you that is it to of i in for this with not on are be have but what so just",
    "German": "und ich nicht das ist die der du es mit ein auch auf sie wir aber noch schon",
    "French": "le la les et je pas est que une un des pour tu on mais ça avec c'est dans",
    "Spanish": "el la que de y los es no en un por lo para pero con una las si",
    "Italian": "il che non di e la è per un sono ma ho mi ci una anche questo",
    "Dutch": "de het een en ik niet is dat je van wat op maar ook zijn met",
    "Portuguese": "o a que não de é um uma para com eu os mas se você isso",
}
_STOP = {lang: frozenset(words.split()) for lang, words in STOPWORDS.items()}
_SCRIPTS = (
    ("Cyrillic", 0x0400, 0x04FF),
    ("Greek", 0x0370, 0x03FF),
    ("Arabic", 0x0600, 0x06FF),
    ("Hebrew", 0x0590, 0x05FF),
    ("Devanagari", 0x0900, 0x097F),
    ("Japanese", 0x3040, 0x30FF),
    ("Hangul", 0xAC00, 0xD7AF),
    ("CJK", 0x4E00, 0x9FFF),
)


# -- reading ---------------------------------------------------------------------------------
def _clean_dir(target: Path) -> Path:
    for d in (target, target / layout.CLEAN_DIR):
        if (d / layout.TRAIN_SPLIT).is_file():
            return d
    raise PersonaError(f"{target}: no {layout.TRAIN_SPLIT} here or in {layout.CLEAN_DIR}/; give a run or cleaned data")


def read_messages(data_dir: Path) -> tuple[list[str], list[str], str | None]:
    """The person's replies and the other speakers' messages (distinct, in file order) and the
    first system prompt, from a cleaned-data folder's splits."""
    person, others, system = {}, {}, None
    for split in ("train", "valid", "test"):
        path = data_dir / layout.split_file(split)
        if not path.is_file():
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    msgs = json.loads(line)["messages"]
                except (ValueError, KeyError, TypeError):
                    continue
                if msgs and msgs[0].get("role") == "system" and system is None:
                    system = msgs[0].get("content")
                if msgs and msgs[-1].get("role") == "assistant":
                    person.setdefault(msgs[-1]["content"], None)
                for m in msgs:
                    if m.get("role") == "user":
                        others.setdefault(m["content"], None)
    return list(person), list(others), system


def read_times(run: Path) -> tuple[list[float], list[float], str | None]:
    """From a run's raw exports (its recipe.yaml): the times of the person's messages and the
    reply latencies; the third value says why there are none."""
    import yaml

    from mlx_persona.data.clean import CleanConfig
    from mlx_persona.data.ingest import Source, read_source
    from mlx_persona.data.rules import assign_roles

    recipe_path = run / layout.RECIPE
    if not recipe_path.is_file():
        return [], [], "cleaned data keeps no times (give a run folder, whose recipe names the raw exports)"
    recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8")) or {}
    persona = recipe.get("persona") or {}
    names = [persona.get("name"), *(persona.get("aliases") or [])]
    clean_raw = dict(recipe.get("clean") or {})
    clean_raw.pop("block_words", None)  # a moved blocklist file must not stop the card
    cfg = CleanConfig.from_mapping(clean_raw)
    gap = cfg.split_gap_hours * 3600
    times, latency = [], []
    for src in recipe.get("data") or []:
        path = Path(src.get("path", ""))
        if not path.is_file():
            continue
        try:
            _, res = read_source(Source(str(path), src.get("format"), src.get("persona")), cfg)
            assign_roles(res.conversations, [src["persona"]] if src.get("persona") else names, str(path))
        except PersonaError:
            continue
        for conv in res.conversations:
            prev = None
            for t in conv.turns:
                if t.time is not None and t.role == "assistant":
                    times.append(t.time)
                    if prev is not None and prev.role == "user" and prev.time is not None:
                        if 0 <= t.time - prev.time <= gap:
                            latency.append(t.time - prev.time)
                prev = t
    return times, latency, None if times else "the raw exports carry no times (or are not readable here)"


# -- measures ----------------------------------------------------------------------------------
def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


def log_odds(person: Counter, others: Counter, top: int = 12, prior: float = PRIOR_WORDS) -> list[dict]:
    """The person's most characteristic terms against the others (see the module docstring)."""
    n_p, n_o = sum(person.values()), sum(others.values())
    if not n_p or not n_o:
        return []
    total = n_p + n_o
    out = []
    for w, y_p in person.items():
        if y_p < MIN_COUNT:
            continue
        y_o = others.get(w, 0)
        a = prior * (y_p + y_o) / total
        d = math.log((y_p + a) / (n_p + prior - y_p - a)) - math.log((y_o + a) / (n_o + prior - y_o - a))
        z = d / math.sqrt(1 / (y_p + a) + 1 / (y_o + a))
        out.append({"term": w, "z": round(z, 3), "count": y_p, "others": y_o})
    out.sort(key=lambda r: (-r["z"], r["term"]))
    return [r for r in out[:top] if r["z"] > 0]


def language(text: str) -> str:
    words = tokens(text)
    hits = {lang: sum(w in stop for w in words) for lang, stop in _STOP.items()}
    best = max(hits, key=lambda k: hits[k])
    if hits[best]:
        return best
    for name, lo, hi in _SCRIPTS:
        if any(lo <= ord(c) <= hi for c in text):
            return name
    return "unknown"


def capitalisation(replies: Sequence[str]) -> dict:
    words = max(1, sum(word_count(r) for r in replies))
    letters = [r for r in replies if any(c.isalpha() for c in r)]
    return {
        "share_lowercase_start": habits(replies).get("share_lowercase_start", 0.0),
        "share_all_lowercase": sum(r == r.lower() for r in letters) / len(letters) if letters else 0.0,
        "caps_words_per_100_words": 100.0 * sum(len(_CAPS.findall(r)) for r in replies) / words,
    }


def system_prompt(name: str, card: dict) -> str:
    """The persona line, then the card's strongest habits in plain words."""
    traits = []
    med = card["length"]["words"].get("p50")
    if med is not None:
        traits.append(f"{'short replies' if med <= 12 else 'full replies'} (about {med} words)")
    cap = card["capitalisation"]
    if cap["share_all_lowercase"] >= 0.6:
        traits.append("all lower case")
    elif cap["share_lowercase_start"] >= 0.6:
        traits.append("mostly lower case")
    h = card["habits"]
    emoji = h.get("share_with_emoji", 0.0)
    traits.append("rarely emoji" if emoji < 0.05 else "emoji often" if emoji >= 0.3 else "emoji now and then")
    ends = h.get("ends_with", {})
    if ends:
        top = max(ends, key=lambda k: ends[k])
        traits.append(
            {
                "none": "no full stop at the end",
                "period": "ending with a full stop",
                "exclamation": "often ending with '!'",
                "question": "often asking back",
                "ellipsis": "trailing off with '...'",
            }[top]
        )
    langs = card["languages"]
    if langs and next(iter(langs)) not in ("English", "unknown"):
        traits.append(f"in {next(iter(langs))}")
    return f"You are {name}. Reply the way {name} does: {', '.join(traits)}."


def build_card(target: str | Path, name: str | None = None) -> dict:
    """The card for a run folder or a cleaned-data folder."""
    target = Path(target)
    if not target.is_dir():
        raise PersonaError(f"{target}: not a folder; give a run folder or a cleaned-data folder")
    data = _clean_dir(target)
    replies, others, system = read_messages(data)
    if not replies:
        raise PersonaError(f"{data}: no persona replies in the splits; run `mlx-persona clean` first")
    run = data.parent if data.name == layout.CLEAN_DIR else target
    if name is None:
        recipe = run / layout.RECIPE
        if recipe.is_file():
            import yaml

            name = ((yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}).get("persona") or {}).get("name")
        if not name and system:
            m = re.match(r"You are ([^.,]+)", system)
            name = m.group(1).strip() if m else None
    name = name or "the persona"
    times, latency, why = read_times(run)
    p_tokens = [tokens(r) for r in replies]
    o_tokens = [tokens(o) for o in others]
    bigrams = lambda ts: Counter(f"{a} {b}" for t in ts for a, b in zip(t, t[1:]))  # noqa: E731
    langs = Counter(language(r) for r in replies)
    hours = [0] * 24
    for t in times:
        hours[int(t % 86400 // 3600)] += 1
    card = {
        "persona": name,
        "source": str(data),
        "replies": len(replies),
        "other_messages": len(others),
        "length": {"words": percentiles(word_count(r) for r in replies), "chars": percentiles(len(r) for r in replies)},
        "habits": habits(replies),
        "others_habits": habits(others),
        "capitalisation": capitalisation(replies),
        "languages": {k: round(v / len(replies), 3) for k, v in langs.most_common()},
        "characteristic": {
            "words": log_odds(Counter(w for t in p_tokens for w in t), Counter(w for t in o_tokens for w in t)),
            "phrases": log_odds(bigrams(p_tokens), bigrams(o_tokens), top=8),
        },
        "active_hours": {"counts": hours, "peak": sorted(range(24), key=lambda h: -hours[h])[:3]} if times else None,
        "reply_latency_s": {
            **percentiles(round(x) for x in latency),
            "median": statistics.median(latency),
        }
        if latency
        else None,
        "times_note": why,
    }
    card["system_prompt"] = system_prompt(name, card)
    return card


# -- the command -------------------------------------------------------------------------------
@click.command("persona")
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Where to write persona.json.")
@click.option("--name", help="The person's name for the system prompt (default: the recipe's persona).")
def persona_command(target: Path, out: Path | None, name: str | None) -> None:
    """The persona card of a run (RUN) or cleaned data (DATA): length, habits, languages,
    characteristic words, active hours, reply latency, and a suggested system prompt.

    Writes RUN/persona.json for a run (the report shows it), else ./persona.json or --out.
    """
    from rich.console import Console
    from rich.table import Table

    card = build_card(target, name)
    is_run = (target / layout.RECIPE).is_file() or (target / layout.CLEAN_DIR).is_dir()
    out = out or (target / PERSONA_FILE if is_run else Path(PERSONA_FILE))
    atomic_write_json(out, card)
    table = Table(title=f"persona card: {card['persona']} ({card['replies']} replies)", show_header=False)
    for label, value in card_rows(card):
        table.add_row(label, value)
    console = Console()
    console.print(table)
    console.print(f"suggested system prompt: [bold]{card['system_prompt']}[/]", soft_wrap=True)
    click.echo(str(out))


def card_rows(card: dict) -> list[tuple[str, str]]:
    """The card as (label, value) lines: the command's table and the report's card."""
    w, h, c = card["length"]["words"], card["habits"], card["capitalisation"]
    ends = h.get("ends_with", {})
    rows = [
        ("words per reply", f"median {w.get('p50')}, p90 {w.get('p90')}, max {w.get('max')}"),
        ("emoji", f"{h.get('share_with_emoji', 0):.0%} of replies, {h.get('emoji_per_reply', 0):.2f} per reply"),
        ("ends with", ", ".join(f"{k} {v:.0%}" for k, v in sorted(ends.items(), key=lambda kv: -kv[1]) if v)),
        (
            "capitalisation",
            f"lower-case start {c['share_lowercase_start']:.0%}, all lower case {c['share_all_lowercase']:.0%}, "
            f"CAPS words {c['caps_words_per_100_words']:.1f}/100 words",
        ),
        (
            "! and ? per 100 words",
            f"{h.get('exclamations_per_100_words', 0):.1f} / {h.get('questions_per_100_words', 0):.1f}",
        ),
        ("languages", ", ".join(f"{k} {v:.0%}" for k, v in card["languages"].items())),
        ("characteristic words", ", ".join(r["term"] for r in card["characteristic"]["words"]) or "–"),
        ("characteristic phrases", ", ".join(r["term"] for r in card["characteristic"]["phrases"]) or "–"),
    ]
    hours = card.get("active_hours")
    rows.append(("most active hours", ", ".join(f"{x:02d}:00" for x in hours["peak"]) if hours else card["times_note"]))
    lat = card.get("reply_latency_s")
    rows.append(
        (
            "reply latency",
            f"median {_duration(lat['median'])}, p90 {_duration(lat['p90'])}" if lat else card["times_note"],
        )
    )
    return rows


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
