"""Cleaning rules one by one: each on a small conversation, each proving what it keeps and drops."""

from types import SimpleNamespace

import pytest

from mlx_persona.core.errors import PersonaError
from mlx_persona.data.clean import CleanConfig
from mlx_persona.data.ingest.base import Conversation, Turn
from mlx_persona.data.rules import (
    DEFAULT_META_PATTERNS,
    assign_roles,
    clean_turns,
    join_other_speakers,
    meta_matcher,
    normalize_text,
    scrub_pii,
    split_and_merge,
    system_prompt,
)
from mlx_persona.data.samples import build_samples, deduplicate, estimate_tokens, split_by_conversation


def conv(*turns, source="c.txt", line=1, named=True, system=None):
    """turns: (speaker, text) or (speaker, text, minutes)."""
    ts = [Turn(t[0], t[1], line + i, t[2] * 60.0 if len(t) > 2 else None) for i, t in enumerate(turns)]
    return Conversation(source, line, ts, system, named)


def test_normalize_keeps_the_voice_but_not_the_junk():
    raw = "cafe\u0301\u200b is  down\u00a0again \r\n\r\n\r\n\r\nteh fix:\n    retry()  \n👩\u200d💻"
    assert normalize_text(raw) == "café is down again\n\nteh fix:\n    retry()\n👩\u200d💻"
    assert normalize_text("  lol ok  ") == "lol ok"


def test_pii_scrub_replaces_emails_phones_urls_not_versions():
    text = "mail sam@example.com or call +44 20 7946 0958, docs https://x.io/a?b=1, v1.2.3 at 10:30"
    assert scrub_pii(text) == "mail <EMAIL> or call <PHONE>, docs <URL> v1.2.3 at 10:30"


def test_meta_replies_and_empty_turns_are_rejected_with_their_line():
    c = conv(
        ("Leo", "[Request interrupted by user]"),
        ("Sam", "<Media omitted>"),
        ("Sam", "\u200b "),
        ("Sam", "This message was deleted"),
        ("Sam", "the meta rule <Media omitted> only fires on whole messages"),
    )
    rejects = []
    clean_turns(c, meta_matcher(DEFAULT_META_PATTERNS), True, rejects)
    assert [(r.line, r.rule) for r in rejects] == [(1, "meta"), (2, "meta"), (3, "empty"), (4, "meta")]
    assert [t.line for t in c.turns] == [5]


def test_roles_by_persona_name_aliases_and_unknown_persona():
    c = conv(("Leo", "hi"), ("SAM", "yo"), ("Sam Okafor", "ok"))
    assign_roles([c], ["sam okafor", "Sam"], "c.txt")
    assert [t.role for t in c.turns] == ["user", "assistant", "assistant"]
    with pytest.raises(PersonaError, match="not a speaker in c.txt; speakers there: Leo, SAM"):
        assign_roles([conv(("Leo", "hi"), ("SAM", "yo"))], ["Samantha"], "c.txt")
    roles = conv(("user", "q"), ("assistant", "a"), named=False)
    roles.turns[0].role, roles.turns[1].role = "user", "assistant"
    assign_roles([roles], ["Sam"], "log.jsonl")  # role-based: the assistant role is the persona
    assert [t.role for t in roles.turns] == ["user", "assistant"]


def test_merge_bursts_and_split_at_silences():
    c = conv(
        ("Leo", "build red?", 0),
        ("Sam", "yes.", 1),
        ("Sam", "flaky test", 2),
        ("Sam", "fixing", 30),
        ("Leo", "next day", 60 * 24),
    )
    pieces, merged = split_and_merge(c, merge_gap_s=5 * 60, split_gap_s=6 * 3600)
    assert merged == 1
    assert [[t.text for t in p.turns] for p in pieces] == [["build red?", "yes.\nflaky test", "fixing"], ["next day"]]
    assert [p.line for p in pieces] == [1, 5]
    untimed, merged = split_and_merge(conv(("A", "x"), ("A", "y"), ("B", "z")), 300, 3600)
    assert merged == 1 and [t.text for t in untimed[0].turns] == ["x\ny", "z"]


def test_group_chat_user_turns_joined_with_names():
    c = conv(("Leo", "deploy?"), ("Priya", "+1"), ("Sam", "after lunch"))
    assign_roles([c], ["Sam"], "g.txt")
    join_other_speakers(c)
    assert [(t.role, t.text) for t in c.turns] == [("user", "Leo: deploy?\nPriya: +1"), ("assistant", "after lunch")]


@pytest.mark.parametrize(
    "mode,original,expected",
    [
        ("replace-long", "x" * 201, "P"),
        ("replace-long", "be brief", "be brief"),
        ("replace-long", None, "P"),
        ("keep", "x" * 300, "x" * 300),
        ("drop", "be brief", None),
        ("drop", None, None),
        ("replace", "be brief", "P"),
        ("truncate", "abcdef", "abc"),
    ],
)
def test_system_prompt_modes(mode, original, expected):
    assert system_prompt(original, "P", mode, 200 if mode != "truncate" else 3, add_missing=True) == expected


def roled(*turns):
    c = conv(*turns)
    assign_roles([c], ["Sam"], "c.txt")
    return c


def test_one_sample_per_persona_turn_with_bounded_context():
    cfg = CleanConfig(context_turns=3, min_reply_chars=5)
    c = roled(
        ("Leo", "q1"), ("Sam", "answer one"), ("Leo", "q2"), ("Sam", "ok"), ("Leo", "q3"), ("Sam", "answer three")
    )
    rejects = []
    out = build_samples(c, "SYS", cfg, estimate_tokens, rejects)
    assert [[m["content"] for m in s.messages] for s in out] == [
        ["SYS", "q1", "answer one"],
        ["SYS", "q2", "ok", "q3", "answer three"],  # 3 turns of context, trimmed to start with a user turn
    ]
    assert [(r.line, r.rule) for r in rejects] == [(4, "min-length")]


def test_token_budget_trims_oldest_context_then_rejects():
    words = lambda n: "w" * (4 * n)  # noqa: E731  # n+1 estimated tokens
    c = roled(("Leo", words(50)), ("Sam", words(50)), ("Leo", words(10)), ("Sam", words(10)))
    rejects = []
    out = build_samples(c, None, CleanConfig(max_tokens=40), estimate_tokens, rejects)
    assert [len(s.messages) for s in out] == [2]  # last reply keeps only its own prompt
    assert [(r.line, r.rule) for r in rejects] == [(2, "too-long")]
    alone = roled(("Sam", "i start this chat"), ("Leo", "ok?"), ("Sam", "yes, that is fine"))
    out = build_samples(alone, None, CleanConfig(), estimate_tokens, rejects)
    assert len(out) == 1 and rejects[-1].rule == "no-context"


def sample_set():
    cfg = CleanConfig()
    a = roled(("Leo", "status?"), ("Sam", "deploying now."))
    b = roled(("Leo", "Status?!"), ("Sam", "Deploying now"))  # near duplicate of a
    b.line = 10
    c = roled(("Leo", "status?"), ("Sam", "deploying now."), ("Leo", "and?"), ("Sam", "done, all green"))
    c.line = 20  # a longer log of conversation a: its first sample repeats a's exactly
    samples = []
    for x in (a, b, c):
        samples += build_samples(x, None, cfg, estimate_tokens, [])
    return samples


@pytest.mark.parametrize(
    "mode,kept,rules",
    [
        ("near", 2, ["near-duplicate", "duplicate"]),
        ("exact", 3, ["duplicate"]),
        ("off", 4, []),
    ],
)
def test_dedup_modes(mode, kept, rules):
    rejects = []
    out, groups = deduplicate(sample_set(), mode, rejects)
    assert len(out) == kept and [r.rule for r in rejects] == rules
    if mode != "off":  # the prefix log is tied to its conversation, so they share a split
        assert groups.find("c.txt:20") == groups.find("c.txt:1")


def test_split_is_by_conversation_deterministic_and_fills_every_split():
    samples = []
    for k in range(40):
        c = roled(
            *[
                ("Leo", f"question {k}-{j}") if j % 2 == 0 else ("Sam", f"answer number {k}-{j}")
                for j in range(2 + 2 * (k % 3))
            ]
        )
        c.line = 100 * k + 1
        samples += build_samples(c, None, CleanConfig(), estimate_tokens, [])
    kept, groups = deduplicate(samples, "near", [])
    a = split_by_conversation(kept, groups, (0.8, 0.1, 0.1), seed=0)
    b = split_by_conversation(list(reversed(kept)), groups, (0.8, 0.1, 0.1), seed=0)
    key = lambda d: {n: sorted(s.line_json for s in v) for n, v in d.items()}  # noqa: E731
    assert key(a) == key(b)  # input order does not matter
    assert key(a) != key(split_by_conversation(kept, groups, (0.8, 0.1, 0.1), seed=1))
    convs = {n: {s.group for s in v} for n, v in a.items()}
    assert not (convs["train"] & convs["valid"]) and not (convs["train"] & convs["test"])
    assert not (convs["valid"] & convs["test"])
    sizes = {n: len(v) for n, v in a.items()}
    assert sizes["valid"] >= 1 and sizes["test"] >= 1 and 0.7 < sizes["train"] / len(kept) < 0.9
    three = list({s.group: s for s in reversed(kept[:8])}.values())[:3]  # three conversations
    tiny = split_by_conversation(three, groups, (0.8, 0.1, 0.1), seed=0)
    assert all(len(v) == 1 for v in tiny.values())


def test_config_validation_is_a_user_error():
    with pytest.raises(PersonaError, match="splits"):
        CleanConfig(splits=(0.5, 0.1, 0.1)).validate()
    with pytest.raises(PersonaError, match="system must be"):
        CleanConfig(system="sometimes").validate()
    with pytest.raises(PersonaError, match="bad meta pattern"):
        CleanConfig(meta_patterns=("[unclosed",)).validate()
    assert SimpleNamespace(**{"h": CleanConfig.help("min_reply_chars")}).h.startswith("Persona replies")
