"""Before a stage runs on several machines: is every host ready for it?

``mlx.launch`` starts ``python -m mlx_persona.<stage>`` on each host at the same path, with the
same working folder, and the ranks then wait for each other. A host that cannot be reached, runs
other code or holds other data shows up late and badly: a hang at the first all-reduce, or ranks
that train on different batches and average nonsense. So each host is asked first, in one short
probe per host (over ``ssh`` in batch mode; hosts that are this machine run it directly):

- reachable: ``ssh HOST`` works without a password;
- the same mlx-persona: package version and a fingerprint of its source files;
- the same data: the fingerprint of the stage's data folder at the same path.

The first host that differs stops the stage with one line naming it and what to do.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import socket
import subprocess
import sys
from pathlib import Path

from mlx_persona.core.errors import PersonaError

LOCAL = {"127.0.0.1", "localhost", "::1"}
SSH = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
TIMEOUT_S = 60


def code_fingerprint() -> str:
    """The installed mlx-persona's source files (names and bytes; compiled caches left out)."""
    pkg = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*.py")):
        h.update(str(f.relative_to(pkg)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def probe(data: str) -> dict:
    """What a host reports about itself (run on the host)."""
    from mlx_persona import __version__
    from mlx_persona.core.runs import tree_fingerprint

    return {"version": __version__, "code": code_fingerprint(), "data": tree_fingerprint(data)}


def probe_command(data: Path) -> list[str]:
    """This Python, at its path, printing :func:`probe` as JSON: what each host runs."""
    code = f"import json; from mlx_persona.train.hosts import probe; print(json.dumps(probe({str(data)!r})))"
    return [sys.executable, "-c", code]


def is_local(host: str) -> bool:
    return host in LOCAL or host in (socket.gethostname(), socket.getfqdn())


def hosts_of(dist) -> list[str]:
    """The host names of a ``distributed`` block: its ``hosts``, or the hostfile's ``ssh`` entries."""
    if not dist.hostfile:
        return list(dist.hosts)
    doc = json.loads(Path(dist.hostfile).read_text())
    entries = doc.get("hosts", doc) if isinstance(doc, dict) else doc
    return [e.get("ssh", "") if isinstance(e, dict) else str(e) for e in entries]


def ask(host: str, data: Path) -> dict:
    """Run the probe on ``host``; a one-line PersonaError when it cannot be asked."""
    cmd = probe_command(data)
    if not is_local(host):
        cmd = [*SSH, host, shlex.join(cmd)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except FileNotFoundError:
        raise PersonaError(f"distributed: no ssh client here to reach host {host}; install OpenSSH") from None
    except subprocess.TimeoutExpired:
        raise PersonaError(f"distributed: host {host} did not answer within {TIMEOUT_S} s") from None
    last = (done.stderr.strip().splitlines() or [""])[-1]
    if done.returncode == 255 and not is_local(host):  # ssh's own failure: connect or authenticate
        raise PersonaError(
            f"distributed: host {host} is not reachable over ssh ({last}); "
            f"`ssh {host} true` must work without a password"
        )
    if done.returncode != 0:
        raise PersonaError(
            f"distributed: host {host}: {sys.executable} cannot run mlx-persona ({last}); "
            "install the same version at the same path on every host"
        )
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise PersonaError(
            f"distributed: host {host} answered the probe with something else: {done.stdout[:80]!r}"
        ) from None


def check_hosts(dist, data: Path, stage: str) -> None:
    """Ask every host; raise on the first that is unreachable, runs other code or holds other data."""
    mine = probe(str(data))
    for host in hosts_of(dist):
        theirs = ask(host, data)
        if (theirs.get("version"), theirs.get("code")) != (mine["version"], mine["code"]):
            raise PersonaError(
                f"{stage}: host {host} runs mlx-persona {theirs.get('version')} (code {theirs.get('code')}), this "
                f"machine {mine['version']} (code {mine['code']}); install the same version on every host"
            )
        if theirs.get("data") != mine["data"]:
            raise PersonaError(
                f"{stage}: host {host} has other data at {data} (fingerprint {theirs.get('data')}, here "
                f"{mine['data']}); copy the run folder to the same path on every host"
            )
