"""The four export targets, and what they start from.

A target starts from a :class:`Source`: a run folder's twin (``core.runs.run_twin``: what
``twin/twin.json`` chose, else the newest fused model) or an MLX model folder (``default`` and
hub ids too), with its name and, for a run, the persona line it was trained with.

Every target builds its output in a temporary sibling folder that is renamed into place last
(:func:`mlx_persona.core.runs.atomic_dir`): an existing output is refused unless ``overwrite``,
and a failure (a full disk, an unsupported model, Ctrl-C) leaves nothing half-written.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_dir, run_twin

LMSTUDIO_PUBLISHER = "mlx-persona"  # LM Studio lists models as <publisher>/<name>
# what an MLX model folder needs to load (mlx_lm, LM Studio); our own bookkeeping files stay behind
MODEL_FILES = ("*.safetensors", "model.safetensors.index.json", "config.json", "generation_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
TOKENIZER_FILES += ("tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json")


@dataclass
class Source:
    model_dir: Path  # an MLX model folder
    name: str  # the run's name, or the model folder's
    run_dir: Path | None = None
    persona_line: str | None = None  # the system prompt the twin was trained with

    def default_out(self, target: str) -> Path:
        if self.run_dir is not None:
            return self.run_dir / layout.EXPORT_DIR / target
        return Path.cwd() / f"{self.name}-{target}"


def persona_line(run_dir: Path) -> str | None:
    """The system prompt the run trained with: the cleaner's persona line, name filled in."""
    import yaml

    try:
        recipe = yaml.safe_load((run_dir / layout.RECIPE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    persona = recipe.get("persona") or {}
    line = (recipe.get("clean") or {}).get("persona_line") or persona.get("system")
    name = persona.get("name")
    if not isinstance(line, str) or not line.strip():
        return None
    return line.replace("{persona}", name) if isinstance(name, str) else line


def resolve_source(target: str | Path) -> Source:
    """A run folder (its twin) or a model (folder, ``default``, hub id); one-line errors."""
    from mlx_persona.models.resolve import looks_like_hub_id, resolve_model

    p = Path(target).expanduser()
    if p.is_dir() and not layout.is_model_dir(p):
        twin = run_twin(p)
        if twin is None:
            raise PersonaError(
                f"run {p} has no twin yet: finish it with `mlx-persona run RECIPE --name {p.name} --resume`"
            )
        return Source(twin[1], p.resolve().name, p, persona_line(p))
    if not p.exists() and str(target) != "default" and not looks_like_hub_id(str(target)):
        raise PersonaError(f"no such run folder or model: {target}")
    model = resolve_model(str(target))
    return Source(Path(model), Path(model).name)


def _check_out(out: Path, overwrite: bool, source: Source) -> None:
    if out.exists() and not overwrite:
        raise PersonaError(f"{out} already exists (pass --overwrite to replace it)")
    if out.resolve() == source.model_dir.resolve() or source.model_dir.resolve().is_relative_to(out.resolve()):
        raise PersonaError(f"--out {out} would replace the model it exports")


def _check_space(folder: Path, need: int) -> None:
    folder = next((p for p in [folder, *folder.parents] if p.exists()), Path("/"))
    free = shutil.disk_usage(folder).free
    if free < need:
        raise PersonaError(f"not enough disk in {folder}: {free / 1e9:.2f} GB free, ~{need / 1e9:.2f} GB needed")


def _weights_bytes(model_dir: Path) -> int:
    return sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))


def gguf_file_name(source: Source, quant: str) -> str:
    return f"{source.name}-{quant}.gguf"


def _disk_errors(what: Path):
    """OSError from copying -> one line (a full disk says so)."""
    import contextlib

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise PersonaError(f"disk full while writing {what}: free some space and export again") from None
            raise PersonaError(f"could not write {what}: {e.strerror or e}") from None

    return guard()


# -- the targets -----------------------------------------------------------------------------
def export_gguf(source: Source, out: Path, quant: str = "f16", overwrite: bool = False, log=print) -> Path:
    """``out/<name>-<quant>.gguf``."""
    from mlx_persona.models.gguf_export import check_exportable, write_gguf

    _check_out(out, overwrite, source)
    check_exportable(source.model_dir)
    _check_space(out.parent, int(_weights_bytes(source.model_dir) * (1.1 if quant == "f16" else 0.6)))
    with _disk_errors(out), atomic_dir(out, overwrite=overwrite) as tmp:
        write_gguf(source.model_dir, tmp / gguf_file_name(source, quant), quant, name=source.name)
    log(f"gguf: {out / gguf_file_name(source, quant)}")
    return out


def export_ollama(
    source: Source,
    out: Path,
    quant: str = "f16",
    temperature: float = 0.7,
    num_ctx: int = 2048,
    overwrite: bool = False,
    log=print,
) -> Path:
    """``out/`` with the GGUF and a Modelfile (``ollama create NAME -f Modelfile`` in it)."""
    import json

    from mlx_persona.export.ollama import go_template, modelfile, stop_words
    from mlx_persona.models.gguf_export import check_exportable, write_gguf

    _check_out(out, overwrite, source)
    cfg = check_exportable(source.model_dir)
    fmt, tokenizer = chat_format(source.model_dir)
    specials = list(tokenizer.all_special_tokens) + [
        t.content for t in tokenizer.added_tokens_decoder.values() if getattr(t, "special", False)
    ]
    ctx = min(num_ctx, int(cfg.get("max_position_embeddings") or num_ctx))
    name = gguf_file_name(source, quant)
    text = modelfile(
        name, go_template(fmt), source.persona_line, stop_words(fmt, tokenizer.eos_token, specials), temperature, ctx
    )
    _check_space(out.parent, int(_weights_bytes(source.model_dir) * (1.1 if quant == "f16" else 0.6)))
    with _disk_errors(out), atomic_dir(out, overwrite=overwrite) as tmp:
        write_gguf(source.model_dir, tmp / name, quant, name=source.name)
        (tmp / "Modelfile").write_text(text, encoding="utf-8")
        (tmp / "export.json").write_text(json.dumps({"source": str(source.model_dir), "quant": quant}, indent=2))
    log(f"ollama: {out}/Modelfile  (cd {out} && ollama create {_ollama_name(source.name)} -f Modelfile)")
    return out


def _ollama_name(name: str) -> str:
    import re

    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-") or "twin"


def chat_format(model_dir: Path):
    """(the measured :class:`~mlx_persona.export.ollama.ChatFormat`, the HF tokenizer)."""
    from transformers import AutoTokenizer

    from mlx_persona.export.ollama import measure

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if not tokenizer.chat_template:
        raise PersonaError(f"{model_dir} has no chat template; Ollama needs one (export gguf instead)")

    def render(messages, add_generation_prompt):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    adds_bos = bool(getattr(tokenizer, "add_bos_token", False))
    return measure(render, tokenizer.bos_token if adds_bos else None), tokenizer


def _copy_model(source: Source, dest: Path, link: bool = False) -> None:
    """The files an MLX folder needs, copied (or symlinked) into ``dest``."""
    for pattern in MODEL_FILES + TOKENIZER_FILES:
        for f in sorted(source.model_dir.glob(pattern)):
            if link:
                os.symlink(f.resolve(), dest / f.name)
            else:
                shutil.copy2(f, dest / f.name)
    if not (dest / layout.MODEL_CONFIG).exists():
        raise PersonaError(f"{source.model_dir}: no config.json to export")


def export_mlx(source: Source, out: Path, overwrite: bool = False, log=print) -> Path:
    """A clean MLX folder: weights, config, tokenizer, and a model card (README.md)."""
    from mlx_persona.export.card import model_card

    _check_out(out, overwrite, source)
    _check_space(out.parent, int(_weights_bytes(source.model_dir) * 1.05) + (1 << 20))
    with _disk_errors(out), atomic_dir(out, overwrite=overwrite) as tmp:
        _copy_model(source, tmp)
        (tmp / "README.md").write_text(
            model_card(source.name, source.model_dir, source.run_dir, source.persona_line), encoding="utf-8"
        )
    log(f"mlx: {out}")
    return out


def lmstudio_models_dir(configured: str | Path | None = None) -> Path:
    """LM Studio's models folder: the setting, $LMSTUDIO_MODELS_DIR, else ~/.lmstudio/models."""
    raw = configured or os.environ.get("LMSTUDIO_MODELS_DIR") or "~/.lmstudio/models"
    return Path(raw).expanduser()


def export_lmstudio(
    source: Source, models_dir: str | Path | None = None, link: bool = False, overwrite: bool = False, log=print
) -> Path:
    """``<models dir>/mlx-persona/<name>/``: the MLX folder where LM Studio finds it."""
    from mlx_persona.export.card import model_card

    out = lmstudio_models_dir(models_dir) / LMSTUDIO_PUBLISHER / source.name
    _check_out(out, overwrite, source)
    if not link:
        _check_space(out.parent, int(_weights_bytes(source.model_dir) * 1.05) + (1 << 20))
    with _disk_errors(out), atomic_dir(out, overwrite=overwrite) as tmp:
        _copy_model(source, tmp, link=link)
        (tmp / "README.md").write_text(
            model_card(source.name, source.model_dir, source.run_dir, source.persona_line), encoding="utf-8"
        )
    log(f"lmstudio: {out}")
    return out


def export(
    source: Source,
    to: str,
    out: Path | None = None,
    quant: str = "f16",
    temperature: float = 0.7,
    num_ctx: int = 2048,
    lmstudio_dir: str | None = None,
    link: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """One target; ``out`` defaults to ``runs/<name>/export/<to>/`` (a run) or ``./<name>-<to>``."""
    if to == "lmstudio":
        if out is not None:
            raise PersonaError(
                "lmstudio: the folder is <models dir>/mlx-persona/<name>; choose the models dir with --lmstudio-dir, not --out"
            )
        return export_lmstudio(source, lmstudio_dir, link=link, overwrite=overwrite, log=log)
    out = Path(out) if out is not None else source.default_out(to)
    if to == "gguf":
        return export_gguf(source, out, quant, overwrite=overwrite, log=log)
    if to == "ollama":
        return export_ollama(source, out, quant, temperature, num_ctx, overwrite=overwrite, log=log)
    if to == "mlx":
        return export_mlx(source, out, overwrite=overwrite, log=log)
    raise PersonaError(f"unknown export target: {to} (gguf, ollama, lmstudio, mlx)")
