"""Loopback load test of ``mlx-persona serve``: concurrent clients against one-at-a-time, and
against ``python -m mlx_lm server`` on the same model, the same requests, in the same run.

    python bench/serve_load.py [--clients 16] [--requests 4] [--max-tokens 32] [--skip-mlx-lm]

Each of ``clients`` threads sends its ``requests`` chat completions one after another (greedy,
``max_tokens`` each, every prompt different) to the embedded default model. Measured:

1. our server, the same requests sent one at a time (the reference replies and the baseline);
2. our server, all clients at once;
3. mlx_lm's own server, all clients at once.

Every request must be answered; a reply counts as *mixed up* when it differs from its own
reference and equals another request's reference (the server handed it to the wrong client).
Throughput is generated tokens per second of wall time. Both servers run as child processes
under the same fast BLAS. Exit 1 when a request went unanswered or was mixed up.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOPICS = ["the cache", "the deploy", "lunch", "the tests", "the ttl", "friday", "the review", "the outage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], port: int, log: Path) -> subprocess.Popen:
    """Start a server child and wait until its /v1/models answers."""
    from mlx_persona.core.blas import fast_blas_env

    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=fast_blas_env(), cwd=ROOT)
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{cmd[:4]} exited ({proc.returncode}); see {log}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/v1/models")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"{cmd[:4]} did not come up in 600 s; see {log}")


def ask(port: int, model: str, prompt: str, max_tokens: int) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = json.loads(r.read())
    conn.close()
    if r.status != 200:
        return {"error": f"{r.status}: {data}"}
    return {"text": data["choices"][0]["message"]["content"], "tokens": data["usage"]["completion_tokens"]}


def sequential(port: int, model: str, prompts: list[str], max_tokens: int) -> tuple[dict, float]:
    tic = time.perf_counter()
    out = {p: ask(port, model, p, max_tokens) for p in prompts}
    return out, time.perf_counter() - tic


def concurrent(port: int, model: str, per_client: list[list[str]], max_tokens: int) -> tuple[dict, float]:
    out: dict[str, dict] = {}

    def client(prompts):
        for p in prompts:
            try:
                out[p] = ask(port, model, p, max_tokens)
            except Exception as e:  # an answer that never came is counted, not raised
                out[p] = {"error": repr(e)}

    threads = [threading.Thread(target=client, args=(ps,)) for ps in per_client]
    tic = time.perf_counter()
    [t.start() for t in threads]
    [t.join() for t in threads]
    return out, time.perf_counter() - tic


def summary(label: str, out: dict, seconds: float, prompts: list[str], reference: dict | None) -> dict:
    answered = [p for p in prompts if "text" in out.get(p, {})]
    tokens = sum(out[p]["tokens"] for p in answered)
    row = {
        "mode": label,
        "answered": f"{len(answered)}/{len(prompts)}",
        "seconds": round(seconds, 1),
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1),
        "requests_per_s": round(len(answered) / seconds, 2),
    }
    if reference is not None:
        same = sum(out[p]["text"] == reference[p]["text"] for p in answered)
        others = {p: reference[p]["text"] for p in prompts}
        mixed = [
            p
            for p in answered
            if out[p]["text"] != others[p] and any(out[p]["text"] == t for q, t in others.items() if q != p)
        ]
        row["same_as_alone"] = f"{same}/{len(answered)}"
        row["mixed_up"] = len(mixed)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=4, help="Requests per client, one after another.")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--skip-mlx-lm", action="store_true", help="Do not measure mlx_lm's server.")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "serve_load")
    a = ap.parse_args()
    from mlx_persona.models.default import default_model_dir

    model_dir = default_model_dir()
    a.out.mkdir(parents=True, exist_ok=True)
    per_client = [
        [
            f"client {c}, question {r}: what do you think about {TOPICS[(c + r) % len(TOPICS)]}?"
            for r in range(a.requests)
        ]
        for c in range(a.clients)
    ]
    prompts = [p for ps in per_client for p in ps]
    rows = []

    port = free_port()
    ours = [sys.executable, "-m", "mlx_persona.cli", "serve", str(model_dir), "--port", str(port)]
    proc = start([*ours, "--batch-size", str(a.clients)], port, a.out / "serve.log")
    try:
        ask(port, model_dir.name, "warm up", 4)
        reference, secs = sequential(port, model_dir.name, prompts, a.max_tokens)
        rows.append(summary("mlx-persona serve, one at a time", reference, secs, prompts, None))
        out, secs = concurrent(port, model_dir.name, per_client, a.max_tokens)
        rows.append(summary(f"mlx-persona serve, {a.clients} clients", out, secs, prompts, reference))
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    if not a.skip_mlx_lm:
        port = free_port()
        cmd = [sys.executable, "-m", "mlx_lm", "server", "--model", str(model_dir), "--port", str(port)]
        proc = start([*cmd, "--log-level", "WARNING"], port, a.out / "mlx_lm_server.log")
        try:
            ask(port, "default_model", "warm up", 4)
            out, secs = concurrent(port, "default_model", per_client, a.max_tokens)
            rows.append(summary(f"mlx_lm server, {a.clients} clients", out, secs, prompts, reference))
        finally:
            proc.terminate()
            proc.wait(timeout=60)

    keys = list(rows[1])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
    base = rows[0]["tokens_per_s"]
    print(f"concurrent vs one at a time: {rows[1]['tokens_per_s'] / base:.2f}x")
    if len(rows) > 2:
        print(
            f"mlx-persona serve vs mlx_lm server ({a.clients} clients): {rows[1]['tokens_per_s'] / rows[2]['tokens_per_s']:.2f}x"
        )
    (a.out / "results.json").write_text(json.dumps(rows, indent=2))
    bad = rows[1]["answered"] != f"{len(prompts)}/{len(prompts)}" or rows[1]["mixed_up"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
