"""Alpaca JSONL / JSON: ``instruction`` + optional ``input`` -> ``output``.

Optional ``system`` and ``history`` (``[[question, answer], ...]`` before this exchange).
"""

from __future__ import annotations

from mlx_persona.data.ingest.base import Conversation, ReadResult, Reject, Turn, read_json_records


def looks_like(record: dict) -> bool:
    return "instruction" in record and "output" in record


def convert(obj: dict, source: str, line: int, result: ReadResult):
    instruction, output = obj.get("instruction"), obj.get("output")
    if not isinstance(instruction, str) or not isinstance(output, str):
        result.rejects.append(Reject(source, line, "bad-record", "'instruction' and 'output' must be strings"))
        return None
    turns = []
    for pair in obj.get("history") or []:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            turns.append(Turn("user", str(pair[0]), line, None, "user"))
            turns.append(Turn("assistant", str(pair[1]), line, None, "assistant"))
    extra = obj.get("input")
    prompt = f"{instruction}\n\n{extra}" if isinstance(extra, str) and extra.strip() else instruction
    turns.append(Turn("user", prompt, line, None, "user"))
    turns.append(Turn("assistant", output, line, None, "assistant"))
    system = obj.get("system") if isinstance(obj.get("system"), str) and obj["system"].strip() else None
    return Conversation(source, line, turns, system, named=False)


def read(raw: bytes, source: str, options=None) -> ReadResult:
    return read_json_records(raw, source, convert)
