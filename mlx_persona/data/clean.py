"""The clean stage: raw chat exports in, mlx_lm chat JSONL out.

    inputs ──read (ingest/)──▶ persona → assistant, others → user ──▶ normalize, drop meta
      ──▶ privacy (scrub.py: blocklist drops, PII → <PHONE>/<EMAIL>/...) ──▶ split at silences, merge bursts
      ──▶ system prompt rule
      ──▶ one sample per persona turn (bounded context) ──▶ dedupe ──▶ split by conversation
      ──▶ out/train.jsonl valid.jsonl test.jsonl rejects.jsonl stats.json [scrub_report.jsonl]

Everything is built in memory and written into ``out`` in one atomic step: a user mistake
(missing file, unknown persona) leaves nothing behind, and a run never leaves half a folder.
The recipe runner calls :func:`clean`; ``mlx-persona clean`` is a thin wrapper around it.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import click

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_dir
from mlx_persona.core.settings import Settings
from mlx_persona.data.ingest import FORMATS, Source, read_source
from mlx_persona.data.ingest.base import INPUT_ERROR_RULES
from mlx_persona.data.rules import (
    DEFAULT_META_PATTERNS,
    assign_roles,
    clean_turns,
    join_other_speakers,
    meta_matcher,
    speakers,
    split_and_merge,
    system_prompt,
)
from mlx_persona.data.samples import SPLITS, build_samples, deduplicate, estimate_tokens, split_by_conversation
from mlx_persona.data.scrub import DEFAULT_REGIONS, SCRUB_REPORT, Blocklist, Scrubber, ScrubPass
from mlx_persona.data.stats import TokenCounter, percentiles, render

OUTPUT_NAMES = (*(layout.split_file(s) for s in SPLITS), layout.REJECTS, layout.STATS, SCRUB_REPORT)
SYSTEM_MODES = ("replace-long", "keep", "drop", "replace", "truncate")
DEDUP_MODES = ("near", "exact", "off")
DATE_ORDERS = ("auto", "dmy", "mdy", "ymd")


def _f(default, help: str, choices: tuple | None = None):
    return field(default=default, metadata={"help": help, **({"choices": choices} if choices else {})})


@dataclass
class CleanConfig(Settings):
    """Cleaning rules: the recipe's ``clean`` block and the ``mlx-persona clean`` options."""

    block: ClassVar[str] = "clean"

    persona_line: str = _f(
        "You are {persona}. Reply the way {persona} does.",
        "System prompt that stands for the persona; {persona} is filled in.",
    )
    system: str = _f("replace-long", f"System prompts: {' | '.join(SYSTEM_MODES)}.", SYSTEM_MODES)
    system_max_chars: int = _f(200, "Longer system prompts are replaced (replace-long) or cut (truncate).")
    add_system: bool = _f(True, "Give samples without a system prompt the persona line.")
    meta_patterns: tuple = _f(DEFAULT_META_PATTERNS, "Regexes for meta replies to drop (any speaker).")
    min_reply_chars: int = _f(10, "Persona replies shorter than this are not trained on.")
    merge_gap_min: float = _f(5.0, "Merge one speaker's consecutive messages sent within this many minutes.")
    split_gap_hours: float = _f(6.0, "A silence longer than this starts a new conversation.")
    normalize: bool = _f(True, "Unicode NFC, drop invisible characters, tidy whitespace (words untouched).")
    dedup: str = _f("near", "Duplicate removal: near (also ignores case/punctuation) | exact | off.", DEDUP_MODES)
    scrub: bool = _f(
        False, "Replace phone numbers, e-mails, IBANs, cards, IPs, addresses with <PHONE>, ... (recipes: on)."
    )
    scrub_urls: bool = _f(False, "With --scrub, URLs become <URL> too.")
    scrub_regions: tuple = _f(DEFAULT_REGIONS, "Countries whose national phone formats --scrub reads (+CC: any).")
    block_words: str | None = _f(None, "File of words/phrases (one a line); a message containing one is dropped.")
    pii: bool = _f(False, "Old name for --scrub --scrub-urls.")
    context_turns: int = _f(8, "At most this many turns of context before each persona reply.")
    max_tokens: int = _f(2048, "Token budget per sample; the oldest context is trimmed to fit.")
    splits: tuple = _f((0.8, 0.1, 0.1), "Train/valid/test shares, by conversation.")
    seed: int = _f(0, "Seed for the train/valid/test split.")
    date_order: str = _f("auto", "WhatsApp dates: auto | dmy | mdy | ymd.", DATE_ORDERS)
    chat: str | None = _f(
        None, "Telegram full-account export / iMessage chat.db: the chat to read (name, id or handle; default all)."
    )
    speaker_column: str = _f("speaker", "CSV column with the speaker's name.")
    text_column: str = _f("text", "CSV column with the line of dialogue.")
    bound_columns: tuple = _f(("episode", "scene"), "CSV columns whose change starts a new conversation.")
    model: str | None = _f(None, "Model (folder, hub id or 'default') whose tokenizer counts tokens.")

    def validate(self, where: str | None = None) -> None:
        where = where or self.block

        def need(ok, msg):
            if not ok:
                raise PersonaError(f"{where}: {msg}")

        need(self.system in SYSTEM_MODES, f"system must be one of {', '.join(SYSTEM_MODES)}")
        need(self.dedup in DEDUP_MODES, f"dedup must be one of {', '.join(DEDUP_MODES)}")
        need(self.date_order in DATE_ORDERS, "date_order must be auto, dmy, mdy or ymd")
        need(
            len(self.splits) == 3
            and all(s >= 0 for s in self.splits)
            and self.splits[0] > 0
            and abs(sum(self.splits) - 1) < 1e-6,
            "splits must be three shares summing to 1, train > 0",
        )
        need(self.context_turns >= 1 and self.max_tokens > 0, "context_turns and max_tokens must be positive")
        need(self.merge_gap_min >= 0 and self.split_gap_hours > 0, "gaps must be positive")
        need(
            not self.block_words or Path(self.block_words).is_file(), f"block_words file not found: {self.block_words}"
        )
        try:
            meta_matcher(self.meta_patterns)
        except PersonaError as e:
            raise PersonaError(f"{where}: {e.message}") from None


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise PersonaError(f"--out {out} is a file; give a folder")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in OUTPUT_NAMES)
        if foreign:
            raise PersonaError(f"--out {out} holds other files ({', '.join(foreign[:3])}); give a new or empty folder")


def clean(
    inputs: Sequence[str | Path | Source],
    persona: str | Sequence[str],
    out_dir: str | Path,
    config: CleanConfig | None = None,
) -> dict:
    """Clean ``inputs`` for ``persona`` into ``out_dir``; returns the stats (also in stats.json).

    ``persona`` is a name, or several names of the same person (the first is used in the
    persona line); a source's own ``persona`` overrides it, and its ``aliases`` add spellings
    for that file alone.
    """
    cfg = config or CleanConfig()
    cfg.validate()
    sources = [s if isinstance(s, Source) else Source(str(s)) for s in inputs]
    if not sources:
        raise PersonaError("no inputs given")
    names = [persona] if isinstance(persona, str) else list(persona)
    if not names or not all(n and n.strip() for n in names):
        raise PersonaError("--persona must name the person (a speaker name or role)")
    for s in sources:  # fail before reading anything
        if not Path(s.path).is_file():
            raise PersonaError(f"input not found: {s.path}")
    out = Path(out_dir)
    _check_out_dir(out)
    meta = meta_matcher(cfg.meta_patterns)
    counter = TokenCounter(cfg.model) if cfg.model else None
    count = counter or estimate_tokens
    scrubber = Scrubber(cfg.scrub_regions, urls=cfg.scrub_urls or cfg.pii) if cfg.scrub or cfg.pii else None
    privacy = ScrubPass(scrubber, Blocklist.from_file(cfg.block_words) if cfg.block_words else None)

    rejects, samples, inputs_stats = [], [], []
    sys_before, sys_after = [], []
    merged = conversations = persona_turns = 0
    for s in sources:
        fmt, res = read_source(s, cfg)
        who = [*([s.persona] if s.persona else names), *s.aliases]  # this file's spellings
        _check_persona(res.conversations, who, s.path)
        assign_roles(res.conversations, who, s.path)
        line = cfg.persona_line.replace("{persona}", who[0])
        rejects.extend(res.rejects)
        inputs_stats.append(
            {
                "path": s.path,
                "format": fmt,
                "persona": " / ".join(who),
                "records": len(res.conversations),
                "messages": res.messages,
            }
        )
        pieces = []
        for conv in res.conversations:
            clean_turns(conv, meta, cfg.normalize, rejects)
            privacy.conversation(conv, rejects)
            parts, n = split_and_merge(conv, cfg.merge_gap_min * 60, cfg.split_gap_hours * 3600)
            merged += n
            pieces.extend(p for p in parts if p.turns)
        if counter is not None:
            counter.prime(t.text for p in pieces for t in p.turns)
        for conv in pieces:
            join_other_speakers(conv)
            system = system_prompt(conv.system, line, cfg.system, cfg.system_max_chars, cfg.add_system)
            if conv.system:
                sys_before.append(len(conv.system))
            if system:
                sys_after.append(len(system))
            conversations += 1
            persona_turns += sum(t.role == "assistant" for t in conv.turns)
            samples.extend(build_samples(conv, system, cfg, count, rejects))

    n_built = len(samples)
    samples, groups = deduplicate(samples, cfg.dedup, rejects)
    split = split_by_conversation(samples, groups, cfg.splits, cfg.seed)

    order = {s.path: i for i, s in enumerate(sources)}
    if not samples:
        raise PersonaError(_no_samples(inputs_stats, rejects, merged, conversations, persona_turns, n_built, cfg))
    rejects.sort(key=lambda r: (order.get(r.source, len(order)), r.line))
    dropped: dict[str, int] = {}
    for r in rejects:
        dropped[r.rule] = dropped.get(r.rule, 0) + 1

    def sample_tokens(smp):
        return sum(count(m["content"]) + 4 for m in smp.messages)

    tokens = {name: [sample_tokens(x) for x in split[name]] for name in SPLITS}
    stats = {
        "persona": " / ".join(names),
        "inputs": inputs_stats,
        "dropped": dict(sorted(dropped.items())),
        "warnings": sum(n for rule, n in dropped.items() if rule in INPUT_ERROR_RULES),
        "funnel": {
            "messages_in": sum(i["messages"] for i in inputs_stats),
            "merged": merged,
            "conversations": conversations,
            "persona_turns": persona_turns,
            "samples_built": n_built,
            "samples_out": len(samples),
        },
        "splits": {
            name: {
                "conversations": len({groups.find(x.group) for x in split[name]}),
                "samples": len(split[name]),
                "tokens": sum(tokens[name]),
            }
            for name in SPLITS
        },
        "scrub": privacy.stats(),
        "reply_chars": percentiles(len(x.messages[-1]["content"]) for x in samples),
        "system_chars": {"before": percentiles(sys_before), "after": percentiles(sys_after)},
        "tokens": {
            "counter": counter.name if counter else "estimate (chars/4)",
            "per_sample": percentiles(t for name in SPLITS for t in tokens[name]),
            # the person's reply alone: how long a generated reply must be allowed to run
            # (pairs.max_tokens, eval.max_tokens) for the twin to write one whole
            "per_reply": percentiles(count(x.messages[-1]["content"]) for x in samples),
        },
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
    }
    # An empty split gets no file: mlx_lm's loader skips a missing file but fails on an empty one.
    files = {
        layout.split_file(name): "".join(x.line_json + "\n" for x in split[name]) for name in SPLITS if split[name]
    }
    files[layout.REJECTS] = "".join(  # a meta line or a reader's reject may hold what the scrub takes out
        json.dumps({**r.to_json(), "text": privacy.reject_text(r.text)[:200]}, ensure_ascii=False) + "\n"
        for r in rejects
    )
    files[layout.STATS] = json.dumps(stats, indent=2, ensure_ascii=False) + "\n"
    if scrubber:
        files[SCRUB_REPORT] = privacy.report()
    _check_out_dir(out)
    with atomic_dir(out, overwrite=True) as tmp:
        os.chmod(tmp, 0o755)
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
    return stats


def _fold(name: str) -> str:
    """A name as people compare them: no case, accents, marks or emoji; spaces squeezed."""
    kept = (c for c in unicodedata.normalize("NFKD", name.casefold()) if c.isalnum() or c.isspace())
    return " ".join("".join(kept).split())


def closest_speakers(wanted: Sequence[str], counts: dict[str, int], n: int = 3) -> list[str]:
    """Speakers whose names are nearest to the ``wanted`` spellings: the same name without case,
    accents or emoji first, then a name containing (or contained in) one, then by similarity."""
    scored = {}
    for s in counts:
        f = _fold(s)
        for w in map(_fold, wanted):
            if not f or not w:
                continue
            if f == w:
                score = 3.0
            elif w in f.split() or f in w.split() or (len(w) > 2 and (w in f or f in w)):
                score = 2.0
            else:
                score = difflib.SequenceMatcher(None, w, f).ratio()
            scored[s] = max(scored.get(s, 0.0), score)
    ranked = sorted((x for x in scored.items() if x[1] >= 0.6), key=lambda kv: (-kv[1], -counts[kv[0]], kv[0]))
    return [s for s, _ in ranked[:n]]


def _check_persona(conversations, names: Sequence[str], source: str) -> None:
    """A chat or script without the persona among its speakers: say which names come closest."""
    if not conversations or not all(c.named for c in conversations):
        return
    counts = speakers(conversations)
    want = {n.strip().casefold() for n in names}
    if any(s.strip().casefold() in want for s in counts):
        return
    near = closest_speakers(names, counts)
    top = ", ".join(s for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:8])
    hint = f"; closest: {', '.join(repr(x) for x in near)} (give --persona {near[0]!r})" if near else ""
    raise PersonaError(f"persona {' / '.join(names)!r} is not a speaker in {source}{hint}; speakers there: {top}")


def _no_samples(inputs, rejects, merged, conversations, persona_turns, built, cfg) -> str:
    """One line: the funnel down to zero samples, and the change most likely to fix it."""
    dropped: dict[str, int] = {}
    for r in rejects:
        dropped[r.rule] = dropped.get(r.rule, 0) + 1
    read = sum(i["messages"] for i in inputs)
    where = ", ".join(f"{i['path']} as {i['format']}" for i in inputs)
    steps = [f"{read} messages read ({where})"]
    if dropped:
        steps.append(
            "dropped " + ", ".join(f"{rule} {n}" for rule, n in sorted(dropped.items(), key=lambda kv: -kv[1]))
        )
    steps.append(
        f"{merged} merged, {conversations} conversations, {persona_turns} persona turns, {built} samples built"
    )
    damaged = sum(n for rule, n in dropped.items() if rule in INPUT_ERROR_RULES)
    if read == 0 or damaged * 2 > max(read, 1):
        fix = "the input was not read as messages: check the file, or give --format"
    elif persona_turns == 0:
        fix = "the persona wrote none of the messages that were kept: check --persona"
    elif dropped.get("min-length", 0) and built == 0 and dropped["min-length"] * 2 >= persona_turns:
        fix = f"the persona's replies are short: lower --min-reply-chars (now {cfg.min_reply_chars})"
    elif dropped.get("no-context", 0) and built == 0:
        fix = "no one else speaks before the persona's replies: include the other side of the chat"
    elif dropped.get("too-long", 0) and built == 0:
        fix = f"every sample is over --max-tokens {cfg.max_tokens}: raise it"
    elif built and dropped.get("duplicate", 0) + dropped.get("near-duplicate", 0):
        fix = "every sample was a duplicate: try --dedup exact or off"
    else:
        fix = "see the funnel above; the rejects list every dropped message with its rule"
    return "no samples: " + " → ".join(steps) + f". Likely fix: {fix}"


def _shares(_ctx, _param, value: str | None):
    if value is None:
        return None
    try:
        parts = tuple(float(x) for x in value.split(","))
    except ValueError:
        raise click.BadParameter("give three numbers like 0.8,0.1,0.1") from None
    return parts


@click.command("clean")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--persona",
    required=True,
    multiple=True,
    help="The person to model: a speaker name (chats, scripts) or role; repeat for other spellings.",
)
@click.option("--out", "out_dir", required=True, help="Folder for train/valid/test.jsonl, rejects.jsonl, stats.json.")
@click.option(
    "--format", "fmt", type=click.Choice(list(FORMATS)), help="Input format for all INPUTs (default: detect)."
)
@click.option("--meta-pattern", multiple=True, help="Another meta-reply regex (adds to the defaults).")
@click.option("--split", "splits", callback=_shares, help="Train,valid,test shares (default 0.8,0.1,0.1).")
@click.option("--bound-column", "bound_columns", multiple=True, help="CSV column bounding a conversation (repeat).")
@click.option("--model", "--tokenizer", "model", help=CleanConfig.help("model"))
@CleanConfig.click_options(skip=("meta_patterns", "splits", "bound_columns", "model"))  # those four: above
@click.option("--quiet", is_flag=True, help="Print only warnings and the output folder.")
def clean_command(inputs, persona, out_dir, fmt, meta_pattern, bound_columns, quiet, **options) -> None:
    """Clean raw chat exports (INPUT...) into mlx_lm chat JSONL for one persona."""
    from rich.console import Console

    # Precedence: a given option, then the CleanConfig default.
    given = {k: v for k, v in options.items() if v is not None}
    if meta_pattern:
        given["meta_patterns"] = tuple(DEFAULT_META_PATTERNS) + tuple(meta_pattern)
    if bound_columns:
        given["bound_columns"] = tuple(bound_columns)
    cfg = CleanConfig.from_mapping(given)
    if given.get("scrub") is False:
        Console(stderr=True).print(
            "[yellow]warning[/]: --no-scrub: phone numbers, e-mails and card numbers stay in the training data, "
            "and a twin can repeat them",
            soft_wrap=True,
        )
    stats = clean([Source(p, fmt) for p in inputs], persona, out_dir, cfg)
    if not quiet:
        render(stats)
    if stats["warnings"]:
        Console(stderr=True).print(
            f"[yellow]{stats['warnings']} warning(s)[/]: damaged input records, "
            f"listed with file:line in {Path(out_dir) / layout.REJECTS}",
            soft_wrap=True,
        )
    click.echo(f"wrote {stats['funnel']['samples_out']} samples to {out_dir}", file=sys.stdout)
