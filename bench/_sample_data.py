"""Sam's sample chats, cleaned: what the SFT, pairs and DPO benchmarks train on.

``data/sample/`` holds two personas; ``nina_*`` files are the second one (recipes/nina.yaml).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sam_files() -> list[Path]:
    """Sam's raw sample exports (every file in data/sample/ but the second persona's)."""
    return sorted(p for p in (ROOT / "data" / "sample").iterdir() if not p.name.startswith("nina_"))


def clean_sam(out: Path) -> Path:
    """``mlx-persona clean`` Sam's sample files into ``out`` (train/valid/test JSONL); returns ``out``."""
    cmd = [sys.executable, "-m", "mlx_persona.cli", "clean", *map(str, sam_files())]
    cmd += ["--persona", "Sam Okafor", "--persona", "Sam", "--out", str(out), "--quiet"]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    return out
