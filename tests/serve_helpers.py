"""A fake run folder of tiny models and a live server on loopback, for the serve tests."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import yaml
from tiny import build_tiny_llama

PERSONA_LINE = "You are Sam, a terse engineer."


def tiny_run(root: Path, tiny_model_dir: Path, report: bool = False) -> Path:
    """A run folder as the pipeline leaves it: sft_fused/ and dpo_fused/ (two different tiny
    models), the twin stage's pick (dpo), and a recipe naming the base model and the persona line."""
    run = root / "sam"
    run.mkdir(parents=True)
    shutil.copytree(tiny_model_dir, run / "sft_fused")
    build_tiny_llama(run / "dpo_fused", seed=1)
    (run / "twin").mkdir()
    (run / "twin" / "twin.json").write_text(json.dumps({"twin": "dpo", "folder": "dpo_fused"}))
    base = build_tiny_llama(root / "base-model", seed=2)
    (run / "recipe.yaml").write_text(yaml.safe_dump({"model": str(base), "persona": {"system": PERSONA_LINE}}))
    if report:
        (run / "report.html").write_text("<html><body><h1>report of sam</h1></body></html>")
    return run


@contextlib.contextmanager
def live_server(target: Path | str, **settings):
    """``mlx-persona serve TARGET`` in a thread, on a free loopback port; yields its url, pool and
    engine (the same objects the server uses, so a test can look inside)."""
    import uvicorn

    from mlx_persona.serve.cli import build_server
    from mlx_persona.serve.config import ServeSettings

    app, pool, engine = build_server(str(target), ServeSettings.from_mapping(settings, "serve"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}", port=port, pool=pool, engine=engine)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def prompt_len(model_dir: Path, messages: list[dict]) -> int:
    """Tokens of ``messages`` under the model's chat template, as the server should count them."""
    from mlx_lm import load

    from mlx_persona.models.generate import chat_prompt

    return len(chat_prompt(load(str(model_dir))[1], messages))
