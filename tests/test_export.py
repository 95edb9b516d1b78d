"""``mlx-persona export``: the four targets from a run folder, the Ollama TEMPLATE, bad input.

The run folder is built by hand around the tiny model (a twin.json choosing sft_fused/, the
resolved recipe, stats and eval numbers), so the export is tested without training anything.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from click.testing import CliRunner
from go_template import ollama_render

from mlx_persona.cli import cli
from mlx_persona.core.errors import PersonaError
from mlx_persona.export.ollama import go_template, measure

PERSONA_LINE = "You are Sam Okafor. Reply the way Sam Okafor does."


@pytest.fixture
def run_dir(tiny_model_dir, tmp_path):
    run = tmp_path / "runs" / "sam"
    shutil.copytree(tiny_model_dir, run / "sft_fused")
    (run / "sft_fused" / "fused_from.json").write_text(json.dumps({"base": "default", "adapter": "sft"}))
    (run / "twin").mkdir()
    (run / "twin" / "twin.json").write_text(
        json.dumps({"twin": "sft", "folder": "sft_fused", "why": "sft scores higher than dpo on 10 prompts"})
    )
    recipe = {
        "name": "sam",
        "persona": {"name": "Sam Okafor", "system": None},
        "model": "default",
        "clean": {"persona_line": "You are {persona}. Reply the way {persona} does."},
        "sft": {"fine_tune_type": "lora", "rank": 8, "learning_rate": 1e-4, "iters": 600},
    }
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (run / "clean").mkdir()
    (run / "clean" / "stats.json").write_text(
        json.dumps({"splits": {"train": {"conversations": 34, "samples": 91, "tokens": 14934}}})
    )
    (run / "eval").mkdir()
    metrics = {"models": {"sft": {"perplexity": {"perplexity": 50.587}, "similarity": {"mean": 0.4123}}}}
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    return run


def export(*args):
    return CliRunner().invoke(cli, ["export", *map(str, args)])


def chat(tokenizer, messages):
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


TWO_TURNS = [
    {"role": "system", "content": PERSONA_LINE},
    {"role": "user", "content": "should we ship friday?"},
    {"role": "assistant", "content": "no. monday, after the tests."},
    {"role": "user", "content": "why not friday?"},
]


def test_ollama_folder_and_its_template_renders_the_chat_template(run_dir):
    from transformers import AutoTokenizer

    result = export(run_dir, "--to", "ollama", "--quant", "q8_0", "--temperature", "0.3", "--num-ctx", "256")
    assert result.exit_code == 0, result.output
    out = run_dir / "export" / "ollama"
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "export.json", "sam-q8_0.gguf"]
    text = (out / "Modelfile").read_text()
    assert "FROM ./sam-q8_0.gguf" in text and f'SYSTEM """{PERSONA_LINE}"""' in text
    stops = [ln.split(" ", 2)[2] for ln in text.splitlines() if ln.startswith("PARAMETER stop ")]
    assert stops == ['"<|im_end|>"', '"<|im_start|>"', '"<|endoftext|>"']  # turn end, next turn, text end
    assert "PARAMETER temperature 0.3" in text and "PARAMETER num_ctx 256" in text
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "sft_fused"))
    assert ollama_render(template, TWO_TURNS) == chat(tokenizer, TWO_TURNS)
    # without a system message in the request, Ollama uses the Modelfile's SYSTEM
    assert ollama_render(template, TWO_TURNS[1:], system=PERSONA_LINE) == chat(tokenizer, TWO_TURNS)


def _jinja(template: str, **extra):
    import jinja2

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    t = env.from_string(template)
    return lambda messages, add_generation_prompt: t.render(
        messages=messages, add_generation_prompt=add_generation_prompt, **extra
    )


LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
ZEPHYR = (
    "{% for m in messages %}{% if m['role'] == 'user' %}<|user|>\n{{ m['content'] + eos_token }}\n"
    "{% elif m['role'] == 'system' %}<|system|>\n{{ m['content'] + eos_token }}\n"
    "{% else %}<|assistant|>\n{{ m['content'] + eos_token }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
LLAMA2 = (  # the system prompt goes inside the first user message: not prefix + text + suffix
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ '[INST] <<SYS>>\\n' + m['content'] + '\\n<</SYS>>\\n\\n' }}"
    "{% elif m['role'] == 'user' %}{% if loop.index0 == 1 and messages[0]['role'] == 'system' %}{{ m['content'] + ' [/INST]' }}"
    "{% else %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% endif %}"
    "{% else %}{{ ' ' + m['content'] + ' </s>' }}{% endif %}{% endfor %}"
)


@pytest.mark.parametrize("template,bos", [(LLAMA3, "<|begin_of_text|>"), (ZEPHYR, None)])
def test_other_chat_formats_translate(template, bos):
    render = _jinja(template, bos_token="<|begin_of_text|>", eos_token="</s>")
    fmt = measure(render, bos)
    go = go_template(fmt)
    for conv in (TWO_TURNS, TWO_TURNS[1:], TWO_TURNS[:2]):
        expect = render(conv, True).removeprefix(bos or "")  # llama.cpp adds BOS itself
        assert ollama_render(go, conv) == expect


def test_a_template_that_moves_the_system_prompt_is_refused():
    with pytest.raises(PersonaError) as e:
        measure(_jinja(LLAMA2), None)
    assert "TEMPLATE" in e.value.message and "\n" not in e.value.message


def test_gguf_target_from_a_run(run_dir):
    import gguf

    result = export(run_dir, "--to", "gguf", "--quant", "q4_0")
    assert result.exit_code == 0, result.output
    path = run_dir / "export" / "gguf" / "sam-q4_0.gguf"
    reader = gguf.GGUFReader(path)
    assert reader.fields["general.name"].contents() == "sam"
    assert not [p for p in (run_dir / "export").iterdir() if p.name.startswith(".")]


def test_mlx_folder_with_a_model_card(run_dir, tmp_path):
    import mlx.core as mx
    import numpy as np
    from mlx_lm import load

    out = tmp_path / "upload"
    result = export(run_dir, "--to", "mlx", "--out", out)
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"} <= names
    assert "fused_from.json" not in names  # bookkeeping stays behind; the card says it
    card = (out / "README.md").read_text()
    for expected in ("base model: default", "apache-2.0", PERSONA_LINE, "| train | 34 | 91 | 14934 |"):
        assert expected in card
    assert "50.59" in card and "0.4123" in card and "| sft | rank | 8 |" in card
    ids = mx.array([[1, 5, 9, 40]])
    a, _ = load(str(out))
    b, _ = load(str(run_dir / "sft_fused"))
    np.testing.assert_array_equal(np.array(a(ids)), np.array(b(ids)))


def test_lmstudio_placement(run_dir, tmp_path, monkeypatch):
    models = tmp_path / "lm-models"
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(models))
    result = export(run_dir, "--to", "lmstudio")
    assert result.exit_code == 0, result.output
    placed = models / "mlx-persona" / "sam"
    assert (placed / "config.json").is_file() and (placed / "model.safetensors").is_file()
    other = tmp_path / "elsewhere"
    result = export(run_dir, "--to", "lmstudio", "--lmstudio-dir", other, "--link")
    assert result.exit_code == 0, result.output
    linked = other / "mlx-persona" / "sam" / "model.safetensors"
    assert linked.is_symlink() and linked.resolve() == (run_dir / "sft_fused" / "model.safetensors").resolve()


def test_model_folder_target(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = export(tiny_model_dir, "--to", "gguf")
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"{tiny_model_dir.name}-gguf" / f"{tiny_model_dir.name}-f16.gguf").is_file()


# -- bad input: one line, nothing half-written ---------------------------------------------
def _one_line_error(result, *words):
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error:") and result.output.count("\n") == 1, result.output
    for w in words:
        assert w in result.output, result.output


def test_a_run_without_a_twin(tmp_path):
    run = tmp_path / "runs" / "empty"
    (run / "clean").mkdir(parents=True)
    _one_line_error(export(run, "--to", "gguf"), "no twin yet")
    assert not (run / "export").exists()


def test_an_unsupported_architecture(run_dir):
    cfg = json.loads((run_dir / "sft_fused" / "config.json").read_text())
    (run_dir / "sft_fused" / "config.json").write_text(json.dumps({**cfg, "model_type": "phi3"}))
    for to in ("gguf", "ollama"):
        _one_line_error(export(run_dir, "--to", to), "phi3")
    assert not (run_dir / "export").exists() or not any((run_dir / "export").iterdir())


def test_an_existing_out_is_kept(run_dir, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    _one_line_error(export(run_dir, "--to", "mlx", "--out", out), "already exists", "--overwrite")
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    result = export(run_dir, "--to", "mlx", "--out", out, "--overwrite")
    assert result.exit_code == 0 and (out / "README.md").is_file() and not (out / "mine.txt").exists()


def test_a_full_disk(run_dir, tmp_path, monkeypatch):
    import errno
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9, 1000))
    _one_line_error(export(run_dir, "--to", "gguf"), "not enough disk")
    monkeypatch.undo()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copy2", full)  # the disk fills up during the copy
    out = tmp_path / "mlx-out"
    _one_line_error(export(run_dir, "--to", "mlx", "--out", out), "disk full")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".mlx-out")]


# -- the recipe's export block --------------------------------------------------------------
SAMPLE = __import__("pathlib").Path(__file__).parent.parent / "data" / "sample" / "whatsapp_android.txt"


def test_the_recipe_export_block_runs_at_the_end_of_run(run_dir, tiny_model_dir, tmp_path, monkeypatch):
    models = tmp_path / "lm-models"
    recipe = tmp_path / "sam.yaml"
    recipe.write_text(
        f"name: sam\npersona: Sam Okafor\nmodel: {tiny_model_dir}\ndata: [{SAMPLE}]\nstages: [export]\n"
        f"export: {{to: [ollama, mlx, lmstudio], quant: q8_0, temperature: 0.2, lmstudio_dir: {models}}}\n"
    )
    result = CliRunner().invoke(cli, ["run", str(recipe), "--runs", str(run_dir.parent), "--from", "export", "--plain"])
    assert result.exit_code == 0, result.output
    out = run_dir / "export"
    assert (out / "ollama" / "sam-q8_0.gguf").is_file() and (out / "mlx" / "README.md").is_file()
    modelfile = (out / "ollama" / "Modelfile").read_text()
    assert f'SYSTEM """{PERSONA_LINE}"""' in modelfile and "PARAMETER temperature 0.2" in modelfile
    assert (models / "mlx-persona" / "sam" / "config.json").is_file()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["export"]["status"] == "done"
    assert set(manifest["stages"]["export"]["summary"]) == {"ollama", "mlx", "lmstudio"}


def test_a_bad_export_block_names_its_line(tmp_path):
    from mlx_persona.runner.recipe import load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: t\npersona: Sam\ndata: [{SAMPLE}]\nexport:\n  to: [ollama, docker]\n")
    with pytest.raises(PersonaError) as e:
        load_recipe(recipe)
    assert "docker" in e.value.message and "r.yaml" in e.value.message
    recipe.write_text(f"name: t\npersona: Sam\ndata: [{SAMPLE}]\n")
    assert load_recipe(recipe).export.to == []  # no block: nothing is exported
