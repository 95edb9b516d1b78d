"""``mlx-persona init`` in a real terminal (a pty via pexpect): it asks, and the answer is written."""

from __future__ import annotations

import sys

import pexpect
from init_helpers import REPO, SAMPLE

from mlx_persona.core.blas import fast_blas_env
from mlx_persona.runner.recipe import load_recipe


def _spawn(args, cwd):
    env = fast_blas_env()
    env["PYTHONPATH"] = str(REPO)  # this checkout's package, whatever the working directory
    return pexpect.spawn(
        sys.executable,
        ["-m", "mlx_persona.cli", "init", *map(str, args)],
        cwd=str(cwd),
        env=env,
        encoding="utf-8",
        timeout=120,
        dimensions=(50, 200),
    )


def test_prompt_lists_candidates_and_takes_a_number(tmp_path):
    child = _spawn([SAMPLE / "whatsapp_android.txt", "--out", "me.yaml"], tmp_path)
    child.expect("Who is the persona")
    child.expect(r"1\. Sam Okafor: 141 messages in 1 file")
    child.expect(r"2\. Priya: 133 messages in 1 file")
    child.expect("number or name")  # too close to call: no default
    child.sendline("")  # Enter alone does not choose
    child.expect("number or name")
    child.sendline("2")
    child.expect("samples written")  # the funnel, before the recipe is written
    child.expect("wrote me.yaml")
    child.expect("next: mlx-persona run me.yaml")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert load_recipe(tmp_path / "me.yaml").persona.name == "Priya"


def test_prompt_defaults_to_the_proposal(tmp_path):
    child = _spawn([SAMPLE / "whatsapp_ios_group.txt", "--out", "g.yaml"], tmp_path)
    child.expect(r"1\. Sam Okafor: 34 messages in 1 file")  # the most active in the group, first
    child.expect(r"number or name \[1\]")
    child.sendline("")
    child.expect("wrote g.yaml")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert load_recipe(tmp_path / "g.yaml").persona.name == "Sam Okafor"


def test_prompt_takes_a_name_and_asks_per_file(tmp_path):
    child = _spawn([SAMPLE / "whatsapp_ios_group.txt", SAMPLE / "nina_telegram.json", "--out", "g.yaml"], tmp_path)
    child.expect("number or name: ")  # Clara 39 against Sam 34, in different chats: no default
    child.sendline("sam okafor")
    child.expect("nina_telegram.json: which speaker is Sam Okafor")
    child.expect(r"1\. Clara \(39 messages\)")
    child.expect("leave this file out")
    child.sendline("")
    child.expect("wrote g.yaml")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    recipe = load_recipe(tmp_path / "g.yaml")
    assert recipe.persona.name == "Sam Okafor"
    assert [s.path.rsplit("/", 1)[-1] for s in recipe.data] == ["whatsapp_ios_group.txt"]
