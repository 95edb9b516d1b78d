"""The stage registry is the one place a stage is known: every entry has its folder in layout.py
(or, like report, explicitly none), reads only earlier stages, names real recipe blocks, and is
run by the runner; every stage folder in layout.py belongs to one entry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mlx_persona.core import layout
from mlx_persona.runner import pipeline, stages
from mlx_persona.runner.recipe import TOP_KEYS, load_recipe
from mlx_persona.runner.stages import STAGE, STAGE_NAMES, STAGES

SAMPLE = Path(__file__).parent.parent / "data" / "sample"
NO_FOLDER = {"report"}  # writes report.md/.html at the top of the run folder


def test_every_stage_has_its_folder_in_layout():
    layout_dirs = {v for k, v in vars(layout).items() if k.endswith("_DIR")} - set(layout.INNER_DIRS)
    folders = [s.folder for s in STAGES if s.folder is not None]
    assert {s.name for s in STAGES if s.folder is None} == NO_FOLDER
    assert set(folders) <= layout_dirs, "a stage folder is not named in layout.py"
    assert len(folders) == len(set(folders)), "two stages share a folder"
    assert layout_dirs == set(folders), f"folders in layout.py no stage writes: {sorted(layout_dirs - set(folders))}"


def test_entries_point_back_and_name_real_blocks():
    for i, s in enumerate(STAGES):
        assert set(s.inputs) <= set(STAGE_NAMES[:i]), f"{s.name} reads a later or unknown stage"
        assert set(s.settings) <= set(TOP_KEYS), f"{s.name} fingerprints an unknown recipe block"
        assert s.outputs is None or (isinstance(s.outputs, tuple) and s.outputs)
        assert callable(s.run)
    assert [s.name for s in STAGES if s.trains] == ["sft", "dpo"]


def test_the_runner_runs_every_registry_stage_once_in_order(tmp_path, monkeypatch):
    """Each entry's own function is what the runner calls: replace them all, run a recipe with
    every stage on, and each runs exactly once, in registry order, and ends "done"."""
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(f"name: t\npersona: Sam Okafor\ndata: [{SAMPLE / 'whatsapp_android.txt'}]\n")
    recipe = load_recipe(recipe_file)
    assert recipe.stages == STAGE_NAMES  # a recipe without stages: runs them all

    calls = []

    def fake(name):
        def run(ctx, resume):
            calls.append(name)
            folder = ctx.run_dir / STAGE[name].folder if STAGE[name].folder else ctx.run_dir
            folder.mkdir(parents=True, exist_ok=True)
            for out in STAGE[name].outputs or ("x",):
                (folder / out).write_text(name)
            return {"ran": name}

        return run

    for s in STAGES:
        monkeypatch.setitem(stages.STAGE, s.name, dataclasses.replace(s, run=fake(s.name)))
    monkeypatch.setattr("mlx_persona.models.resolve.resolve_model", lambda spec: tmp_path / "model")
    monkeypatch.setattr(pipeline, "preflight_all", lambda recipe, model_dir, run_dir=None: {})
    monkeypatch.setattr(pipeline, "preflight_one", lambda recipe, model_dir, stage, run_dir: {})
    manifest = pipeline.run_recipe(recipe, tmp_path / "run", log=lambda m: None)
    assert calls == list(STAGE_NAMES)
    assert {s: manifest.stage(s)["status"] for s in STAGE_NAMES} == {s: "done" for s in STAGE_NAMES}
    assert all(manifest.stage(s)["output"] not in (None, "missing") for s in STAGE_NAMES)

    calls.clear()  # resumed with nothing changed: every stage is skipped, none runs again
    pipeline.run_recipe(recipe, tmp_path / "run", resume=True, log=lambda m: None)
    assert calls == []


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_plan_covers_every_stage(stage, tmp_path):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(
        f"name: t\npersona: Sam Okafor\ndata: [{SAMPLE / 'whatsapp_android.txt'}]\nstages: [{stage}]\n"
    )
    plan = dict(pipeline.plan(load_recipe(recipe_file), pipeline.Manifest(tmp_path), None, None))
    assert list(plan) == list(STAGE_NAMES) and plan[stage] == "run"
    assert {a for s, a in plan.items() if s != stage} == {"off"}


def test_run_folder_names_are_written_only_in_layout():
    """No module spells a run-folder file name itself: each goes through core/layout.py."""
    import ast

    pkg = Path(layout.__file__).parents[1]
    names = {v for k, v in vars(layout).items() if isinstance(v, str) and k.isupper() and "." in v}
    names -= {layout.MODEL_CONFIG}  # an MLX model folder's own file, read by model code everywhere
    names |= {layout.stage_config(s) for s in STAGE_NAMES} | {layout.stage_log(s) for s in STAGE_NAMES}
    pieces = ("_config.json", ".log", ".jsonl")  # the constant tail of an f-string name
    found = []
    for path in pkg.rglob("*.py"):
        if path.name == "layout.py" and path.parent.name == "core":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr) and len(node.values) == 2:  # f"{name}_config.json"
                tail = node.values[1]
                if isinstance(tail, ast.Constant) and tail.value in pieces:
                    found.append(f"{path.relative_to(pkg)}:{node.lineno}: f-string file name")
            elif isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(pkg)}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("own", [None, "tokenizer-folder"])
def test_clean_counts_tokens_with_the_runs_model_unless_the_recipe_names_one(own, tmp_path, monkeypatch):
    recipe_file = tmp_path / "r.yaml"
    clean_block = f"clean: {{model: {own}}}\n" if own else ""
    recipe_file.write_text(
        f"name: t\npersona: Sam Okafor\nmodel: my-model\ndata: [{SAMPLE / 'whatsapp_android.txt'}]\n{clean_block}"
    )
    recipe = load_recipe(recipe_file)
    seen = {}
    monkeypatch.setattr("mlx_persona.data.clean.clean", lambda sources, persona, out, cfg: seen.update(cfg=cfg))
    ctx = stages.Context(recipe, tmp_path / "run", tmp_path / "model", log=lambda m: None)
    STAGE["clean"].run(ctx, False)
    assert seen["cfg"].model == (own or "my-model")
    assert recipe.clean.model == own  # the recipe itself is left as written
    assert "model" in STAGE["clean"].settings  # another model re-runs clean: its token counts change


def test_clean_reruns_when_an_export_or_the_blocklist_is_edited_in_place(tmp_path):
    from mlx_persona.core.runs import Manifest

    export = tmp_path / "chat.txt"
    export.write_text((SAMPLE / "whatsapp_android.txt").read_text())
    (tmp_path / "words.txt").write_text("secret project\n")
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("name: t\npersona: Sam Okafor\ndata: [chat.txt]\nclean: {block_words: words.txt}\n")
    recipe = load_recipe(recipe_file)
    assert recipe.clean.block_words == str(tmp_path / "words.txt")  # relative to the recipe, like data paths

    def fp():
        return pipeline.input_fingerprint(load_recipe(recipe_file), "clean", Manifest(tmp_path / "run"))

    first = fp()
    assert fp() == first  # nothing changed: same fingerprint
    export.write_text(export.read_text() + "01/02/2024, 10:00 - Sam Okafor: one more\n")
    second = fp()
    assert second != first
    (tmp_path / "words.txt").write_text("secret project\nanother\n")
    assert fp() not in (first, second)
