"""PersonaError is a plain exception (library code does not depend on the CLI); the command group
turns it into one ``Error: ...`` line and exit 1 for every command, nested groups included."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from mlx_persona.cli import cli
from mlx_persona.core.errors import PersonaError


def test_persona_error_is_not_a_click_exception_and_core_does_not_load_click():
    assert not issubclass(PersonaError, click.ClickException)
    assert PersonaError("say what to change").message == str(PersonaError("say what to change"))
    code = (
        "import sys, mlx_persona.core.errors, mlx_persona.core.runs, mlx_persona.core.settings, "
        "mlx_persona.core.child, mlx_persona.core.layout; assert 'click' not in sys.modules, 'click loaded'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_kind_of_command_prints_one_error_line(tmp_path):
    for args in (
        ["fuse", "--model", str(tmp_path), "--adapter-path", str(tmp_path), "--out", str(tmp_path / "o")],
        ["models", "import", str(tmp_path / "missing.gguf")],  # a nested group
        ["report", str(tmp_path / "nope")],
    ):
        res = CliRunner().invoke(cli, args)
        errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
        assert res.exit_code == 1 and len(errors) == 1 and "Traceback" not in res.output, (args, res.output)
