"""What the init tests share: stubbed machines, Sam's exports, a WhatsApp group chat writer."""

from __future__ import annotations

from pathlib import Path

from mlx_persona.runner.plan import Machine

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
# the quickstart's four exports of Sam (recipes/quickstart.yaml's data block)
SAM_FILES = [SAMPLE / n for n in ("whatsapp_android.txt", "script.csv", "agent_logs.jsonl", "telegram_result.json")]

SMALL_LINUX = Machine("linux", False, ram_gb=8.0, usable_gb=8.0, gflops=400.0)
MAC_16GB = Machine("darwin", True, ram_gb=17.18, usable_gb=11.45, gflops=3000.0, profile="m-series-16gb")

WORDS = ("deploy", "lunch", "review", "the graphs", "friday", "the build", "coffee", "tickets", "staging")


def whatsapp_group(path: Path, counts: dict[str, int]) -> Path:
    """A WhatsApp (Android) group export in which each speaker writes ``counts[speaker]``
    messages, taking turns, one minute apart, every message at least 10 characters."""
    left, lines, minute = dict(counts), ["12/03/2024, 08:58 - Messages and calls are end-to-end encrypted."], 0
    while any(left.values()):
        for who in counts:
            if left[who]:
                left[who] -= 1
                minute += 1
                what = WORDS[(minute * 7 + len(who)) % len(WORDS)]
                lines.append(
                    f"13/03/2024, {9 + minute // 60:02d}:{minute % 60:02d} - {who}: "
                    f"message {minute} from {who} about {what}"
                )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
