"""The OpenAI chat-completions protocol: read a request, write a reply, a stream chunk or an error.

A request is checked field by field before any model work: a wrong type, a value out of range
or an unknown model is an :class:`~mlx_persona.serve.engine.ApiError` (status 400, or 404 for a
model we do not serve) that the app writes as OpenAI's error object, so every client library
shows it as it shows OpenAI's own. Fields we do not use (``user``, ``frequency_penalty``...) are
accepted and ignored, as clients send them by default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlx_persona.serve.engine import ApiError, Job, Sampling

ROLES = {"system", "developer", "user", "assistant"}  # developer: OpenAI's newer name for system
MAX_STOPS = 4  # OpenAI's limit on stop strings


@dataclass
class ChatCall:
    model: str
    messages: list[dict]
    sampling: Sampling
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: a last chunk with the token counts


def _number(body: dict, name: str, default: float, lo: float, hi: float) -> float:
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ApiError(400, f"'{name}' must be a number, got {json.dumps(v)[:40]}", param=name)
    if not lo <= v <= hi:
        raise ApiError(400, f"'{name}' must be between {lo:g} and {hi:g}, got {v}", param=name)
    return float(v)


def _integer(body: dict, name: str) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ApiError(400, f"'{name}' must be an integer, got {json.dumps(v)[:40]}", param=name)
    return v


def _content(m: dict, i: int) -> str:
    """A message's text: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    c = m.get("content")
    if isinstance(c, str):
        return c
    if c is None and m.get("role") == "assistant":
        return ""
    if isinstance(c, list) and all(isinstance(p, dict) for p in c):
        if any(p.get("type") != "text" or not isinstance(p.get("text"), str) for p in c):
            raise ApiError(400, f"messages[{i}].content: only text parts are supported", param=f"messages[{i}].content")
        return "".join(p["text"] for p in c)
    raise ApiError(
        400, f"messages[{i}].content must be a string or a list of text parts", param=f"messages[{i}].content"
    )


def parse_chat(body, models: list[str], default_max: int, max_limit: int) -> ChatCall:
    """Check a ``/v1/chat/completions`` body; ``models`` are the ids we serve (the first is the
    default when a request names none)."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model", models[0])
    if not isinstance(model, str):
        raise ApiError(400, "'model' must be a string", param="model")
    if model not in models:
        raise ApiError(
            404,
            f"the model '{model}' does not exist here; served: {', '.join(models)}",
            code="model_not_found",
            param="model",
        )
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content} objects", param="messages")
    messages = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ApiError(
                400, f"messages[{i}] needs a role: one of {', '.join(sorted(ROLES))}", param=f"messages[{i}]"
            )
        role = "system" if m["role"] == "developer" else m["role"]
        messages.append({"role": role, "content": _content(m, i)})
    n = _integer(body, "n")
    if n not in (None, 1):
        raise ApiError(400, "only n=1 is supported", param="n")
    max_tokens = _integer(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens")
    if max_tokens is not None and not 1 <= max_tokens <= max_limit:
        raise ApiError(400, f"'max_tokens' must be between 1 and {max_limit}, got {max_tokens}", param="max_tokens")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is None:
        stop = []
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > MAX_STOPS:
        raise ApiError(400, f"'stop' must be a string or a list of up to {MAX_STOPS} non-empty strings", param="stop")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise ApiError(400, "'stream' must be true or false", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object", param="stream_options")
    sampling = Sampling(
        max_tokens=max_tokens or default_max,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        seed=_integer(body, "seed"),
        stop=stop,
    )
    return ChatCall(model, messages, sampling, bool(stream), bool(options.get("include_usage")))


def usage(job: Job) -> dict:
    return {
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": job.completion_tokens,
        "total_tokens": job.prompt_tokens + job.completion_tokens,
    }


def completion(job: Job, text: str) -> dict:
    """The whole reply, as ``chat.completion``."""
    return {
        "id": job.id,
        "object": "chat.completion",
        "created": job.created,
        "model": job.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": job.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage(job),
    }


def chunk(job: Job, delta: dict, finish_reason: str | None = None, with_usage: bool = False) -> str:
    """One server-sent event of a streamed reply (``chat.completion.chunk``)."""
    obj = {
        "id": job.id,
        "object": "chat.completion.chunk",
        "created": job.created,
        "model": job.model,
        "choices": []
        if with_usage
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if with_usage:
        obj["usage"] = usage(job)
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"
