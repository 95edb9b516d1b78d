"""``mlx-persona serve``: a live server on loopback, called with the official ``openai`` client.

The run folder holds three different tiny random models (sft, dpo = the twin, base); nothing is
downloaded. Raw HTTP (``http.client``) is used where a client library would hide what is on the
wire: bad JSON, an oversized body, a client that hangs up mid-stream.
"""

from __future__ import annotations

import http.client
import json
import threading
import time

import openai
import pytest
from click.testing import CliRunner
from serve_helpers import PERSONA_LINE, live_server, prompt_len, tiny_run

from mlx_persona.cli import cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir):
    return tiny_run(tmp_path_factory.mktemp("serve-run"), tiny_model_dir, report=True)


@pytest.fixture(scope="module")
def server(run_dir):
    with live_server(run_dir) as s:
        yield s


def client(server, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=60)


def raw(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def test_models_reply_and_stream(server, run_dir):
    c = client(server)
    assert [m.id for m in c.models.list().data] == ["twin", "sft", "dpo", "base"]
    ask = dict(model="twin", messages=[{"role": "user", "content": "hello there"}], temperature=0, max_tokens=8)
    r = c.chat.completions.create(**ask)
    text = r.choices[0].message.content
    assert r.object == "chat.completion" and r.model == "twin" and r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason in ("stop", "length") and 1 <= r.usage.completion_tokens <= 8
    assert text  # random weights: any characters, but some
    pieces, finish, chunks = [], None, 0
    for ch in c.chat.completions.create(**ask, stream=True):
        chunks += 1
        if ch.choices and ch.choices[0].delta.content:
            pieces.append(ch.choices[0].delta.content)
        if ch.choices and ch.choices[0].finish_reason:
            finish = ch.choices[0].finish_reason
    assert "".join(pieces) == text and finish == r.choices[0].finish_reason  # greedy: the same reply
    assert chunks >= 3 and len(pieces) >= 2  # it came in pieces, not as one block
    sample = dict(ask, temperature=1.0, seed=3, max_tokens=12)
    twin, base = (
        c.chat.completions.create(**{**sample, "model": m}).choices[0].message.content for m in ("twin", "base")
    )
    assert twin != base  # the same draw from two different models: each name reached its own model


def test_the_persona_line_is_applied_unless_the_request_brings_its_own(server, run_dir):
    c = client(server)
    user = [{"role": "user", "content": "when do we ship?"}]
    got = c.chat.completions.create(model="twin", messages=user, temperature=0, max_tokens=2).usage.prompt_tokens
    assert got == prompt_len(run_dir / "dpo_fused", [{"role": "system", "content": PERSONA_LINE}, *user])
    own = [{"role": "system", "content": "be brief"}, *user]
    got = c.chat.completions.create(model="twin", messages=own, temperature=0, max_tokens=2).usage.prompt_tokens
    assert got == prompt_len(run_dir / "dpo_fused", own)


def test_bad_input_gets_an_openai_error_object_and_the_server_goes_on(server):
    c = client(server)
    ok = dict(model="twin", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    with pytest.raises(openai.NotFoundError) as e:
        c.chat.completions.create(**{**ok, "model": "gpt-9"})
    assert e.value.code == "model_not_found" and "twin" in e.value.message
    for bad, param in (
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": 10**6}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0]"),
        ({"stop": 3}, "stop"),
        ({"n": 2}, "n"),
    ):
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(**{**ok, **bad})
        assert e.value.status_code == 400 and e.value.body["param"] == param, bad
    status, body = raw(server, "POST", "/v1/chat/completions", b"{not json", {"Content-Type": "application/json"})
    err = json.loads(body)["error"]
    assert status == 400 and err["type"] == "invalid_request_error" and "JSON" in err["message"]
    status, body = raw(server, "GET", "/v1/nothing-here")
    assert status == 404 and "error" in json.loads(body)
    assert c.chat.completions.create(**ok).choices[0].message.content is not None  # still serving


def test_stop_strings_and_seeds(server):
    c = client(server)
    msgs = [{"role": "user", "content": "say something long"}]
    full = c.chat.completions.create(model="sft", messages=msgs, temperature=0, max_tokens=24).choices[0].message
    text = full.content
    assert len(text) > 6
    stop = text[3:6]
    r = c.chat.completions.create(model="sft", messages=msgs, temperature=0, max_tokens=24, stop=[stop])
    assert r.choices[0].message.content == text[: text.find(stop)] and r.choices[0].finish_reason == "stop"
    pieces = [
        ch.choices[0].delta.content or ""
        for ch in c.chat.completions.create(
            model="sft", messages=msgs, temperature=0, max_tokens=24, stop=stop, stream=True
        )
        if ch.choices
    ]
    assert "".join(pieces) == text[: text.find(stop)]  # streamed text never shows the held-back stop

    # a seed gives the same sample, alone or batched with other requests
    ask = dict(model="sft", messages=msgs, temperature=1.0, top_p=0.9, max_tokens=16)
    alone = c.chat.completions.create(**ask, seed=7).choices[0].message.content
    results: dict[int, str] = {}

    def call(i):
        results[i] = (
            client(server).chat.completions.create(**ask, seed=7 if i == 0 else 100 + i).choices[0].message.content
        )

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results[0] == alone
    assert len({alone, *results.values()}) > 1  # other seeds sampled other replies


def test_concurrent_requests_share_one_batch(server):
    c = client(server)
    prompts = [f"question number {i}, about {w}" for i, w in enumerate(["cache", "deploy", "lunch", "tests", "ttl"])]

    def ask(p, cl=c):
        return cl.chat.completions.create(
            model="sft", messages=[{"role": "user", "content": p}], temperature=0, max_tokens=12
        ).choices[0]

    alone = {p: ask(p).message.content for p in prompts}
    before = server.engine.counts["widest_batch"]
    server.engine.counts["widest_batch"] = 0
    together: dict[str, str] = {}
    threads = [
        threading.Thread(target=lambda p=p: together.update({p: ask(p, client(server)).message.content}))
        for p in prompts
    ]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert server.engine.counts["widest_batch"] >= 2, before  # decoded side by side, not one by one
    assert together == alone  # each client got its own reply, as if it had been alone


def test_a_client_that_hangs_up_mid_stream_stops_its_generation(server, monkeypatch):
    from mlx_lm.generate import BatchGenerator

    real = BatchGenerator.next_generated

    def slow(self):  # 20 ms a step: the reply cannot finish before the client hangs up
        time.sleep(0.02)
        return real(self)

    monkeypatch.setattr(BatchGenerator, "next_generated", slow)
    cancelled = server.engine.counts["cancelled"]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    body = {"model": "base", "messages": [{"role": "user", "content": "go on"}], "max_tokens": 400, "stream": True}
    body["temperature"] = 0
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200 and r.readline().startswith(b"data: ")
    conn.sock.shutdown(2)
    conn.close()
    deadline = time.time() + 20
    while server.engine.counts["cancelled"] == cancelled and time.time() < deadline:
        time.sleep(0.05)
    job = server.engine.last["base"]
    assert job.finish_reason == "cancelled" and job.completion_tokens < 400
    assert client(server).chat.completions.create(model="base", messages=body["messages"], max_tokens=2).choices


def test_dashboard_routes(server):
    status, page = raw(server, "GET", "/")
    assert status == 200 and b"<title>" in page
    status, js = raw(server, "GET", "/static/app.js")
    assert status == 200 and b"/v1/chat/completions" in js
    details = json.loads(raw(server, "GET", "/api/models")[1])
    by_id = {m["id"]: m for m in details["models"]}
    assert set(by_id) == {"twin", "sft", "dpo", "base"} and details["report"] is True
    assert by_id["twin"]["parameters"] > 10_000 and by_id["twin"]["quantization"].startswith("none")
    assert by_id["twin"]["system"] == PERSONA_LINE and "dpo_fused" in by_id["twin"]["origin"]
    assert raw(server, "GET", "/api/report")[1].startswith(b"<html>")


def test_api_key_and_body_limit(run_dir):
    with live_server(run_dir, api_key="s3cret", max_body_kb=4, models=["twin"]) as s:
        ask = dict(model="twin", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        with pytest.raises(openai.AuthenticationError) as e:
            client(s, "wrong").chat.completions.create(**ask)
        assert e.value.status_code == 401 and e.value.code == "invalid_api_key"
        assert raw(s, "GET", "/v1/models")[0] == 401  # no key at all
        assert raw(s, "GET", "/")[0] == 200  # the dashboard page itself holds nothing secret
        assert client(s, "s3cret").chat.completions.create(**ask).choices  # the right key works
        big = {**ask, "messages": [{"role": "user", "content": "x" * 8000}]}
        with pytest.raises(openai.APIStatusError) as e:
            client(s, "s3cret").chat.completions.create(**big)
        assert e.value.status_code == 413
        # a chunked body (no length up front) that runs past the limit is refused as well
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=iter([b"{" + b" " * 3000, b" " * 3000 + b"}"]),
            headers={"Authorization": "Bearer s3cret", "Content-Type": "application/json"},
            encode_chunked=True,
        )
        assert conn.getresponse().status == 413
        conn.close()
        assert client(s, "s3cret").chat.completions.create(**ask).choices  # still serving


def test_listening_beyond_loopback_needs_a_key(run_dir, monkeypatch):
    monkeypatch.delenv("MLX_PERSONA_API_KEY", raising=False)
    r = CliRunner().invoke(cli, ["serve", str(run_dir), "--host", "0.0.0.0", "--port", "0"])
    assert r.exit_code == 1 and "--api-key" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["serve", str(run_dir), "--models", "twin,gpt"])
    assert r.exit_code == 1 and "no gpt model" in r.output


def test_least_recently_used_model_leaves_when_the_budget_is_full(run_dir, tiny_model_dir):
    size_gb = sum(f.stat().st_size for f in tiny_model_dir.glob("*.safetensors")) / 1e9
    with live_server(run_dir, memory_gb=size_gb * 1.5) as s:  # room for one tiny model
        c = client(s)
        for name in ("twin", "sft", "twin"):
            assert c.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        assert s.pool.evictions == ["twin/dpo", "sft"]  # names sharing a folder leave together
        assert len(s.pool.loaded) == 1 and s.pool.is_loaded("twin") and s.pool.is_loaded("dpo")


def test_a_model_folder_serves_under_its_name(tiny_model_dir):
    with live_server(tiny_model_dir) as s:
        c = client(s)
        assert [m.id for m in c.models.list().data] == [tiny_model_dir.name]
        r = c.chat.completions.create(
            model=tiny_model_dir.name, messages=[{"role": "user", "content": "hi"}], max_tokens=3
        )
        assert r.usage.prompt_tokens == prompt_len(
            tiny_model_dir, [{"role": "user", "content": "hi"}]
        )  # no persona line


def test_what_counts_as_loopback():
    from mlx_persona.serve.config import ServeSettings, is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.20", "my-mac.local"))
    assert ServeSettings.from_mapping({"host": "0.0.0.0", "api_key": "k"}).host == "0.0.0.0"
