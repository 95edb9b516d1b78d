"""Recipes: one YAML file that says everything a run needs, checked before any stage starts.

    name: quickstart                  # run folder name under runs/ (overridden by --name)
    persona: {name: Sam, system: "You are Sam, ..."}
    model: default                    # folder, hub id, or 'default'
    data:                             # raw chat sources (paths relative to the recipe file)
      - {path: ../data/sample/whatsapp.txt, format: whatsapp, persona: Sam}
    clean: {...}   split: {...}   budget: {...}
    sft: {...}     fuse: {...}    pairs: {...}    dpo: {...}    eval: {...}
    export: {to: [ollama, mlx], quant: q8_0}   # written once the twin exists (export/config.py)
    stages: [clean, sft, sft_fuse, pairs, dpo, dpo_fuse, eval, report]

Each block is the typed settings dataclass of the stage that owns it (``CleanConfig`` in
data/clean.py, ``SFTConfig`` in sft/config.py, ...; the runner's own below), read and checked
the one way every settings block is (:class:`~mlx_persona.core.settings.Settings`). Precedence: ``--set block.key=value`` on the
command line, then the YAML, then each dataclass's defaults. Errors name the file and line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlx_persona.core.errors import PersonaError
from mlx_persona.core.settings import (
    Settings,
    Where,
    apply_override,
    load_yaml_with_lines,
    parse_override,
    unknown,
    where,
)
from mlx_persona.data.clean import CleanConfig
from mlx_persona.dpo.config import DPOConfig
from mlx_persona.export.config import ExportConfig
from mlx_persona.pairs.config import PairsConfig
from mlx_persona.runner.stages import STAGE_NAMES
from mlx_persona.sft.config import SFTConfig
from mlx_persona.train.launch import DistributedBlock


@dataclass
class PersonaBlock(Settings):
    block = "persona"

    name: str = field(metadata={"help": "The person: their speaker name in the raw chats (or a role)."})
    system: str | None = field(
        default=None,
        metadata={"help": "One-line system prompt for the twin; replaces long system prompts when cleaning."},
    )
    aliases: list = field(default_factory=list, metadata={"help": "Other spellings of the name in the chats."})


@dataclass
class SourceBlock(Settings):
    block = "data"

    path: str = field(metadata={"help": "A raw chat file (relative paths: from the recipe's folder)."})
    format: str | None = field(default=None, metadata={"help": "Reader to use; default: detect."})
    persona: str | None = field(default=None, metadata={"help": "The persona's speaker name in this file."})
    aliases: list = field(default_factory=list, metadata={"help": "Other spellings of the persona in this file alone."})


@dataclass
class SplitBlock(Settings):
    block = "split"

    train: float = field(default=0.8, metadata={"help": "Share of conversations for training."})
    valid: float = field(default=0.1, metadata={"help": "Share for validation (early stopping, DPO pairs)."})
    test: float = field(default=0.1, metadata={"help": "Share held out for evaluation."})
    seed: int = field(default=0, metadata={"help": "Seed of the split (by conversation)."})


@dataclass
class BudgetBlock(Settings):
    block = "budget"

    device: str | None = field(
        default=None, metadata={"help": "Device profile, e.g. m-series-16gb; default: this machine."}
    )
    memory_gb: float | None = field(default=None, metadata={"help": "Memory to plan for, instead of a profile."})
    force: bool = field(default=False, metadata={"help": "Run stages even when the estimate says they will not fit."})


@dataclass
class FuseBlock(Settings):
    block = "fuse"

    dequantize: bool = field(default=False, metadata={"help": "Write float weights even when the base is quantized."})
    gguf: bool = field(default=False, metadata={"help": "Also export the final twin as GGUF (llama family)."})


@dataclass
class EvalBlock(Settings):
    block = "eval"

    limit: int | None = field(default=None, metadata={"help": "Evaluate at most this many test conversations."})
    max_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Longest generated reply per test prompt. Unset: room for the person's long replies (1.5x their 99th-percentile reply in tokens, at least 64)."
        },
    )
    batch_size: int = field(default=16, metadata={"help": "Test prompts generated together."})
    perplexity: bool = field(default=True, metadata={"help": "Also measure perplexity on the real replies."})
    samples: int = field(
        default=1,
        metadata={
            "help": "Replies per test prompt: 1 greedy reply, or more sampled at temperature (figures over all of them)."
        },
    )
    temperature: float = field(
        default=0.0, metadata={"help": "Sampling temperature of the test replies (0: greedy; chat uses 0.7)."}
    )

    def validate(self, where: str | None = None) -> None:
        from mlx_persona.eval.evaluate import check_sampling

        if (
            (self.max_tokens is not None and self.max_tokens < 1)
            or self.batch_size < 1
            or (self.limit is not None and self.limit < 1)
        ):
            raise PersonaError(f"{where or self.block}: limit, max_tokens and batch_size must be at least 1")
        check_sampling(self.samples, self.temperature, where or self.block)


# the blocks of settings a recipe holds, each the dataclass of the stage (or the runner) that reads it
BLOCKS: dict[str, type[Settings]] = {
    b.block: b
    for b in (
        SplitBlock,
        BudgetBlock,
        CleanConfig,
        SFTConfig,
        FuseBlock,
        PairsConfig,
        DPOConfig,
        EvalBlock,
        ExportConfig,
        DistributedBlock,
    )
}


@dataclass
class Recipe:
    name: str
    persona: PersonaBlock
    model: str
    data: list  # [SourceBlock]
    stages: tuple
    clean: CleanConfig
    split: SplitBlock
    budget: BudgetBlock
    sft: SFTConfig
    fuse: FuseBlock
    pairs: PairsConfig
    dpo: DPOConfig
    eval: EvalBlock
    export: ExportConfig
    distributed: DistributedBlock = field(default_factory=DistributedBlock)  # sft and dpo across hosts
    source: Path | None = None
    sweep: Any = None  # {dotted.key: [values]}: run once per value (see sweep.py)
    raw: dict = field(default_factory=dict)  # the resolved YAML, as written to the run folder

    def enabled(self, stage: str) -> bool:
        return stage in self.stages


TOP_KEYS = (
    "name",
    "persona",
    "model",
    "data",
    "stages",
    "clean",
    "split",
    "budget",
    "sft",
    "fuse",
    "pairs",
    "dpo",
    "eval",
    "export",
    "distributed",
    "sweep",
)


def _resolve_path(raw: str, recipe_dir: Path) -> Path:
    p = Path(raw).expanduser()
    if p.is_absolute():
        return p
    for base in (recipe_dir, Path.cwd()):
        if (base / p).exists():
            return (base / p).resolve()
    return (recipe_dir / p).resolve()


def load_recipe(path: Path, overrides: tuple = (), name: str | None = None) -> Recipe:
    """Read, override, type-check and validate a recipe; raises PersonaError with file:line."""
    path = Path(path)
    if not path.is_file():
        raise PersonaError(f"recipe not found: {path}")
    data, lines = load_yaml_with_lines(path)
    if not isinstance(data, dict):
        raise PersonaError(f"{path}: a recipe is a mapping of blocks (name, persona, model, data, ...)")
    for text in overrides:
        keys, value = parse_override(text)
        if keys[0] not in TOP_KEYS:
            raise unknown(keys[0], TOP_KEYS, f"--set {text}", what="block")
        apply_override(data, keys, value)
    for key in data:
        if key not in TOP_KEYS:
            raise unknown(key, TOP_KEYS, where(path, lines, (str(key),)), what="key")

    def at(*keys: str) -> Where:
        return Where(keys, path, lines)

    persona_raw = data.get("persona")
    if isinstance(persona_raw, str):
        persona_raw = {"name": persona_raw}
    if not isinstance(persona_raw, dict) or not persona_raw.get("name"):
        raise PersonaError(f"{at('persona')}: persona.name is required (the person's speaker name)")
    persona = PersonaBlock.from_mapping(persona_raw, at("persona"))

    model = data.get("model", "default")
    if not isinstance(model, str) or not model.strip():
        raise PersonaError(f"{at('model')}: expected a model folder, hub id or 'default'")

    sources_raw = data.get("data")
    if isinstance(sources_raw, dict):
        sources_raw = sources_raw.get("sources")
    if not isinstance(sources_raw, list) or not sources_raw:
        raise PersonaError(f"{at('data')}: data must list at least one source ({{path: ...}})")
    sources = []
    for i, item in enumerate(sources_raw):
        item = {"path": item} if isinstance(item, str) else item
        src = SourceBlock.from_mapping(item, at("data", str(i)))
        resolved = _resolve_path(src.path, path.parent)
        if not resolved.is_file():
            raise PersonaError(f"{at('data', str(i))}: data file not found: {src.path}")
        src.path = str(resolved)
        sources.append(src)

    stages = data.get("stages", list(STAGE_NAMES))
    if isinstance(stages, str):
        stages = [s.strip() for s in stages.split(",")]
    for s in stages:
        if s not in STAGE_NAMES:
            raise unknown(s, STAGE_NAMES, str(at("stages")), what="stage")

    blocks = {}
    for key, cls in BLOCKS.items():  # split first: the clean block takes its shares
        raw = data.get(key) or {}
        if key == "clean" and isinstance(raw, dict) and "scrub" not in raw and not raw.get("pii"):
            raw = {**raw, "scrub": True}  # a recipe scrubs personal data unless it says scrub: false
        if key == "clean" and persona.system and "persona_line" not in raw:
            raw = {**raw, "persona_line": persona.system}
        if key == "clean" and "split" in data and "splits" not in raw:
            split = blocks["split"]
            raw = {**raw, "splits": (split.train, split.valid, split.test), "seed": split.seed}
        if key == "clean" and isinstance(raw, dict) and raw.get("block_words"):
            raw = {**raw, "block_words": str(_resolve_path(str(raw["block_words"]), path.parent))}  # like data paths
        blocks[key] = cls.from_mapping(raw, at(key))

    recipe = Recipe(
        name=str(name or data.get("name") or path.stem),
        persona=persona,
        model=model.strip(),
        data=sources,
        stages=tuple(stages),
        source=path.resolve(),
        sweep=data.get("sweep"),
        **blocks,
    )
    recipe.raw = to_dict(recipe)
    return recipe


def to_dict(recipe: Recipe) -> dict:
    """The resolved recipe as plain data (written as the run folder's recipe.yaml)."""

    def plain(v):
        if dataclasses.is_dataclass(v):
            return {k: plain(x) for k, x in dataclasses.asdict(v).items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    out = {k: plain(getattr(recipe, k)) for k in TOP_KEYS if k != "sweep"}
    return out
