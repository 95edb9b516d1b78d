"""One protocol between a stage's child process and the parent that started it.

Every MLX-heavy child (``python -m mlx_persona.sft``, ``.dpo``, ``.pairs``, ``.eval``,
``.models.fuse``) runs its work inside :func:`child_main`. A user mistake (a
:class:`~mlx_persona.core.errors.PersonaError`) does not end in a traceback: the child writes it
into its ``status.json`` (``state: "failed"``, the one-line ``error``, its ``pid``; an atomic
write that keeps what the file already said, e.g. the iteration reached) and exits 1.

The parent learns why a child failed from that file (:func:`child_error`), never by searching
the child's console output; the ``pid`` tells this child's failure from an older one. Only a
child that died without a word (a crash, a kill, an import error) leaves the parent to quote
the last lines of its log. :func:`run_child` starts a child that way and waits for it, for the
parents that keep its output (fuse, the pair generator); the training stages and eval follow
their child's output as it runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_write_json


def read_status(path: Path) -> dict:
    """A ``status.json``; {} when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_failure(status: Path, message: str) -> None:
    """Mark the stage failed in ``status`` with ``message``, keeping what the file already said."""
    status = Path(status)
    status.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(status, {**read_status(status), "state": "failed", "error": message, "pid": os.getpid()})


def child_main(work: Callable[[], object], status: Path | None) -> None:
    """Run a child's ``work``; on a user mistake record it in ``status`` (when given), print it
    as one ``error:`` line for the log, and exit 1."""
    try:
        work()
    except PersonaError as e:
        if status is not None:
            record_failure(status, e.message)
        print(f"error: {e.message}", file=sys.stderr, flush=True)
        sys.exit(1)


def child_error(status: Path, pid: int) -> str | None:
    """The error the child with ``pid`` recorded in ``status``; None when it recorded none."""
    s = read_status(status)
    if s.get("state") == "failed" and s.get("pid") == pid and isinstance(s.get("error"), str):
        return s["error"]
    return None


@dataclass
class ChildRun:
    """A finished child: its exit code, its captured output, and the error it recorded (if any)."""

    returncode: int
    stdout: str
    stderr: str
    error: str | None  # the child's own one-line error when it failed with one (:func:`child_error`)


def run_child(cmd: list[str], status: Path) -> ChildRun:
    """Run ``cmd`` (a ``python -m mlx_persona...`` child) with the fast BLAS and ``--status status``
    to the end, capturing its output; a failure it records in ``status`` comes back as ``error``."""
    from mlx_persona.core import blas

    status = Path(status)
    status.unlink(missing_ok=True)  # an older run's failure is not this one's
    proc = subprocess.Popen(
        [*cmd, "--status", str(status)],
        env=blas.fast_blas_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = proc.communicate()
    error = child_error(status, proc.pid) if proc.returncode != 0 else None
    return ChildRun(proc.returncode, stdout, stderr, error)
