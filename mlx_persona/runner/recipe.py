"""Recipes: one YAML file that says everything a run needs, checked before any stage starts.

    name: quickstart                  # run folder name under runs/ (overridden by --name)
    persona: {name: Sam, system: "You are Sam, ..."}
    model: default                    # folder, hub id, or 'default'
    data:                             # raw chat sources (paths relative to the recipe file)
      - {path: ../data/sample/whatsapp.txt, format: whatsapp, persona: Sam}
    clean: {...}   split: {...}   budget: {...}
    sft: {...}     fuse: {...}    pairs: {...}    dpo: {...}    eval: {...}
    stages: [clean, sft, sft_fuse, pairs, dpo, dpo_fuse, eval, report]

Each block is the typed settings dataclass of the stage that owns it (``CleanConfig`` in
data/clean.py, ``SFTConfig`` in sft/config.py, ...). Precedence: ``--set block.key=value`` on the
command line, then the YAML, then each dataclass's defaults. Errors name the file and line.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from mlx_persona.core.errors import PersonaError
from mlx_persona.core.settings import apply_override, from_mapping, load_yaml_with_lines, parse_override, where
from mlx_persona.runner.stages import STAGE_NAMES

# block name -> (module, dataclass) of the stage that owns the settings
BLOCK_TYPES = {
    "clean": ("mlx_persona.data.clean", "CleanConfig"),
    "sft": ("mlx_persona.sft.config", "SFTConfig"),
    "pairs": ("mlx_persona.pairs.build", "PairsConfig"),
    "dpo": ("mlx_persona.dpo.config", "DPOConfig"),
    "eval": ("mlx_persona.runner.recipe", "EvalBlock"),
}


@dataclass
class PersonaBlock:
    name: str = field(metadata={"help": "The person: their speaker name in the raw chats (or a role)."})
    system: Optional[str] = field(default=None, metadata={"help": "One-line system prompt for the twin; "
                                                                  "replaces long system prompts when cleaning."})
    aliases: list = field(default_factory=list, metadata={"help": "Other spellings of the name in the chats."})


@dataclass
class SourceBlock:
    path: str = field(metadata={"help": "A raw chat file (relative paths: from the recipe's folder)."})
    format: Optional[str] = field(default=None, metadata={"help": "Reader to use; default: detect."})
    persona: Optional[str] = field(default=None, metadata={"help": "The persona's speaker name in this file."})


@dataclass
class SplitBlock:
    train: float = field(default=0.8, metadata={"help": "Share of conversations for training."})
    valid: float = field(default=0.1, metadata={"help": "Share for validation (early stopping, DPO pairs)."})
    test: float = field(default=0.1, metadata={"help": "Share held out for evaluation."})
    seed: int = field(default=0, metadata={"help": "Seed of the split (by conversation)."})


@dataclass
class BudgetBlock:
    device: Optional[str] = field(default=None, metadata={"help": "Device profile, e.g. m-series-16gb; default: this machine."})
    memory_gb: Optional[float] = field(default=None, metadata={"help": "Memory to plan for, instead of a profile."})
    force: bool = field(default=False, metadata={"help": "Run stages even when the estimate says they will not fit."})


@dataclass
class FuseBlock:
    dequantize: bool = field(default=False, metadata={"help": "Write float weights even when the base is quantized."})
    gguf: bool = field(default=False, metadata={"help": "Also export the final twin as GGUF (llama family)."})


@dataclass
class EvalBlock:
    limit: Optional[int] = field(default=None, metadata={"help": "Evaluate at most this many test conversations."})
    max_tokens: int = field(default=96, metadata={"help": "Longest generated reply per test prompt."})
    batch_size: int = field(default=16, metadata={"help": "Test prompts generated together."})
    perplexity: bool = field(default=True, metadata={"help": "Also measure perplexity on the real replies."})

    def validate(self, where: str = "eval") -> None:
        if self.max_tokens < 1 or self.batch_size < 1 or (self.limit is not None and self.limit < 1):
            raise PersonaError(f"{where}: limit, max_tokens and batch_size must be at least 1")


@dataclass
class Recipe:
    name: str
    persona: PersonaBlock
    model: str
    data: list
    stages: tuple
    clean: Any
    split: SplitBlock
    budget: BudgetBlock
    sft: Any
    fuse: FuseBlock
    pairs: Any
    dpo: Any
    eval: Any
    source: Optional[Path] = None
    sweep: Any = None  # {dotted.key: [values]}: run once per value (see sweep.py)
    raw: dict = field(default_factory=dict)  # the resolved YAML, as written to the run folder

    def enabled(self, stage: str) -> bool:
        return stage in self.stages


TOP_KEYS = ("name", "persona", "model", "data", "stages", "clean", "split", "budget", "sft", "fuse",
            "pairs", "dpo", "eval", "sweep")


def _block_class(block: str):
    module, cls = BLOCK_TYPES[block]
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError):
        return None  # the stage is not installed in this version: its block is kept as a mapping


def _validate(obj, label: str) -> None:
    """Run a block's own checks; SFT-style blocks take the label for their messages, others don't."""
    import inspect

    check = getattr(obj, "validate", None)
    if check is None:
        return
    if inspect.signature(check).parameters:
        check(label)
    else:
        check()


def _resolve_path(raw: str, recipe_dir: Path) -> Path:
    p = Path(raw).expanduser()
    if p.is_absolute():
        return p
    for base in (recipe_dir, Path.cwd()):
        if (base / p).exists():
            return (base / p).resolve()
    return (recipe_dir / p).resolve()


def load_recipe(path: Path, overrides: tuple = (), name: Optional[str] = None) -> Recipe:
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
            near = difflib.get_close_matches(keys[0], TOP_KEYS, n=1)
            raise PersonaError(f"--set {text}: unknown block '{keys[0]}'" + (f" (did you mean '{near[0]}'?)" if near else ""))
        apply_override(data, keys, value)
    for key in data:
        if key not in TOP_KEYS:
            near = difflib.get_close_matches(str(key), TOP_KEYS, n=1, cutoff=0.5)
            hint = f" (did you mean '{near[0]}'?)" if near else f" (valid: {', '.join(TOP_KEYS)})"
            raise PersonaError(f"{where(path, lines, (str(key),))}: unknown key '{key}'{hint}")

    def block(key: str, cls):
        return from_mapping(cls, data.get(key), (key,), path, lines)

    persona_raw = data.get("persona")
    if isinstance(persona_raw, str):
        persona_raw = {"name": persona_raw}
    if not isinstance(persona_raw, dict) or not persona_raw.get("name"):
        raise PersonaError(f"{where(path, lines, ('persona',))}: persona.name is required (the person's speaker name)")
    persona = from_mapping(PersonaBlock, persona_raw, ("persona",), path, lines)

    model = data.get("model", "default")
    if not isinstance(model, str) or not model.strip():
        raise PersonaError(f"{where(path, lines, ('model',))}: expected a model folder, hub id or 'default'")

    sources_raw = data.get("data")
    if isinstance(sources_raw, dict):
        sources_raw = sources_raw.get("sources")
    if not isinstance(sources_raw, list) or not sources_raw:
        raise PersonaError(f"{where(path, lines, ('data',))}: data must list at least one source ({{path: ...}})")
    sources = []
    for i, item in enumerate(sources_raw):
        item = {"path": item} if isinstance(item, str) else item
        src = from_mapping(SourceBlock, item, ("data", str(i)), path, lines)
        resolved = _resolve_path(src.path, path.parent)
        if not resolved.is_file():
            raise PersonaError(f"{where(path, lines, ('data', str(i)))}: data file not found: {src.path}")
        src.path = str(resolved)
        sources.append(src)

    stages = data.get("stages", list(STAGE_NAMES))
    if isinstance(stages, str):
        stages = [s.strip() for s in stages.split(",")]
    for s in stages:
        if s not in STAGE_NAMES:
            near = difflib.get_close_matches(str(s), STAGE_NAMES, n=1)
            raise PersonaError(f"{where(path, lines, ('stages',))}: unknown stage '{s}'"
                               + (f" (did you mean '{near[0]}'?)" if near else f" (stages: {', '.join(STAGE_NAMES)})"))

    split = block("split", SplitBlock)
    blocks = {}
    for key in BLOCK_TYPES:
        cls = _block_class(key)
        raw = data.get(key) or {}
        if key == "clean" and persona.system and "persona_line" not in raw:
            raw = {**raw, "persona_line": persona.system}
        if key == "clean" and "split" in data and "splits" not in raw:
            raw = {**raw, "splits": (split.train, split.valid, split.test), "seed": split.seed}
        blocks[key] = block_obj = from_mapping(cls, raw, (key,), path, lines) if cls else dict(raw)
        if cls:
            try:
                _validate(block_obj, where(path, lines, (key,)))
            except PersonaError as e:
                raise PersonaError(e.message if e.message.startswith(str(path)) else f"{path}: {e.message}") from None

    recipe = Recipe(name=str(name or data.get("name") or path.stem), persona=persona, model=model.strip(),
                    data=sources, stages=tuple(stages), split=split, budget=block("budget", BudgetBlock),
                    fuse=block("fuse", FuseBlock), source=path.resolve(), sweep=data.get("sweep"), **blocks)
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
