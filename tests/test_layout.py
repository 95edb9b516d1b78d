"""The package layout stays readable: imports point one way, no cycles, no stage reaches into another.

The graph is read from the source (every ``import``/``from ... import`` in every module, the lazy
ones inside functions included), so a cycle hidden behind a function-level import fails too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "mlx_persona"

# lower layers never import higher ones; packages of one layer may import each other only where
# STAGES does not forbid it
LAYERS = {
    "core": 0,
    "models": 1,
    "data": 2,
    "budget": 2,
    "train": 3,
    "sft": 4,
    "dpo": 4,
    "pairs": 4,
    "eval": 4,
    "report": 4,
    "chat": 4,
    "serve": 4,
    "doctor": 4,
    "export": 4,
    "runner": 5,
    "cli": 6,
    "__init__": 6,
}
STAGES = (
    "sft",
    "dpo",
    "pairs",
    "eval",
    "report",
    "chat",
    "export",
    "serve",
)  # one package per stage: none imports another (data/ is below them: the readers, the cleaner and text features every stage reads)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every mlx_persona module a file imports (``from pkg import mod`` resolves to ``pkg.mod``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mlx_persona"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("mlx_persona"):
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                found.add(
                    sub
                    if (PKG.parent / (sub.replace(".", "/") + ".py")).exists()
                    or (PKG.parent / sub.replace(".", "/")).is_dir()
                    else mod
                )
    found.discard(me)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PKG.rglob("*.py")}


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_has_a_layer():
    tops = {top(m) for m in graph()}
    assert tops <= set(LAYERS), f"give these a layer in LAYERS: {sorted(tops - set(LAYERS))}"


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(g.get(m, ())):
            if n not in g:
                continue
            if state.get(n) == 1:
                cycle = stack[stack.index(n) :] + [n] if n in stack else [m, n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])


def test_imports_point_down_and_no_stage_imports_another():
    bad = []
    for mod, deps in graph().items():
        for dep in deps:
            a, b = top(mod), top(dep)
            if a == b or b == "__init__" and dep == "mlx_persona":
                continue
            if LAYERS[b] > LAYERS[a]:
                bad.append(f"{mod} -> {dep} (layer {LAYERS[a]} imports layer {LAYERS[b]})")
            elif a in STAGES and b in STAGES:
                bad.append(f"{mod} -> {dep} (a stage imports another stage)")
    assert not bad, "\n".join(sorted(bad))


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The walk itself works: a planted upward import and a planted cycle are found."""
    g = graph()
    assert "mlx_persona.core.errors" in g["mlx_persona.dpo.train"]  # a real edge is seen
    assert "mlx_persona.train.loop" in g["mlx_persona.eval.model"]  # lazy (in-function) imports too
    planted = tmp_path / "x.py"
    planted.write_text("from mlx_persona.runner import pipeline\nfrom . import errors\n")
    monkeypatch.setattr(planted.__class__, "relative_to", lambda self, other: Path("mlx_persona/core/x.py"))
    found = imports_of(planted)
    assert {"mlx_persona.runner.pipeline", "mlx_persona.core.errors"} <= found
