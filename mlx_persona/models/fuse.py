"""``mlx-persona fuse``: bake an adapter into its base, as one ordinary MLX model folder.

    base + adapters.safetensors ──mlx_lm load + module.fuse()──▶ fused/ (optional: float weights, GGUF)

The parent (the click command) checks the inputs and starts ``python -m mlx_persona.models.fuse`` with
the fast BLAS (the weights load in the child, as for every MLX-heavy stage). The child uses
mlx_lm's own pieces: ``load(..., adapter_path=...)``, each LoRA/DoRA layer's ``fuse()``,
``dequantize_model`` and ``save``; ``--gguf`` adds an F16 GGUF written by
:func:`mlx_persona.models.gguf_export.write_gguf` (the one GGUF writer; ``mlx-persona export``
uses it too). The folder is built aside and appears
only when complete (:func:`mlx_persona.core.runs.atomic_dir`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import click

from mlx_persona.core import layout
from mlx_persona.core.child import child_main, run_child
from mlx_persona.core.errors import PersonaError
from mlx_persona.models.gguf_export import ARCHS as GGUF_ARCHS

GGUF_TYPES = tuple(GGUF_ARCHS)  # what the GGUF writer handles
GGUF_NAME = "ggml-model-f16.gguf"


def fuse_model(
    model_dir: Path, adapter_dir: Path, out: Path, dequantize: bool = False, gguf: bool = False, overwrite: bool = False
) -> Path:
    """Write the fused model to ``out``; the adapter must have been trained on this base."""
    from mlx.utils import tree_unflatten
    from mlx_lm.utils import dequantize_model, load, save

    from mlx_persona.core.runs import atomic_dir

    try:
        model, tokenizer, config = load(str(model_dir), adapter_path=str(adapter_dir), return_config=True)
    except ValueError as e:  # mlx_lm lists every tensor that does not fit; the first says enough
        detail = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise PersonaError(f"{adapter_dir} does not fit {model_dir} (trained on another base?): {detail}") from None
    fused = [(name, m.fuse(dequantize=dequantize)) for name, m in model.named_modules() if hasattr(m, "fuse")]
    if fused:
        model.update_modules(tree_unflatten(fused))
    if dequantize:
        model = dequantize_model(model)
        config.pop("quantization", None)
        config.pop("quantization_config", None)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        save(tmp, str(model_dir), model, tokenizer, config, donate_model=False)
        (tmp / layout.FUSED_FROM).write_text(
            json.dumps({"base": str(model_dir), "adapter": str(adapter_dir), "dequantized": dequantize}, indent=2)
        )
        if gguf:
            from mlx_persona.models.gguf_export import write_gguf

            write_gguf(tmp, tmp / GGUF_NAME, "f16", name=out.name)
    return out


def check_inputs(model_dir: Path, adapter_dir: Path, out: Path, dequantize: bool, gguf: bool, overwrite: bool) -> None:
    """Everything that can be known before loading weights; one-line errors."""
    for name in (layout.ADAPTER_WEIGHTS, layout.ADAPTER_CONFIG):
        if not (adapter_dir / name).is_file():
            raise PersonaError(f"{adapter_dir}: no {name} (point --adapter-path at an SFT stage folder)")
    if out.exists() and not overwrite:
        raise PersonaError(f"{out} already exists (pass --overwrite to replace it)")
    if out.resolve() in (model_dir.resolve(), adapter_dir.resolve()):
        raise PersonaError(f"--out {out} would replace its own input")
    config = json.loads((model_dir / layout.MODEL_CONFIG).read_text())
    if gguf:
        kind = config.get("model_type", "?")
        if kind not in GGUF_TYPES:
            raise PersonaError(f"GGUF export: not supported: {kind} (supported: {', '.join(GGUF_TYPES)}; drop --gguf)")


def run_fuse_child(
    model_dir: Path, adapter_dir: Path, out: Path, dequantize: bool = False, gguf: bool = False, overwrite: bool = False
) -> Path:
    """Fuse in ``python -m mlx_persona.models.fuse`` (fast BLAS; its memory goes back to the OS when it
    exits); the child's own one-line error becomes ours."""
    cmd = [
        sys.executable,
        "-m",
        "mlx_persona.models.fuse",
        "--model",
        str(model_dir),
        "--adapter-path",
        str(adapter_dir),
        "--out",
        str(out),
    ] + [f for f, on in (("--dequantize", dequantize), ("--gguf", gguf), ("--overwrite", overwrite)) if on]
    # the fused folder appears only when complete, so the child's status lives aside until it exits
    with tempfile.TemporaryDirectory(prefix="mlx-persona-fuse-") as tmp:
        child = run_child(cmd, Path(tmp) / layout.STATUS)
    if child.returncode != 0:
        raise PersonaError(child.error or f"fuse failed (exit {child.returncode}): {child.stderr.strip()[-400:]}")
    return out


@click.command("fuse")
@click.option("--model", default="default", show_default=True, help="The base the adapter was trained on.")
@click.option(
    "--adapter-path",
    required=True,
    type=click.Path(path_type=Path),
    help="SFT stage folder (adapters.safetensors + adapter_config.json).",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the fused model.")
@click.option("--dequantize", is_flag=True, help="Write float weights even when the base is quantized.")
@click.option(
    "--gguf", is_flag=True, help=f"Also write {GGUF_NAME} (llama, mistral, qwen2; `mlx-persona export` for more)."
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists (only once the new one is complete).")
def fuse_command(model, adapter_path, out, dequantize, gguf, overwrite):
    """Fuse a trained adapter into its base model."""
    from mlx_persona.models.resolve import resolve_model

    model_dir = resolve_model(model)
    check_inputs(model_dir, adapter_path, out, dequantize, gguf, overwrite)
    run_fuse_child(model_dir, adapter_path, out, dequantize, gguf, overwrite)
    click.echo(f"fused {adapter_path} into {model_dir.name} -> {out}" + (f" (+ {GGUF_NAME})" if gguf else ""))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m mlx_persona.models.fuse", description="Fuse an adapter (child process)."
    )
    p.add_argument("--model", required=True)
    p.add_argument("--adapter-path", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dequantize", action="store_true")
    p.add_argument("--gguf", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--status", help="status.json to record a failure in, for the parent.")
    a = p.parse_args(argv)

    def work() -> None:
        model_dir, adapter_dir, out = Path(a.model), Path(a.adapter_path), Path(a.out)
        check_inputs(model_dir, adapter_dir, out, a.dequantize, a.gguf, a.overwrite)
        fuse_model(model_dir, adapter_dir, out, a.dequantize, a.gguf, a.overwrite)

    child_main(work, Path(a.status) if a.status else None)


if __name__ == "__main__":
    main()
