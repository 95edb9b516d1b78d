"""The chat, driven in a real terminal (a pty via pexpect) and through its Python API."""

import json
import signal
import sys
import time

import pexpect
import pytest
from click.testing import CliRunner

from mlx_persona.chat import ChatSession, Target, resolve_target
from mlx_persona.cli import cli
from mlx_persona.core.blas import fast_blas_env
from mlx_persona.core.errors import PersonaError


def _spawn(args, cwd, preexec_fn=None):
    child = pexpect.spawn(
        sys.executable,
        ["-m", "mlx_persona.cli", "chat", *args],
        cwd=str(cwd),
        env=fast_blas_env(),
        encoding="utf-8",
        timeout=60,
        dimensions=(50, 200),
        preexec_fn=preexec_fn,
    )
    child.expect("chatting with")
    child.expect("you> ")
    return child


def test_chat_in_a_terminal(tiny_model_dir, tmp_path):
    child = _spawn(
        [str(tiny_model_dir), "--base", str(tiny_model_dir), "--temp", "0", "--max-tokens", "12", "--stats"], tmp_path
    )
    child.sendline("hello there")
    child.expect("twin> ")
    child.expect("tok/s")  # stats line after the reply
    child.expect("you> ")
    child.sendline("and a second message")
    child.expect("tok/s")
    child.expect("you> ")

    child.sendline("/compare")
    child.expect("base model")
    child.expect("twin")
    child.expect("you> ")

    child.sendline("/save transcript.jsonl")
    child.expect("saved to transcript.jsonl")
    child.expect("you> ")

    # a reply long enough to interrupt: Ctrl-C stops it and the chat goes on
    child.sendline("/max 100000")
    child.expect("you> ")
    child.sendline("talk for a long time")
    child.expect("twin> ")
    child.expect(r"[^\x1b\[\d;m\s]", timeout=30)  # a generated character, not the prompt's colour codes
    time.sleep(0.5)  # well into a reply of up to 100,000 tokens
    child.sendintr()
    child.expect("stopped")
    child.expect("you> ")
    child.sendline("/help")
    child.expect("/compare")
    child.expect("you> ")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    record = json.loads((tmp_path / "transcript.jsonl").read_text().splitlines()[0])
    roles = [m["role"] for m in record["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert record["messages"][0]["content"] == "hello there"

    out = tmp_path / "cleaned"
    res = CliRunner().invoke(
        cli,
        [
            "clean",
            str(tmp_path / "transcript.jsonl"),
            "--persona",
            "assistant",
            "--out",
            str(out),
            "--min-reply-chars",
            "1",
            "--split",
            "1,0,0",
        ],
    )
    assert res.exit_code == 0, res.output
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert train and all(s["messages"][-1]["role"] == "assistant" for s in train)


def _ignore_sigint():  # as a shell without job control starts a background command
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("started", [None, _ignore_sigint], ids=["foreground", "sigint-ignored"])
def test_ctrl_d_leaves_and_ctrl_c_at_prompt_stays(tiny_model_dir, tmp_path, started):
    child = _spawn([str(tiny_model_dir)], tmp_path, preexec_fn=started)
    child.sendintr()
    child.expect("to leave")
    child.expect("you> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_history_is_trimmed_to_the_context_budget(tiny_model_dir):
    s = ChatSession(Target(tiny_model_dir), system="be terse", temp=0.0, max_tokens=8, context_tokens=80)
    for i in range(6):
        msg = f"message number {i} with some words in it"
        _, ids = s.trimmed(s.history + [{"role": "user", "content": msg}])
        assert len(ids) <= 80 - 8  # the prompt leaves room for a full reply
        s.reply(msg)
    assert len(s.history) < 12  # six exchanges did not all fit: the oldest were dropped
    assert s.history[0]["role"] == "user" and "number 0" not in s.history[0]["content"]
    assert s.messages()[0] == {"role": "system", "content": "be terse"}


def test_save_keeps_earlier_records(tiny_model_dir, tmp_path):
    s = ChatSession(Target(tiny_model_dir), temp=0.0, max_tokens=4)
    s.reply("first")
    s.save(tmp_path / "t.jsonl")
    s.history = []
    s.reply("second")
    s.save(tmp_path / "t.jsonl")
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert [json.loads(line)["messages"][0]["content"] for line in lines] == ["first", "second"]


def test_message_mode_prints_one_reply(tiny_model_dir):
    res = CliRunner().invoke(cli, ["chat", str(tiny_model_dir), "-m", "hi", "--temp", "0", "--max-tokens", "5"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() != ""


def test_run_folder_resolution(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    (run / "sft").mkdir(parents=True)
    with pytest.raises(PersonaError, match="no twin yet"):
        resolve_target(str(run))
    (run / "manifest.json").write_text(json.dumps({"model": str(tiny_model_dir)}))
    (run / "sft" / "adapters.safetensors").write_bytes(b"")
    (run / "sft" / "adapter_config.json").write_text("{}")
    t = resolve_target(str(run))
    assert t.model == tiny_model_dir and t.adapter == run / "sft" and t.base == str(tiny_model_dir)
    import shutil

    shutil.copytree(tiny_model_dir, run / "dpo_fused")
    t = resolve_target(str(run))
    assert t.model == run / "dpo_fused" and t.adapter is None


def test_missing_run_is_a_one_line_error(tmp_path):
    res = CliRunner().invoke(cli, ["chat", str(tmp_path / "nope"), "-m", "hi"])
    assert res.exit_code == 1
    assert "no such run folder or model" in res.output and "mlx-persona run" in res.output
    assert "Traceback" not in res.output


def test_compare_text_sends_that_text_and_the_bare_form_reuses_the_last_message(tiny_model_dir, monkeypatch):
    from rich.console import Console

    from mlx_persona.chat import repl

    s = ChatSession(Target(tiny_model_dir, base=str(tiny_model_dir)), temp=0.0, max_tokens=6)
    asked: list[str] = []
    real_base_reply = s.base_reply
    monkeypatch.setattr(s, "base_reply", lambda m: asked.append(m) or real_base_reply(m))
    lines = iter(["hello there", "/compare what about friday?", "/compare"])

    def fake_input(_prompt=""):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    console = Console(record=True, width=200)
    repl(s, console)
    out = console.export_text()
    # /compare TEXT: the twin answered TEXT as a new turn and the base model was asked TEXT
    assert [m["content"] for m in s.history if m["role"] == "user"] == ["hello there", "what about friday?"]
    assert asked == ["what about friday?", "what about friday?"]  # the bare form reuses the last message
    assert out.count("you: what about friday?") == 2 and "you: hello there" not in out
