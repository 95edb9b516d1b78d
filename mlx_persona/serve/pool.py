"""Which models the server offers, and which of them sit in memory.

``catalogue(TARGET)`` names the models: for a run folder, its ``twin`` (what the twin stage
chose), ``sft`` and ``dpo`` (the fused models, or the base with the SFT adapter on top) and
``base`` (the model the run started from); for an MLX model folder (or ``default``), that one
model under its folder's name. Names that point at the same folder share one loaded copy.

:class:`ModelPool` loads a model on its first request and keeps the loaded ones within a memory
budget: before a load that would not fit, the least recently used model that is not generating
leaves (and the log says so). Only the engine's thread touches the pool, so MLX runs in one thread.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import run_base_model, run_persona_line, run_twin

log = logging.getLogger("mlx_persona.serve")
RUN_MODELS = ("twin", "sft", "dpo", "base")


@dataclass
class ModelEntry:
    """One model the server offers (an id of ``/v1/models``)."""

    name: str
    model: Path  # MLX model folder
    adapter: Path | None = None  # LoRA/DoRA adapter applied on top
    origin: str = ""  # where it comes from, for people: "dpo_fused/", "base + sft/"
    system: str | None = None  # the persona line the model was trained with (None: none)

    @property
    def key(self) -> tuple[str, str]:
        return str(self.model.resolve()), str(self.adapter.resolve()) if self.adapter else ""

    def describe(self) -> dict:
        """Parameters, adapter, quantisation and size on disk, read without loading weights."""
        info = {"origin": self.origin, "adapter": str(self.adapter) if self.adapter else None}
        fused = _read_json(self.model / layout.FUSED_FROM)
        if fused and not info["adapter"]:
            info["adapter"] = f"fused: {fused.get('adapter') or fused.get('adapters') or 'yes'}"
        cfg = _read_json(self.model / layout.MODEL_CONFIG)
        q = cfg.get("quantization") if isinstance(cfg.get("quantization"), dict) else None
        info["quantization"] = f"{q.get('bits')}-bit, group {q.get('group_size')}" if q else "none"
        try:
            from mlx_persona.budget.shapes import load_shape

            shape = load_shape(self.model)
            info["parameters"] = shape.total_params()
            if not q:
                info["quantization"] = f"none ({shape.dtype_bytes * 8}-bit floats)"
        except Exception:  # an architecture the budget does not know: the rest still says enough
            info["parameters"] = None
        info["size_gb"] = round(self.size_bytes() / 1e9, 4)
        return info

    def size_bytes(self) -> int:
        """Weights on disk: what loading them costs in memory, about."""
        files = list(self.model.glob("*.safetensors"))
        if self.adapter:
            files += list(self.adapter.glob("*.safetensors"))
        return sum(f.stat().st_size for f in files)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def catalogue(target: str, wanted: list[str] | None = None) -> list[ModelEntry]:
    """The models ``target`` (a run folder, an MLX model folder or ``default``) offers; ``wanted``
    picks some of a run's names. One-line error for a target or a name that is not there."""
    from mlx_persona.models.resolve import resolve_model

    p = Path(target).expanduser()
    if p.is_dir() and not layout.is_model_dir(p):
        return _run_catalogue(p, wanted)
    if not p.exists() and target != "default" and "/" not in target:
        raise PersonaError(f"no such run folder or model: {target}")
    model = resolve_model(target)
    entry = ModelEntry(Path(model).name, Path(model), origin=str(model))
    if wanted and wanted != [entry.name]:
        raise PersonaError(f"--models picks among a run folder's models; {target} is one model ({entry.name})")
    return [entry]


def _run_catalogue(run: Path, wanted: list[str] | None) -> list[ModelEntry]:
    from mlx_persona.models.resolve import resolve_model

    system = run_persona_line(run)
    base_spec = run_base_model(run)
    found: dict[str, ModelEntry] = {}

    def base_folder() -> Path | None:
        return Path(resolve_model(base_spec)) if base_spec else None

    twin = run_twin(run)
    for name, folder in (("sft", layout.SFT_FUSED_DIR), ("dpo", layout.DPO_FUSED_DIR)):
        if layout.is_model_dir(run / folder):
            found[name] = ModelEntry(name, run / folder, origin=f"{folder}/", system=system)
    if "sft" not in found and layout.is_adapter_dir(run / layout.SFT_DIR) and base_spec:
        found["sft"] = ModelEntry("sft", base_folder(), run / layout.SFT_DIR, f"base + {layout.SFT_DIR}/", system)
    if twin is not None:
        found["twin"] = ModelEntry(
            "twin", twin[1], origin=f"{twin[1].name}/ (the run's twin: {twin[0]})", system=system
        )
    elif "sft" in found:
        found["twin"] = ModelEntry("twin", found["sft"].model, found["sft"].adapter, found["sft"].origin, system)
    if base_spec:
        # the base model was never trained on the persona line; it gets it too, so the comparison is fair
        found["base"] = ModelEntry("base", base_folder(), origin=f"base model ({base_spec})", system=system)
    if not found:
        raise PersonaError(f"run {run} has no model to serve yet: finish it with `mlx-persona run RECIPE --resume`")
    names = wanted or [n for n in RUN_MODELS if n in found]
    missing = [n for n in names if n not in found]
    if missing:
        have = ", ".join(n for n in RUN_MODELS if n in found)
        raise PersonaError(f"run {run.name} has no {', '.join(missing)} model (it has: {have}); fix --models")
    return [found[n] for n in names]


@dataclass
class Loaded:
    """A model in memory, and what it has cost so far."""

    model: object
    tokenizer: object
    weights_gb: float  # active memory the load added
    loaded_at: float = field(default_factory=time.time)
    peak_gb: float = 0.0  # the process's peak memory while this model generated
    busy: int = 0  # sequences in flight: a busy model is never evicted
    generator: object = None  # its BatchGenerator (the engine makes it)


class ModelPool:
    """Loaded models keyed by folder (+ adapter), least recently used first, within ``budget_gb``."""

    def __init__(self, entries: list[ModelEntry], budget_gb: float):
        self.entries = {e.name: e for e in entries}
        self.budget_gb = budget_gb
        self.loaded: OrderedDict[tuple[str, str], Loaded] = OrderedDict()
        self.evictions: list[str] = []  # names, for the log and the dashboard

    def get(self, name: str) -> Loaded:
        """The loaded model ``name`` (loading it, after making room, when it is not in memory)."""
        entry = self.entries[name]
        if entry.key in self.loaded:
            self.loaded.move_to_end(entry.key)
            return self.loaded[entry.key]
        self._make_room(entry.size_bytes() / 1e9)
        import mlx.core as mx

        from mlx_persona.models.generate import load_for_generation

        before = mx.get_active_memory()
        tic = time.perf_counter()
        model, tokenizer = load_for_generation(entry.model, entry.adapter)
        mx.eval(model.parameters())
        grew = max(mx.get_active_memory() - before, 0) / 1e9  # what the weights took in memory
        got = Loaded(model, tokenizer, grew if grew > 0 else entry.size_bytes() / 1e9)
        self.loaded[entry.key] = got
        log.info("loaded %s (%s) in %.1f s, %.3f GB", name, entry.origin, time.perf_counter() - tic, got.weights_gb)
        return got

    def _make_room(self, need_gb: float) -> None:
        for key in list(self.loaded):
            if self.used_gb() + need_gb <= self.budget_gb:
                return
            lm = self.loaded[key]
            if lm.busy:
                continue
            names = [e.name for e in self.entries.values() if e.key == key]
            del self.loaded[key]
            if lm.generator is not None:
                lm.generator.close()
            import gc

            import mlx.core as mx

            gc.collect()
            mx.clear_cache()
            self.evictions.append("/".join(names))
            log.warning(
                "evicted %s to stay within %.2f GB (it reloads on its next request)", "/".join(names), self.budget_gb
            )
        if self.used_gb() + need_gb > self.budget_gb:
            log.warning("loading past the %.2f GB budget: the models in memory are all generating", self.budget_gb)

    def used_gb(self) -> float:
        return sum(lm.weights_gb for lm in self.loaded.values())

    def is_loaded(self, name: str) -> bool:
        return self.entries[name].key in self.loaded

    def loaded_of(self, name: str) -> Loaded | None:
        return self.loaded.get(self.entries[name].key)
