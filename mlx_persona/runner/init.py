"""``mlx-persona init EXPORTS...``: a first recipe for your own chats, checked before it is written.

    exports ──read (data/ingest, formats detected as clean does)──▶ speakers per file:
      counts and dates ──▶ who is the persona (one person's spellings across files: the one in
      every chat, else the clearly most active; --persona or a prompt in a terminal confirms)
      ──▶ clean (data/clean, in a scratch folder): the funnel, the samples' lengths
      ──▶ a plan for this machine (runner/plan.py) ──▶ a commented recipe that load_recipe
      accepts, written in one step ──▶ the next command and the expected run time

One person goes by different names in different exports ("Sam Okafor" on WhatsApp, "SAM" in a
script, "Sam" on Telegram): spellings are grouped when one's words are all in the other's
(ignoring case, accents and emoji), and each file's own spellings go into its ``data`` entry.
Without a terminal nothing is asked: an unclear persona is an error that lists the candidates.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import sys
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from mlx_persona.core.errors import PersonaError
from mlx_persona.data.clean import CleanConfig, clean, closest_speakers
from mlx_persona.data.ingest import Source, read_source
from mlx_persona.data.rules import speakers
from mlx_persona.data.stats import render
from mlx_persona.runner import plan as planning
from mlx_persona.runner.recipe import load_recipe

CLEAR = 1.25  # the most active candidate is the persona only with this many times the next one's messages


@dataclass
class FileSurvey:
    """One export as init sees it."""

    path: Path
    format: str
    messages: int
    named: bool  # speakers are people (chats, scripts), not roles (ChatML, ShareGPT, ...)
    counts: dict[str, int]  # speaker -> messages
    first: _dt.date | None = None
    last: _dt.date | None = None

    def dates(self) -> str:
        return f"{self.first} to {self.last}" if self.first else "no dates"


@dataclass
class Person:
    """One person across files: their spelling(s) in each file, with message counts."""

    spellings: dict[Path, dict[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(n for names in self.spellings.values() for n in names.values())

    @property
    def name(self) -> str:
        """The spelling with the most messages."""
        tally: dict[str, int] = {}
        for names in self.spellings.values():
            for s, n in names.items():
                tally[s] = tally.get(s, 0) + n
        return max(tally, key=lambda s: (tally[s], s))

    def aliases(self) -> list[str]:
        seen = []
        for names in self.spellings.values():
            for s in sorted(names, key=lambda s: -names[s]):
                if s != self.name and s not in seen:
                    seen.append(s)
        return seen

    def label(self) -> str:
        files = len(self.spellings)
        also = f" (also {', '.join(self.aliases())})" if self.aliases() else ""
        return f"{self.name}{also}: {self.total} messages in {files} file{'s' * (files != 1)}"

    def add(self, path: Path, spelling: str, n: int) -> None:
        self.spellings.setdefault(path, {})[spelling] = n


def _words(name: str) -> frozenset:
    """A name's words without case, accents, marks or emoji."""
    kept = "".join(c for c in unicodedata.normalize("NFKD", name.casefold()) if c.isalnum() or c.isspace())
    return frozenset(kept.split())


def _same_person(a: str, b: str) -> bool:
    wa, wb = _words(a), _words(b)
    return bool(wa and wb) and (wa <= wb or wb <= wa)


def _date(t: float, fmt: str) -> _dt.date:
    # WhatsApp counts seconds from day 1 of year 1 (date ordinals); every other reader from 1970
    if fmt == "whatsapp":
        return _dt.date.fromordinal(int(t // 86400))
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).date()


def survey(paths, cfg: CleanConfig | None = None) -> list[FileSurvey]:
    """Read each export (format detected by content) and count who wrote what, and when."""
    out = []
    for p in paths:
        fmt, res = read_source(Source(str(p)), cfg or CleanConfig())
        times = [t.time for c in res.conversations for t in c.turns if t.time is not None]
        named = bool(res.conversations) and all(c.named for c in res.conversations)
        s = FileSurvey(Path(p), fmt, res.messages, named, speakers(res.conversations))
        if times:
            s.first, s.last = _date(min(times), fmt), _date(max(times), fmt)
        out.append(s)
    return out


def people(files: list[FileSurvey]) -> list[Person]:
    """Group the speakers of the named files into people, the most active first."""
    entries = sorted(
        ((n, f.path, s) for f in files if f.named for s, n in f.counts.items()), key=lambda e: (-e[0], e[2])
    )
    found: list[Person] = []
    for n, path, spelling in entries:
        home = next(
            (p for p in found if any(_same_person(spelling, s) for ns in p.spellings.values() for s in ns)), None
        )
        if home is None:
            home = Person()
            found.append(home)
        home.add(path, spelling, n)
    return sorted(found, key=lambda p: (-len(p.spellings), -p.total, p.name))


def propose(files: list[FileSurvey], found: list[Person]) -> Person | None:
    """The person in every named file, or the clearly most active; None when it is not clear."""
    n_files = sum(f.named for f in files)
    pool = [p for p in found if len(p.spellings) == n_files] or found
    pool = sorted(pool, key=lambda p: -p.total)
    if not pool:
        return None
    if len(pool) == 1 or pool[0].total >= CLEAR * pool[1].total:
        return pool[0]
    return None


def from_names(names, files: list[FileSurvey], found: list[Person]) -> Person:
    """The person ``--persona`` names: every group holding one of the names, joined."""
    wanted = [n for n in names if n.strip()]
    chosen = Person()
    for p in found:
        if any(_words(s) == _words(w) for ns in p.spellings.values() for s in ns for w in wanted):
            for path, ns in p.spellings.items():
                for s, n in ns.items():
                    chosen.add(path, s, n)
    if not chosen.spellings and any(f.named for f in files):
        counts: dict[str, int] = {}
        for f in files:
            for s, n in f.counts.items():
                counts[s] = counts.get(s, 0) + n
        near = closest_speakers(wanted, counts)
        hint = f"; closest: {', '.join(repr(x) for x in near)}" if near else ""
        raise PersonaError(f"--persona {' / '.join(wanted)!r} is not a speaker in any of the exports{hint}")
    return chosen


def _candidates_line(found: list[Person], n: int = 5) -> str:
    return "; ".join(p.label() for p in sorted(found, key=lambda p: -p.total)[:n])


def _ask_person(files, found, proposal: Person | None) -> Person:
    """In a terminal: the numbered candidates, the proposal as the default."""
    ranked = sorted(found, key=lambda p: (p is not proposal, -p.total))[:9]
    click.echo("Who is the persona (the person the twin will be)?")
    for i, p in enumerate(ranked, 1):
        click.echo(f"  {i}. {p.label()}")
    while True:
        answer = click.prompt("number or name", default="1" if proposal else None, show_default=bool(proposal))
        if answer.strip().isdigit() and 1 <= int(answer) <= len(ranked):
            return ranked[int(answer) - 1]
        try:
            return from_names([answer], files, found)
        except PersonaError as e:
            click.echo(e.message)


def _fill_missing(files, person: Person, interactive: bool) -> list[FileSurvey]:
    """Named files where the persona has no spelling: ask which speaker they are, or stop."""
    keep = []
    for f in files:
        if not f.named or f.path in person.spellings:
            keep.append(f)
            continue
        top = sorted(f.counts.items(), key=lambda kv: -kv[1])
        if not interactive:
            listed = ", ".join(f"{s} ({n})" for s, n in top[:8])
            raise PersonaError(
                f"{f.path}: {person.name} is not among its speakers ({listed}); add their name there "
                f"with another --persona, or leave the file out"
            )
        click.echo(f"{f.path}: which speaker is {person.name}?")
        for i, (s, n) in enumerate(top[:9], 1):
            click.echo(f"  {i}. {s} ({n} messages)")
        answer = click.prompt("number (Enter: leave this file out)", default="", show_default=False)
        if answer.strip().isdigit() and 1 <= int(answer) <= min(9, len(top)):
            s, n = top[int(answer) - 1]
            person.add(f.path, s, n)
            keep.append(f)
    return keep


def choose_persona(files, names, interactive: bool) -> tuple[Person, list[FileSurvey]]:
    """The persona and the files to train on; PersonaError when unclear without a terminal."""
    found = people(files)
    if not any(f.named for f in files):  # role-based files only: the assistant role is the persona
        return _RolePerson(names[0] if names else "assistant"), files
    if names:
        person = from_names(names, files, found)
    else:
        proposal = propose(files, found)
        if interactive:
            person = _ask_person(files, found, proposal)
        elif proposal is None:
            raise PersonaError(f"cannot tell who the persona is: {_candidates_line(found)}. Give --persona NAME")
        else:
            person = proposal
    return person, _fill_missing(files, person, interactive)


class _RolePerson(Person):
    """The persona of role-based exports only (the assistant role), named by --persona or 'assistant'."""

    def __init__(self, name: str):
        super().__init__()
        self._name = name

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._name

    @property
    def total(self) -> int:  # type: ignore[override]
        return 0


def _scalar(v) -> str:
    """One YAML value (strings double-quoted, floats in a form YAML reads back as floats)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        r = repr(v)
        return f"{v:.1e}" if "e" in r else r
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if isinstance(v, str):
        plain = _PLAIN.fullmatch(v) and v.lower() not in _YAML_WORDS
        return v if plain else json.dumps(v, ensure_ascii=False)
    return str(v)


_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*")  # written without quotes
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}  # ... unless YAML reads them otherwise


def _relative(path: Path, here: Path) -> str:
    """A path as the recipe writes it: relative to the recipe's folder when that is near, else absolute."""
    rel = os.path.relpath(path.resolve(), here)
    return rel if rel.split(os.sep).count("..") <= 1 else str(path.resolve())


def _line(text: str, comment: str | None, width: int = 40) -> str:
    return f"{text:<{width}} # {comment}" if comment else text


def _slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", unicodedata.normalize("NFKD", name.lower()).encode("ascii", "ignore").decode())
    return (s.strip("-") or "my") + "-twin"


def sources(files: list[FileSurvey], person: Person) -> list[Source]:
    """One Source per file: the persona's spellings in it (role-based files: the assistant role)."""
    out = []
    for f in files:
        names = sorted(person.spellings.get(f.path, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        spelled = [s for s, _ in names]
        out.append(Source(str(f.path), f.format, spelled[0] if spelled else None, tuple(spelled[1:])))
    return out


def recipe_text(
    out: Path, person: Person, files: list[FileSurvey], srcs: list[Source], plan, machine, stats: dict
) -> str:
    """The recipe, every choice with its reason in a comment."""
    here = out.resolve().parent
    funnel, splits = stats["funnel"], stats["splits"]
    name = _slug(person.name)
    lines = [
        f"# {name} — written by `mlx-persona init` for {person.name}, for this machine:",
        f"#   {machine.describe()}",
        f"# Data: {funnel['messages_in']} messages → {funnel['samples_out']} samples "
        f"({splits['train']['samples']} train / {splits['valid']['samples']} valid / {splits['test']['samples']} test).",
        f"# Takes about {_duration(plan.total_seconds)} (rough: from the measured matmul speed, runner/plan.py). Run:",
        f"#   mlx-persona run {out}",
        "# Every value below can be changed; `mlx-persona run` checks the file before it starts.",
        f"name: {name}",
        "",
        "persona:",
        _line(f"  name: {_scalar(person.name)}", f"{person.total} messages" if person.total else "the assistant role"),
    ]
    if person.aliases():
        lines.append(_line(f"  aliases: {_scalar(person.aliases())}", "the other spellings found"))
    system = f"You are {person.name}. Reply the way {person.name} does."
    lines += [
        _line(f"  system: {_scalar(system)}", "one line; say who they are if you like"),
        "",
        _line(f"model: {plan.model}", plan.model_why, 24),
        "",
        "data:                   # relative paths are read from this file's folder",
    ]
    for f, s in zip(files, srcs):
        entry = f"path: {_scalar(_relative(f.path, here))}, format: {f.format}"
        if s.persona:
            entry += f", persona: {_scalar(s.persona)}"
        if s.aliases:
            entry += f", aliases: {_scalar(list(s.aliases))}"
        if f.named:
            mine = sum(person.spellings.get(f.path, {}).values())
            why = f"{mine} of {f.messages} messages, {f.dates()}"
        else:
            why = f"{f.messages} messages; roles: the assistant is the persona"
        lines.append(_line(f"  - {{{entry}}}", why, 0))
    lines += ["", "split: {train: 0.8, valid: 0.1, test: 0.1, seed: 0}   # by conversation"]
    if plan.budget_device:
        lines += ["", f"budget: {{device: {plan.budget_device}}}   # this Mac's memory profile"]
    for block, items in plan.blocks.items():
        lines += ["", f"{block}:"]
        lines += [_line(f"  {k}: {_scalar(v)}", why, 30) for k, v, why in items]
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def _show(files: list[FileSurvey], console: Console) -> None:
    table = Table(title="exports", show_header=True)
    for col in ("file", "format", "messages", "dates", "speakers"):
        table.add_column(col, justify="right" if col == "messages" else "left")
    for f in files:
        who = sorted(f.counts.items(), key=lambda kv: -kv[1])
        listed = ", ".join(f"{s} {n}" for s, n in who[:6]) + (f", +{len(who) - 6}" if len(who) > 6 else "")
        if not f.named:
            listed = f"roles: {listed}"
        table.add_row(str(f.path), f.format, str(f.messages), f.dates(), listed)
    console.print(table)


def run_init(exports, names=(), out="my-twin.yaml", hours: float | None = None, force: bool = False, interactive=False):
    """The whole of ``init``; returns the written recipe's path."""
    console = Console()
    out = Path(out)
    if out.exists() and not force:
        raise PersonaError(f"{out} exists; give another --out, or --force to replace it")
    if hours is not None and hours <= 0:
        raise PersonaError(f"--hours must be positive, got {hours:g}")
    files = survey(exports)
    _show(files, console)
    person, files = choose_persona(files, list(names), interactive)
    if not files:
        raise PersonaError("no export left to train on")
    console.print(f"persona: [bold]{person.name}[/]" + (f" ({person.label()})" if person.total else ""))
    srcs = sources(files, person)
    names_all = [person.name, *person.aliases()]
    machine = planning.this_machine()
    with tempfile.TemporaryDirectory(prefix="mlx-persona-init-") as tmp:
        lengths = clean(srcs, names_all, Path(tmp, "lengths"), CleanConfig())
        plan = planning.make_plan(machine, lengths, hours)
        block = {k: v for k, v, _ in plan.blocks["clean"]}
        block["persona_line"] = f"You are {person.name}. Reply the way {person.name} does."
        stats = clean(srcs, names_all, Path(tmp, "clean"), CleanConfig.from_mapping(block))
    render(stats, console)
    for note in plan.notes:  # before anything is written
        Console(stderr=True).print(f"[yellow]warning[/]: {note}", soft_wrap=True)
    text = recipe_text(out, person, files, srcs, plan, machine, stats)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".yaml", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            load_recipe(Path(tmp_name))
        except PersonaError as e:  # our bug, not the user's: say so, write nothing
            raise PersonaError(f"init made a recipe that run would refuse ({e.message}); please report it") from None
        os.replace(tmp_name, out)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    console.print(f"machine: {machine.describe()}")
    console.print(f"model: {plan.model} — {plan.model_why}", soft_wrap=True)
    console.print(f"wrote {out}; expected run time about {_duration(plan.total_seconds)} (rough)")
    click.echo(f"next: mlx-persona run {out}")
    return out


@click.command("init")
@click.argument("exports", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--persona", multiple=True, help="Your name in the exports; repeat for other spellings.")
@click.option("--out", default="my-twin.yaml", show_default=True, help="The recipe to write.")
@click.option("--hours", type=float, help="Plan the run to take about this long (e.g. 8 for overnight).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def init_command(exports, persona, out, hours, force) -> None:
    """Write a recipe for your own chat exports (EXPORT...): persona, model and settings for this machine."""
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    run_init(exports, persona, out, hours, force, interactive)
