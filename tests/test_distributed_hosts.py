"""Before a stage runs across machines, every host is asked: reachable over ssh, the same
mlx-persona, the same data. A fake ``ssh`` on PATH plays the other Mac."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from mlx_persona.core.errors import PersonaError
from mlx_persona.train import hosts
from mlx_persona.train.launch import DistributedBlock

FAKE_SSH = """#!/bin/sh
# fake ssh: options, then HOST, then the command line; FAKE_SSH_MODE says how the host behaves
while [ "$1" = "-o" ]; do shift 2; done
host="$1"; shift
echo "$host" >> "$FAKE_SSH_LOG"
case "$FAKE_SSH_MODE" in
  same) exec sh -c "$*" ;;
  down) echo "ssh: connect to host $host port 22: Connection refused" >&2; exit 255 ;;
  nopkg) echo "ModuleNotFoundError: No module named 'mlx_persona'" >&2; exit 1 ;;
  *) echo "$FAKE_SSH_MODE" ;;
esac
"""


@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"
    ssh.write_text(FAKE_SSH)
    ssh.chmod(ssh.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "ssh.log"
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))

    def mode(m: str) -> Path:
        monkeypatch.setenv("FAKE_SSH_MODE", m)
        return log

    return mode


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "pairs"
    d.mkdir()
    (d / "train.jsonl").write_text('{"prompt": "hi"}\n')
    return d


def dist(*names):
    return DistributedBlock.from_mapping({"hosts": list(names)}, "distributed")


def test_a_ready_host_passes_and_local_hosts_need_no_ssh(fake_ssh, data):
    log = fake_ssh("same")
    hosts.check_hosts(dist("127.0.0.1", "mac2"), data, "dpo")
    assert log.read_text().split() == ["mac2"]  # only the other machine went through ssh


def test_an_unreachable_host_is_named(fake_ssh, data):
    fake_ssh("down")
    with pytest.raises(
        PersonaError, match=r"host mac2 is not reachable over ssh \(ssh: connect .*refused\); `ssh mac2 true`"
    ):
        hosts.check_hosts(dist("127.0.0.1", "mac2"), data, "dpo")


def test_a_host_without_the_package_is_named(fake_ssh, data):
    fake_ssh("nopkg")
    with pytest.raises(PersonaError, match=r"host mac2: .* cannot run mlx-persona \(ModuleNotFoundError"):
        hosts.check_hosts(dist("127.0.0.1", "mac2"), data, "sft")


def test_other_code_or_other_data_is_named(fake_ssh, data):
    mine = hosts.probe(str(data))
    fake_ssh(json.dumps({**mine, "code": "0123456789abcdef"}))
    with pytest.raises(PersonaError, match=r"sft: host mac2 runs mlx-persona .*code 0123456789abcdef.*same version"):
        hosts.check_hosts(dist("127.0.0.1", "mac2"), data, "sft")
    fake_ssh(json.dumps({**mine, "data": "ffffffffffffffff"}))
    with pytest.raises(PersonaError, match=rf"host mac2 has other data at {data} .*copy the run folder"):
        hosts.check_hosts(dist("127.0.0.1", "mac2"), data, "sft")


def test_the_probe_follows_the_data_and_the_hostfile_names_the_hosts(tmp_path, data):
    before = hosts.probe(str(data))
    (data / "train.jsonl").write_text('{"prompt": "hello"}\n')
    after = hosts.probe(str(data))
    assert after["data"] != before["data"] and after["code"] == before["code"]
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps([{"ssh": "mac1", "ips": ["10.0.0.1"]}, {"ssh": "mac2", "ips": ["10.0.0.2"]}]))
    assert hosts.hosts_of(DistributedBlock.from_mapping({"hostfile": str(hostfile)}, "distributed")) == ["mac1", "mac2"]
