"""The web app: OpenAI's routes, the dashboard's few JSON routes, and the dashboard itself.

    GET  /                       the dashboard (static HTML/JS/CSS shipped in the package)
    GET  /v1/models              the served models, OpenAI's list
    POST /v1/chat/completions    a reply, whole or streamed (server-sent events)
    GET  /api/models             each model's parameters, adapter, quantisation, memory, state
    GET  /api/report             the run's report.html (the dashboard's report tab)

Two guards wrap every request before a route sees it (:class:`Guard`): with an API key, a
``/v1`` or ``/api`` request must carry ``Authorization: Bearer KEY`` (compared in constant
time; 401 otherwise); and a body larger than the limit is refused with 413, whether it says its
length up front or streams past it. Every error, ours included, is OpenAI's error object with a
4xx/5xx status, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mlx_persona.serve.engine import ApiError, Engine, Job
from mlx_persona.serve.openai_api import chunk, completion, parse_chat
from mlx_persona.serve.pool import ModelPool

log = logging.getLogger("mlx_persona.serve")
STATIC = Path(__file__).parent / "static"
DISCONNECT_POLL_S = 0.5  # how often a whole (non-streamed) reply checks that its client is still there


def error_response(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status)


class Guard:
    """ASGI middleware: the API key and the body limit, checked before the app reads anything."""

    def __init__(self, app, api_key: str | None, max_body_bytes: int):
        self.app, self.api_key, self.max_body = app, api_key, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.api_key and scope["path"].startswith(("/v1", "/api")):
            auth = headers.get(b"authorization", b"").decode("latin-1")
            given = auth[7:] if auth[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(given.encode(), self.api_key.encode()):
                return await _send_error(send, ApiError(401, "missing or wrong API key", code="invalid_api_key"))
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _send_error(send, _too_large(self.max_body))
        # read the whole body here (it is small), so a chunked one that runs past the limit is
        # refused before the app has seen a byte of it; the app then reads it from memory
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending it all
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return await _send_error(send, _too_large(self.max_body))
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect a streaming reply waits for

        await self.app(scope, replay, send)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, f"request body over {limit // 1024} KiB (the server's --max-body-kb)", code="request_too_large"
    )


async def _send_error(send, e: ApiError) -> None:
    body = json.dumps(e.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if e.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": e.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _lifespan(engine: Engine):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        engine.start()
        try:
            yield
        finally:
            engine.stop()

    return lifespan


def create_app(
    pool: ModelPool,
    engine: Engine,
    *,
    api_key: str | None = None,
    max_body_bytes: int = 512 * 1024,
    default_max_tokens: int = 256,
    max_tokens_limit: int = 2048,
    report: Path | None = None,
    title: str = "mlx-persona",
) -> Guard:
    names = list(pool.entries)

    async def list_models(request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": n, "object": "model", "created": 0, "owned_by": "mlx-persona"} for n in names],
            }
        )

    async def model_details(request: Request) -> Response:
        out = []
        for name, entry in pool.entries.items():
            lm = pool.loaded_of(name)
            out.append(
                {
                    "id": name,
                    **entry.describe(),
                    "system": entry.system,
                    "loaded": lm is not None,
                    "weights_gb": round(lm.weights_gb, 4) if lm else None,
                    "peak_memory_gb": round(lm.peak_gb, 4) if lm and lm.peak_gb else None,
                }
            )
        return JSONResponse(
            {
                "title": title,
                "models": out,
                "budget_gb": round(pool.budget_gb, 3),
                "evictions": pool.evictions[-20:],
                "report": report is not None and report.is_file(),
                "max_tokens": default_max_tokens,
            }
        )

    async def report_page(request: Request) -> Response:
        if report is None or not report.is_file():
            raise ApiError(404, "this run has no report yet (mlx-persona report RUN)", code="not_found")
        return FileResponse(report, media_type="text/html")

    async def chat_completions(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "the request body is not valid JSON") from None
        call = parse_chat(body, names, default_max_tokens, max_tokens_limit)
        job = Job(call.model, call.messages, call.sampling, asyncio.get_running_loop())
        engine.submit(job)
        try:
            kind, payload = await job.events.get()  # "start", or an error before any token
        except asyncio.CancelledError:
            engine.cancel(job)
            raise
        if kind == "error":
            raise payload
        if call.stream:
            return StreamingResponse(
                _stream(job, call.include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await _whole(job, request)

    async def _stream(job: Job, include_usage: bool):
        try:
            yield chunk(job, {"role": "assistant", "content": ""})
            while True:
                kind, payload = await job.events.get()
                if kind == "text":
                    yield chunk(job, {"content": payload})
                elif kind == "done":
                    yield chunk(job, {}, payload["finish_reason"])
                    if include_usage:
                        yield chunk(job, {}, with_usage=True)
                    break
                elif kind == "error":  # headers are gone: the error travels as an event
                    yield f"data: {json.dumps(payload.body())}\n\n"
                    break
            yield "data: [DONE]\n\n"
        finally:
            if job.finish_reason is None:  # the client left mid-stream: stop spending tokens on it
                engine.cancel(job)

    async def _whole(job: Job, request: Request) -> Response:
        parts: list[str] = []
        try:
            while True:
                try:
                    kind, payload = await asyncio.wait_for(job.events.get(), DISCONNECT_POLL_S)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        engine.cancel(job)
                        return Response(status_code=499)
                    continue
                if kind == "text":
                    parts.append(payload)
                elif kind == "done":
                    return JSONResponse(completion(job, "".join(parts)))
                elif kind == "error":
                    raise payload
        finally:
            if job.finish_reason is None:
                engine.cancel(job)

    async def dashboard(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def on_api_error(request: Request, e: ApiError) -> Response:
        return error_response(e)

    async def on_http_error(request: Request, e: HTTPException) -> Response:
        kinds = {404: "not_found", 405: "method_not_allowed"}
        return error_response(ApiError(e.status_code, str(e.detail), code=kinds.get(e.status_code)))

    async def on_crash(request: Request, e: Exception) -> Response:
        log.exception("request failed")
        return error_response(ApiError(500, "the server failed on this request; see its log", "server_error"))

    app = Starlette(
        routes=[
            Route("/", dashboard),
            Route("/v1/models", list_models),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/api/models", model_details),
            Route("/api/report", report_page),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_error, Exception: on_crash},
        lifespan=_lifespan(engine),
    )
    return Guard(app, api_key, max_body_bytes)
