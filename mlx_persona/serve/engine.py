"""The generation engine: one thread, every model's batch, every request's tokens.

Requests arrive from the web server's event loop as :class:`Job` objects. The engine's one
thread (MLX runs in it alone) takes them in, loads the model through the pool, builds the prompt
under the model's chat template (the persona's system line first, unless the request brings its
own) and inserts it into that model's ``mlx_lm`` ``BatchGenerator``, the same continuous batcher
the pair generator and the evaluation drive (:mod:`mlx_persona.models.generate`). Requests that
arrive while others decode join the running batch at the next step: N concurrent clients cost
about one batched step per token, not N.

Each step decodes one token for every sequence of one model, in turn over the models that have
work. New tokens go through a streaming detokenizer; text that could still turn into one of the
request's ``stop`` strings is held back until it cannot. Each job's events (``start``, ``text``,
``done``, ``error``) are handed to the event loop thread-safely. A job whose client went away
is cancelled: its sequence leaves the batch at the next step, and no more tokens are spent on it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field

from mlx_persona.serve.pool import Loaded, ModelPool

log = logging.getLogger("mlx_persona.serve")


@dataclass
class Sampling:
    """How one reply is drawn (the OpenAI request's knobs, checked by the API layer)."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


class ApiError(Exception):
    """A request the server cannot serve, as an OpenAI-style error (status, type, code, param)."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", code=None, param=None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class Job:
    """One chat completion in flight; its events queue lives on the event loop that made it."""

    def __init__(self, model: str, messages: list[dict], sampling: Sampling, loop: asyncio.AbstractEventLoop):
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.model, self.messages, self.sampling = model, messages, sampling
        self.events: asyncio.Queue = asyncio.Queue()
        self.cancelled = False
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finish_reason: str | None = None  # stop | length | cancelled | error
        self._loop = loop

    def emit(self, kind: str, payload=None) -> None:
        try:
            self._loop.call_soon_threadsafe(self.events.put_nowait, (kind, payload))
        except RuntimeError:  # the event loop has closed: nobody is listening any more
            pass


class _Sequence:
    """The engine's side of a job: its uid in a batch, its detokenizer, the text sent so far."""

    def __init__(self, job: Job, lm: Loaded, uid: int):
        self.job, self.lm, self.uid = job, lm, uid
        self.detok = lm.tokenizer.detokenizer
        self.detok.reset()
        self.text = ""
        self.sent = 0  # characters of ``text`` already handed to the client

    def feed(self, piece: str) -> bool:
        """Add decoded text; send what can no longer become a stop string. True when a stop string
        appeared (the text before it is sent, the rest dropped)."""
        self.text += piece
        stops = self.job.sampling.stop
        hits = [i for i in (self.text.find(s, max(0, self.sent - len(s) + 1)) for s in stops) if i >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self._send(len(self.text))
            return True
        hold = max((_overlap(self.text, s) for s in stops), default=0)
        self._send(len(self.text) - hold)
        return False

    def flush(self) -> None:
        self._send(len(self.text))

    def _send(self, upto: int) -> None:
        if upto > self.sent:
            self.job.emit("text", self.text[self.sent : upto])
            self.sent = upto


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of ``text`` that begins ``stop`` (held back: it may complete it)."""
    for n in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0


class KeyedSampler:
    """Temperature (+ top-p) sampling from the request's own random key, so a ``seed`` gives the
    same reply whichever requests share its batch. Call: log-probs (1, vocab) -> token (1,)."""

    def __init__(self, temperature: float, top_p: float, seed: int):
        import mlx.core as mx

        self.temperature, self.top_p = temperature, top_p
        self.key = mx.random.key(seed)

    def __call__(self, logprobs):
        import mlx.core as mx

        from mlx_persona.models.generate import sample_token

        self.key, step = mx.random.split(self.key)
        return sample_token(logprobs, self.temperature, self.top_p, key=step)


class Engine:
    """Runs every job through its model's batch generator, on one thread."""

    def __init__(self, pool: ModelPool, batch_size: int = 16, context_tokens: int = 4096):
        self.pool, self.batch_size, self.context_tokens = pool, batch_size, context_tokens
        self._inbox: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._active: dict[int, _Sequence] = {}  # id(sequence) -> sequence, every model's
        self._samplers: dict[tuple[float, float], object] = {}
        self.counts = {
            "requests": 0,
            "finished": 0,
            "cancelled": 0,
            "failed": 0,
            "generated_tokens": 0,
            "widest_batch": 0,
        }
        self.last: dict[str, Job] = {}  # the last finished job per model, for tests and the log
        self._thread = threading.Thread(target=self._run, name="mlx-persona-engine", daemon=True)

    # -- the event loop's side -------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def submit(self, job: Job) -> None:
        self._inbox.put(job)
        self._wake.set()

    def cancel(self, job: Job) -> None:
        job.cancelled = True
        self._wake.set()

    # -- the engine thread -----------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._admit()
            self._drop_cancelled()
            busy = [lm for lm in list(self.pool.loaded.values()) if lm.busy]
            if not busy:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            for lm in busy:
                self._step(lm)
        for seq in list(self._active.values()):
            self._finish(seq, "cancelled")

    def _admit(self) -> None:
        while True:
            try:
                job = self._inbox.get_nowait()
            except queue.Empty:
                return
            self.counts["requests"] += 1
            if job.cancelled:
                continue
            try:
                self._insert(job)
            except ApiError as e:
                job.finish_reason = "error"
                job.emit("error", e)
            except Exception as e:  # our bug or a broken model folder: the job fails, the server goes on
                log.exception("could not start %s on %s", job.id, job.model)
                job.finish_reason = "error"
                job.emit("error", ApiError(500, f"could not start generation: {e}", "server_error"))

    def _insert(self, job: Job) -> None:
        from mlx_lm.generate import BatchGenerator

        from mlx_persona.models.generate import chat_prompt

        entry = self.pool.entries[job.model]
        lm = self.pool.get(job.model)
        messages = job.messages
        if entry.system and not any(m["role"] == "system" for m in messages):
            messages = [{"role": "system", "content": entry.system}] + messages
        try:
            ids = chat_prompt(lm.tokenizer, messages)
        except Exception as e:  # a chat template that refuses this order of roles
            raise ApiError(400, f"the model's chat template refused these messages: {e}", param="messages") from None
        limit = self.context_tokens
        own = getattr(lm.tokenizer, "model_max_length", None)
        if isinstance(own, int) and 0 < own < limit:
            limit = own
        if len(ids) + job.sampling.max_tokens > limit:
            raise ApiError(
                400,
                f"this model's context is {limit} tokens; the messages take {len(ids)} and max_tokens asks "
                f"for {job.sampling.max_tokens}: shorten the messages or lower max_tokens",
                code="context_length_exceeded",
                param="messages",
            )
        if lm.generator is None:
            lm.generator = BatchGenerator(
                lm.model,
                max_tokens=job.sampling.max_tokens,
                stop_tokens=[[t] for t in lm.tokenizer.eos_token_ids],
                completion_batch_size=self.batch_size,
                prefill_batch_size=self.batch_size,
            )
        (uid,) = lm.generator.insert([ids], [job.sampling.max_tokens], samplers=[self._sampler(job.sampling)])
        seq = _Sequence(job, lm, uid)
        self._active[id(seq)] = seq
        lm.busy += 1
        job.prompt_tokens = len(ids)
        job.emit("start", {"prompt_tokens": len(ids)})

    def _sampler(self, s: Sampling):
        """Greedy at temperature 0; a request with a seed gets its own random key; the others share
        one sampler per (temperature, top_p), so their batch samples in one call."""
        from mlx_persona.models.generate import make_sampler

        if s.temperature == 0:
            return make_sampler(0.0, 1.0)
        if s.seed is not None:
            return KeyedSampler(s.temperature, s.top_p, s.seed)
        key = (s.temperature, s.top_p)
        if key not in self._samplers:
            self._samplers[key] = make_sampler(s.temperature, s.top_p)
        return self._samplers[key]

    def _drop_cancelled(self) -> None:
        for seq in [s for s in self._active.values() if s.job.cancelled]:
            seq.lm.generator.remove([seq.uid])
            self._finish(seq, "cancelled")

    def _step(self, lm: Loaded) -> None:
        """One decode step for every sequence of ``lm``; a failure fails its jobs, not the server."""
        import mlx.core as mx

        mine = {s.uid: s for s in self._active.values() if s.lm is lm}
        self.counts["widest_batch"] = max(self.counts["widest_batch"], len(mine))
        mx.reset_peak_memory()
        try:
            responses = lm.generator.next_generated()
        except Exception as e:
            log.exception("generation failed")
            lm.generator = None
            for seq in mine.values():
                seq.job.emit("error", ApiError(500, f"generation failed: {e}", "server_error"))
                self._finish(seq, "error")
            return
        lm.peak_gb = max(lm.peak_gb, mx.get_peak_memory() / 1e9)
        for r in responses:
            seq = mine.get(r.uid)
            if seq is None or id(seq) not in self._active:
                continue
            if r.finish_reason != "stop":  # the end-of-turn token is not part of the reply
                seq.detok.add_token(r.token)
                seq.job.completion_tokens += 1
                self.counts["generated_tokens"] += 1
            if r.finish_reason is not None:
                seq.detok.finalize()
            if seq.feed(seq.detok.last_segment):
                if r.finish_reason is None:
                    lm.generator.remove([seq.uid])
                self._finish(seq, "stop")
            elif r.finish_reason is not None:
                seq.flush()
                self._finish(seq, r.finish_reason)

    def _finish(self, seq: _Sequence, reason: str) -> None:
        self._active.pop(id(seq), None)
        seq.lm.busy -= 1
        job = seq.job
        job.finish_reason = reason
        self.counts["cancelled" if reason == "cancelled" else "failed" if reason == "error" else "finished"] += 1
        self.last[job.model] = job
        if reason == "cancelled":
            log.info("%s cancelled after %d tokens (client gone)", job.id, job.completion_tokens)
        elif reason != "error":
            job.emit("done", {"finish_reason": reason})
