"""The ``mlx-persona`` command: one thin subcommand per stage.

Each subcommand parses options, calls the module that owns the stage, and prints with rich.
MLX-heavy stages run in child processes (see DESIGN.md); this process only orchestrates. A
:class:`~mlx_persona.core.errors.PersonaError` from any of them is one ``Error:`` line, exit 1.
"""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from mlx_persona import __version__
from mlx_persona.core import blas
from mlx_persona.core.errors import PersonaError

console = Console()
err_console = Console(stderr=True)


class PersonaGroup(click.Group):
    """The command group that turns a user mistake raised anywhere below a command (a
    :class:`PersonaError`) into click's one line ``Error: ...`` and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PersonaError as e:
            raise click.ClickException(e.message) from None


@click.group(cls=PersonaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlx-persona")
def cli() -> None:
    """Turn one person's chat history into a local persona twin, fine-tuned with MLX."""


@cli.command()
@click.option("--no-bench", is_flag=True, help="Skip the matmul speed measurement.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as one JSON object.")
def doctor(no_bench: bool, as_json: bool) -> None:
    """Check the platform, MLX, the BLAS and the packages the pipeline needs."""
    from mlx_persona.doctor import run_checks

    report = run_checks(measure=not no_bench)
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "checks": [c.__dict__ for c in report.checks]}, indent=2))
    else:
        table = Table(title="mlx-persona doctor", show_header=True)
        table.add_column("check")
        table.add_column("value")
        table.add_column("")
        for c in report.checks:
            table.add_row(c.name, c.value, "[green]ok[/]" if c.ok else "[red]FIX[/]")
        console.print(table)
        for c in report.checks:
            if not c.ok and c.fix:
                err_console.print(f"[red]✗ {c.name}[/]: {c.fix}")
    if not report.ok:
        sys.exit(1)


def _register_subcommands() -> None:
    from mlx_persona.models.resolve import models_group

    cli.add_command(models_group)
    from mlx_persona.chat import chat_command

    cli.add_command(chat_command)
    from mlx_persona.data.clean import clean_command

    cli.add_command(clean_command)
    from mlx_persona.data.persona import persona_command

    cli.add_command(persona_command)
    from mlx_persona.eval.evaluate import eval_command

    cli.add_command(eval_command)
    from mlx_persona.report.build import report_command

    cli.add_command(report_command)
    from mlx_persona.sft.cli import sft_command

    cli.add_command(sft_command)
    from mlx_persona.models.fuse import fuse_command

    cli.add_command(fuse_command)
    from mlx_persona.pairs.build import pairs_command

    cli.add_command(pairs_command)
    from mlx_persona.dpo.cli import dpo_command

    cli.add_command(dpo_command)
    from mlx_persona.runner.cli import run_command

    cli.add_command(run_command)
    from mlx_persona.runner.init import init_command

    cli.add_command(init_command)
    from mlx_persona.runner.refresh import refresh_command

    cli.add_command(refresh_command)
    from mlx_persona.budget.cli import budget_command

    cli.add_command(budget_command)
    from mlx_persona.export.cli import export_command

    cli.add_command(export_command)
    from mlx_persona.serve.cli import serve_command

    cli.add_command(serve_command)


_register_subcommands()


def main() -> None:
    blas.ensure_fast_blas()
    cli()


if __name__ == "__main__":
    main()
