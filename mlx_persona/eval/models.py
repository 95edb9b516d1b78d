"""Which models an evaluation covers, and the test conversations it runs on.

From a run folder (see :mod:`mlx_persona.core.layout`):

- **base**: ``--base``, else the model named in ``manifest.json`` or ``recipe.yaml``, else the
  one the SFT adapter was trained on, else the embedded default;
- **sft**: ``sft/`` as an adapter on the base, else the fused ``sft_fused/`` folder;
- **dpo**: the fused ``dpo_fused/`` folder, else ``dpo/`` as an adapter on the model it was
  trained on (its ``adapter_config.json`` ``model``, else ``sft_fused/``, else the base).

Or explicitly: ``--base``, ``--sft-adapter``, ``--dpo`` (a model folder or an adapter folder).
Whatever is missing is returned as a skip with its reason, never raised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import kept_its_start, run_base_model


@dataclass
class ModelSpec:
    """One model to evaluate: an MLX folder, plus an adapter folder applied on top of it."""

    name: str  # base, sft, dpo
    model: Path
    adapter: Path | None = None
    same_as: str | None = None  # another spec's name whose model this one is (its figures are copied)

    def describe(self) -> str:
        return f"{self.model} + adapter {self.adapter}" if self.adapter else str(self.model)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def base_from_run(run: Path) -> str:
    """The base model a run names (:func:`mlx_persona.core.runs.run_base_model`), else the default."""
    from mlx_persona.models.resolve import DEFAULT_NAME

    return run_base_model(run) or DEFAULT_NAME


def _resolve(spec: str) -> Path:
    from mlx_persona.models.resolve import resolve_model

    return resolve_model(spec)


def _adapter_base(adapter: Path, fallback: Path) -> Path:
    """The model an adapter was trained on, if its config names a folder that exists."""
    named = _read_json(adapter / layout.ADAPTER_CONFIG).get("model")
    if isinstance(named, str) and layout.is_model_dir(Path(named)):
        return Path(named)
    return fallback


def find_models(
    run: Path | None = None,
    base: str | None = None,
    sft_adapter: Path | None = None,
    dpo: Path | None = None,
) -> tuple[list[ModelSpec], list[dict]]:
    """The models to evaluate, in order base, sft, dpo, and ``[{"item", "reason"}]`` for the rest."""
    specs, skipped = [], []
    base_spec = base or (base_from_run(run) if run else "default")
    try:
        base_dir = _resolve(base_spec)
        specs.append(ModelSpec("base", base_dir))
    except PersonaError as e:
        base_dir = None
        skipped.append({"item": "base", "reason": e.message})

    # SFT: an adapter on the base, or a fused folder
    sft = sft_adapter or (run / layout.SFT_DIR if run else None)
    fused = run / layout.SFT_FUSED_DIR if run else None
    if sft is not None and layout.is_adapter_dir(sft):
        if base_dir is None:
            skipped.append({"item": "sft", "reason": f"adapter {sft} needs the base model, which is missing"})
        else:
            specs.append(ModelSpec("sft", base_dir, sft))
    elif fused is not None and layout.is_model_dir(fused):
        specs.append(ModelSpec("sft", fused))
    elif sft is not None or run is not None:
        where = sft if sft_adapter else f"{run / layout.SFT_DIR} or {fused}"
        skipped.append(
            {
                "item": "sft",
                "reason": f"no SFT adapter (adapter_config.json + adapters.safetensors) or fused model in {where}",
            }
        )
    else:
        skipped.append({"item": "sft", "reason": "not asked for (give --sft-adapter or a run folder)"})

    # DPO: a fused folder, or an adapter on the model it was trained on
    candidates = [dpo] if dpo else ([run / layout.DPO_FUSED_DIR, run / layout.DPO_DIR] if run else [])
    # a DPO stage that kept its step-0 adapter made the SFT twin again: its figures are SFT's
    has_sft = bool(specs) and specs[-1].name == "sft"
    same = "sft" if run and not dpo and has_sft and kept_its_start(run / layout.DPO_DIR) else None
    for c in candidates:
        if layout.is_model_dir(c):
            specs.append(ModelSpec("dpo", c, same_as=same))
            break
        if layout.is_adapter_dir(c):
            fallback = fused if fused is not None and layout.is_model_dir(fused) else base_dir
            if fallback is None:
                skipped.append(
                    {"item": "dpo", "reason": f"adapter {c} needs the model it was trained on, which is missing"}
                )
            else:
                specs.append(ModelSpec("dpo", _adapter_base(c, fallback), c, same_as=same))
            break
    else:
        if candidates:
            where = " or ".join(str(c) for c in candidates)
            skipped.append({"item": "dpo", "reason": f"no DPO stage output (fused model or adapter) in {where}"})
        else:
            skipped.append({"item": "dpo", "reason": "not asked for (give --dpo or a run folder)"})
    return specs, skipped


def load_test_split(path: Path, limit: int | None = None) -> tuple[list[dict], list[str]]:
    """Usable test conversations and one ``file:line: reason`` per line left out."""
    convs, bad = [], []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{i}"
            try:
                msgs = json.loads(line).get("messages")
            except (ValueError, AttributeError):
                bad.append(f"{where}: not a JSON object")
                continue
            if not isinstance(msgs, list) or len(msgs) < 2 or not all(isinstance(m, dict) for m in msgs):
                bad.append(f"{where}: needs a 'messages' list with a prompt and a reply")
            elif msgs[-1].get("role") != "assistant" or not str(msgs[-1].get("content") or "").strip():
                bad.append(f"{where}: the last message is not a non-empty assistant reply")
            else:
                convs.append(
                    {"messages": [{"role": m.get("role"), "content": str(m.get("content") or "")} for m in msgs]}
                )
            if limit is not None and len(convs) >= limit:
                break
    return convs, bad


def prompt_text(conv: dict) -> str:
    """What a reader of the samples sees as the prompt: the last message before the reply."""
    return conv["messages"][-2]["content"]
