"""The model card (README.md) of an exported twin: what it is, what made it, how it scored.

Everything comes from files the run already wrote, and a missing file only leaves its section
out: ``recipe.yaml`` (persona, base, settings), ``manifest.json`` (the base model's folder),
``clean/stats.json`` (the data), ``twin/twin.json`` (why this model is the twin) and
``eval/metrics.json`` (held-out numbers). The base model's license is read from its folder (a
``license:`` line in its README's front matter); the embedded default model's is known.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mlx_persona.core import layout

DEFAULT_MODEL_LICENSE = "apache-2.0 (SmolLM2-135M-Instruct, HuggingFaceTB)"
SETTINGS = {
    "sft": ("fine_tune_type", "rank", "alpha", "scale", "num_layers", "learning_rate", "iters", "batch_size"),
    "dpo": ("fine_tune_type", "rank", "loss_type", "beta", "learning_rate", "iters", "batch_size"),
}


def _read(path: Path) -> dict:
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        else:
            import yaml

            data = yaml.safe_load(path.read_text())
    except Exception:  # a missing or broken file leaves its section out
        return {}
    return data if isinstance(data, dict) else {}


def base_license(base_dir: str | None, base_name: str | None) -> str:
    """The license the base model's folder declares, or what to check."""
    if base_name == "default" or (base_dir and "smollm2-135m-instruct" in str(base_dir)):
        return DEFAULT_MODEL_LICENSE
    if base_dir:
        readme = Path(base_dir) / "README.md"
        if readme.is_file():
            m = re.search(r"^license:\s*(\S.*)$", readme.read_text(errors="replace"), re.MULTILINE)
            if m:
                return m.group(1).strip()
    return "unknown: check the base model's license before sharing this model"


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def model_card(name: str, model_dir: Path, run_dir: Path | None, persona_line: str | None) -> str:
    """README.md text for the exported twin ``name`` (``model_dir``: its MLX folder)."""
    recipe = _read(run_dir / layout.RECIPE) if run_dir else {}
    manifest = _read(run_dir / layout.MANIFEST) if run_dir else {}
    fused = _read(Path(model_dir) / layout.FUSED_FROM)
    config = _read(Path(model_dir) / layout.MODEL_CONFIG)
    base = recipe.get("model") or fused.get("base") or "unknown"
    persona = (recipe.get("persona") or {}).get("name")
    lines = [
        "---",
        f"license: {base_license(manifest.get('model_dir'), str(base)).split(' ')[0]}",
        "library_name: mlx",
        "tags: [mlx, mlx-persona, persona-twin]",
        "---",
        "",
        f"# {name}",
        "",
        f"A persona twin{f' of {persona}' if persona else ''}: a chat model fine-tuned with "
        "mlx-persona to answer the way one person does.",
        "",
        f"- architecture: {config.get('model_type', '?')}, {config.get('num_hidden_layers', '?')} layers, "
        f"hidden size {config.get('hidden_size', '?')}"
        + (f", quantized {config['quantization'].get('bits')}-bit" if config.get("quantization") else ""),
        f"- base model: {base}",
        f"- base model license: {base_license(manifest.get('model_dir'), str(base))}",
    ]
    if persona_line:
        lines.append(f"- system prompt used in training: `{persona_line}`")
    twin = _read(run_dir / layout.TWIN_DIR / layout.TWIN_FILE) if run_dir else {}
    if twin.get("why"):
        lines.append(f"- why this model: {twin['why']}")
    stats = _read(run_dir / layout.CLEAN_DIR / layout.STATS) if run_dir else {}
    splits = stats.get("splits") or {}
    if splits:
        lines += ["", "## Data", "", "| split | conversations | samples | tokens |", "|---|---|---|---|"]
        for split, s in splits.items():
            lines.append(f"| {split} | {s.get('conversations', '')} | {s.get('samples', '')} | {s.get('tokens', '')} |")
    settings = [(stage, k, (recipe.get(stage) or {}).get(k)) for stage, keys in SETTINGS.items() for k in keys]
    settings = [(s, k, v) for s, k, v in settings if v is not None]
    if settings:
        lines += ["", "## Training settings", "", "| stage | setting | value |", "|---|---|---|"]
        lines += [f"| {s} | {k} | {_fmt(v)} |" for s, k, v in settings]
    metrics = (_read(run_dir / layout.EVAL_DIR / layout.EVAL_METRICS) if run_dir else {}).get("models") or {}
    if metrics:
        lines += [
            "",
            "## Evaluation (held-out test split)",
            "",
            "| model | perplexity | similarity to the real replies | style fidelity |",
            "|---|---|---|---|",
        ]
        for m, r in metrics.items():
            ppl = (r.get("perplexity") or {}).get("perplexity")
            sim = (r.get("similarity") or {}).get("mean")
            fid = (r.get("style_fidelity") or {}).get("mean")
            lines.append(
                f"| {m} | {_fmt(ppl) if ppl else ''} | {_fmt(sim) if sim else ''} | {_fmt(fid) if fid else ''} |"
            )
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        "pip install mlx-lm",
        "mlx_lm.generate --model . --prompt 'hi'",
        "```",
        "",
    ]
    return "\n".join(lines)
