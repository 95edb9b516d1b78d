"""The report of a refreshed run (``RUN/vN``, :mod:`mlx_persona.runner.refresh`): where it came
from and what was new. Its eval's ``base`` is the previous twin, so the results table already
sets the old twin beside the new one; this block says so."""

from __future__ import annotations

from pathlib import Path

REFRESH_FILE = "refresh.json"


def refresh_blocks(run: Path, read_json) -> list:
    info = read_json(Path(run) / REFRESH_FILE)
    if not info:
        return []
    n = info.get("new_samples", {})
    twin = info.get("from_twin", {})
    return [
        ("h2", "Refresh"),
        (
            "p",
            f"A new version of {info.get('from_run')}: trained from its twin ({twin.get('name')}, {twin.get('folder')}), "
            f"which is the 'base' column in the results, on {n.get('train', 0)} new train samples plus "
            f"{info.get('replayed', 0)} replayed old ones ({info.get('messages', {}).get('new', 0)} new messages in "
            f"{len(info.get('new_exports', []))} export(s); {info.get('already_in_run', 0)} samples already in the run "
            f"were left out). The test split holds only new conversations.",
        ),
    ]
