"""``mlx-persona refresh RUN NEW_EXPORTS...``: keep a twin current with the person's new chats.

    RUN (finished) ──▶ clean NEW_EXPORTS with the run's settings ──▶ what is new?
      messages: (speaker, text, time) not in the run's exports; samples: (prompt, reply) not in
      the run's cleaned splits
    ──▶ RUN/vN/clean: new train + a replay share of the old train split (so the twin does not
        forget), new valid and test splits
    ──▶ the recipe's stages from sft on, into RUN/vN/, with the run's twin as the base model

Continuing from the last twin: mlx-persona's SFT starts a fresh adapter, so the new version
trains its adapter on the *fused* twin (base + the run's adapters, ``run_twin``). It starts
from exactly the old twin's function, as continuing its adapter would, and leaves the old
adapter and every file of the first run untouched. The new version's eval measures the old
twin (as its ``base``) and the new one on the new test split, side by side in its report.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import Manifest, atomic_dir, atomic_write_json, fingerprint, run_twin, tree_fingerprint
from mlx_persona.runner.stages import STAGE

REFRESH_FILE = "refresh.json"  # in RUN/vN/: where it came from and what was new


def next_version(run: Path) -> Path:
    n = 2
    while (run / f"v{n}").exists():
        n += 1
    return run / f"v{n}"


def _read_jsonl(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []


def _key(line: str) -> str:
    """A sample by the exchange it trains: the message before the reply, and the reply."""
    msgs = json.loads(line)["messages"]
    return json.dumps([msgs[-2]["content"], msgs[-1]["content"]], ensure_ascii=False)


def _message_keys(sources, cfg) -> set:
    """(speaker, text, time) of every message in ``sources`` (the by-message test of new)."""
    from mlx_persona.data.ingest import read_source

    keys = set()
    for s in sources:
        try:
            _, res = read_source(s, cfg)
        except PersonaError:
            continue
        keys.update((t.speaker.casefold(), t.text.strip(), t.time) for c in res.conversations for t in c.turns)
    return keys


def build_data(old_clean: Path, new_clean: Path, out: Path, replay: float, seed: int) -> dict:
    """``out``: the new samples (not in the old splits), plus ``replay`` of the old train split
    in the train split (as a share of it). Returns the counts."""
    seen = {_key(ln) for name in ("train", "valid", "test") for ln in _read_jsonl(old_clean / layout.split_file(name))}
    splits, repeated = {}, 0
    for name in ("train", "valid", "test"):
        lines = _read_jsonl(new_clean / layout.split_file(name))
        splits[name] = [ln for ln in lines if _key(ln) not in seen]
        repeated += len(lines) - len(splits[name])
    if not splits["train"]:
        raise PersonaError("nothing new to learn: every sample of the new exports is already in the run's data")
    old_train = _read_jsonl(old_clean / layout.TRAIN_SPLIT)
    k = min(len(old_train), round(replay / (1 - replay) * len(splits["train"]))) if replay > 0 else 0
    replayed = random.Random(seed).sample(old_train, k)
    splits["train"] = splits["train"] + replayed
    random.Random(seed).shuffle(splits["train"])
    if not splits["valid"]:  # too few new conversations for a validation split: the old one
        splits["valid"] = _read_jsonl(old_clean / layout.VALID_SPLIT)
    counts = {
        "new_samples": {n: len(v) for n, v in splits.items()},
        "replayed": len(replayed),
        "already_in_run": repeated,
    }
    counts["new_samples"]["train"] -= len(replayed)
    stats = json.loads((new_clean / layout.STATS).read_text(encoding="utf-8"))
    stats["refresh"] = counts
    with atomic_dir(out) as tmp:
        for name, lines in splits.items():
            if lines:
                (tmp / layout.split_file(name)).write_text("".join(x + "\n" for x in lines), encoding="utf-8")
        (tmp / layout.REJECTS).write_text((new_clean / layout.REJECTS).read_text(encoding="utf-8"), encoding="utf-8")
        (tmp / layout.STATS).write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return counts


def refresh(
    run: str | Path,
    exports: Sequence[str | Path],
    replay: float = 0.3,
    overrides: Sequence[str] = (),
    fmt: str | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Make ``run/vN`` from ``run`` and ``exports``; returns the new version's folder."""
    import tempfile

    from mlx_persona.data.clean import clean
    from mlx_persona.data.ingest import Source
    from mlx_persona.runner.pipeline import run_recipe
    from mlx_persona.runner.recipe import load_recipe

    run = Path(run)
    if not (run / layout.RECIPE).is_file():
        raise PersonaError(f"{run}: not a run folder (no {layout.RECIPE}); give runs/NAME")
    if not 0 <= replay < 1:
        raise PersonaError(f"--replay {replay}: give a share from 0 up to (not including) 1")
    twin = run_twin(run)
    if twin is None:
        raise PersonaError(f"{run}: no twin yet (no fused model); finish the run first")
    old_clean = run / layout.CLEAN_DIR
    if not (old_clean / layout.TRAIN_SPLIT).is_file():
        raise PersonaError(f"{old_clean}: no cleaned data; finish the run first")
    for p in exports:
        if not Path(p).is_file():
            raise PersonaError(f"new export not found: {p}")
    recipe = load_recipe(run / layout.RECIPE, tuple(overrides))
    names = [recipe.persona.name, *recipe.persona.aliases]
    new_sources = [Source(str(Path(p).resolve()), fmt) for p in exports]

    old_keys = _message_keys([Source(s.path, s.format, s.persona) for s in recipe.data], recipe.clean)
    new_keys = _message_keys(new_sources, recipe.clean)
    fresh = new_keys - old_keys
    log(f"new exports: {len(new_keys)} messages, {len(fresh)} not in the run's exports")

    version = next_version(run)
    with tempfile.TemporaryDirectory(prefix="refresh-") as tmp:
        clean(new_sources, names, Path(tmp) / "clean", recipe.clean)
        counts = build_data(old_clean, Path(tmp) / "clean", version / layout.CLEAN_DIR, replay, recipe.clean.seed)
    n = counts["new_samples"]
    log(
        f"new samples: {n['train']} train, {n['valid']} valid, {n['test']} test "
        f"({counts['already_in_run']} already in the run); replayed {counts['replayed']} old train samples"
    )
    recipe.model = str(twin[1])  # continue from the last twin
    recipe.name = f"{recipe.name}-{version.name}"
    recipe.data = [*recipe.data, *[_block(s) for s in new_sources]]
    from mlx_persona.runner.recipe import to_dict

    recipe.raw = to_dict(recipe)
    atomic_write_json(
        version / REFRESH_FILE,
        {
            "from_run": str(run.resolve()),
            "from_twin": {"name": twin[0], "folder": str(twin[1])},
            "new_exports": [s.path for s in new_sources],
            "messages": {"in_new_exports": len(new_keys), "new": len(fresh)},
            **counts,
            "replay": replay,
        },
    )
    manifest = Manifest(version)  # the clean stage's output is ours: recorded done, skipped by the runner
    s = STAGE["clean"]
    manifest.update(
        "clean",
        status="done",
        output=fingerprint([tree_fingerprint(version / s.folder / k) for k in s.outputs]),
        summary={"refresh": True},
    )
    first = next(st for st in ("sft", "sft_fuse", "pairs", "dpo", "dpo_fuse", "twin", "eval") if recipe.enabled(st))
    run_recipe(recipe, version, from_stage=first, log=log)
    return version


def _block(source):
    from mlx_persona.runner.recipe import SourceBlock

    return SourceBlock(path=source.path, format=source.format)


@click.command("refresh")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("exports", nargs=-1, required=True)
@click.option(
    "--replay", default=0.3, show_default=True, type=float, help="Share of old train samples in the new train split."
)
@click.option("--format", "fmt", help="Format of the new exports (default: detect).")
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe setting, e.g. sft.iters=40."
)
def refresh_command(run_dir: Path, exports, replay: float, fmt: str | None, overrides) -> None:
    """Update a finished run's twin with new chat exports, into RUN/vN/ (the run is untouched).

    Cleans the new exports with the run's settings, keeps what the run has not seen, trains
    from the run's twin on it plus a replay share of the old data, then runs the recipe's
    remaining stages; the new report shows the old twin (base) beside the new one.
    """
    version = refresh(run_dir, exports, replay, overrides, fmt, log=click.echo)
    click.echo(f"refreshed twin: {version}  (report: {version / layout.REPORT_HTML})")
