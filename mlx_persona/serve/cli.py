"""``mlx-persona serve TARGET``: put a run's models behind an OpenAI-compatible API and a dashboard.

Settings come from the command line over :class:`ServeSettings`' defaults (the API key may come
from ``$MLX_PERSONA_API_KEY`` instead, so it stays out of the process list). Nothing is loaded at
start: each model loads on its first request.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from mlx_persona.core import layout
from mlx_persona.serve.config import API_KEY_ENV, ServeSettings


def build_server(target: str, settings: ServeSettings):
    """The ASGI app for ``target`` under ``settings`` (checked: a non-loopback address without
    a key is refused here), with its pool and engine: ``(app, pool, engine)``."""
    from mlx_persona.budget.devices import current_device
    from mlx_persona.serve.app import create_app
    from mlx_persona.serve.engine import Engine
    from mlx_persona.serve.pool import ModelPool, catalogue

    settings.validate()
    entries = catalogue(target, settings.models or None)
    budget = settings.memory_gb or current_device().usable_gb / 2
    pool = ModelPool(entries, budget)
    engine = Engine(pool, settings.batch_size, settings.context_tokens)
    run = Path(target).expanduser()
    report = run / layout.REPORT_HTML if run.is_dir() and not layout.is_model_dir(run) else None
    app = create_app(
        pool,
        engine,
        api_key=settings.api_key,
        max_body_bytes=settings.max_body_kb * 1024,
        default_max_tokens=settings.max_tokens,
        max_tokens_limit=settings.max_tokens_limit,
        report=report,
        title=run.name if report else entries[0].name,
    )
    return app, pool, engine


@click.command("serve")
@click.argument("target", required=False, default="default")
@ServeSettings.click_options()
def serve_command(target: str, **given) -> None:
    """Serve TARGET (a run folder, an MLX model folder, or 'default') over an OpenAI-compatible
    API (/v1) with a side-by-side dashboard at /."""
    import uvicorn

    given = {k: v for k, v in given.items() if v is not None}
    if "api_key" not in given and os.environ.get(API_KEY_ENV):
        given["api_key"] = os.environ[API_KEY_ENV]
    settings = ServeSettings.from_mapping(given, "serve")
    app, pool, _ = build_server(target, settings)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    click.echo(
        f"serving {', '.join(pool.entries)} on http://{host}:{settings.port} "
        f"(dashboard: /, OpenAI API: /v1; models load on first use within {pool.budget_gb:.1f} GB)"
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", timeout_graceful_shutdown=5)
