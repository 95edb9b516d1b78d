"""Each reader on small inline exports: turns, speakers, times, line numbers, rejects."""

import json
from pathlib import Path

import pytest

from mlx_persona.core.errors import PersonaError
from mlx_persona.data.ingest import (
    FORMATS,
    Source,
    alpaca,
    chatml,
    completion,
    csv_script,
    detect,
    read_source,
    sharegpt,
    telegram,
    whatsapp,
)

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


def rules(result):
    return sorted((r.line, r.rule) for r in result.rejects)


def test_whatsapp_android_multiline_media_system_and_edits():
    raw = (
        b"12/03/2024, 21:15 - Messages and calls are end-to-end encrypted. Tap to learn more.\n"
        b"12/03/2024, 21:15 - Priya: is the build green?\n"
        b"13/03/2024, 09:02 - Sam: no. two flaky tests\n"
        b"and one real failure\n"
        b"13/03/2024, 09:03 - Sam: <Media omitted>\n"
        b"13/03/2024, 09:04 - Sam: fixed it <This message was edited>\n"
        b'13/03/2024, 09:05 - Priya changed the subject from "a" to "b: c"\n'
    )
    res = whatsapp.read(raw, "chat.txt")
    conv = res.conversations[0]
    assert [(t.speaker, t.text, t.line) for t in conv.turns] == [
        ("Priya", "is the build green?", 2),
        ("Sam", "no. two flaky tests\nand one real failure", 3),
        ("Sam", "<Media omitted>", 5),  # left for the meta rule to report
        ("Sam", "fixed it", 6),
    ]
    assert conv.turns[1].time - conv.turns[0].time == 11 * 3600 + 47 * 60  # day-first: 12 -> 13 March
    assert rules(res) == [(1, "system-line"), (7, "system-line")]
    assert res.messages == 6


def test_whatsapp_ios_12h_month_first_and_lrm_system_lines():
    raw = (
        "[3/14/24, 9:15:07 PM] Team: \u200eMessages and calls are end-to-end encrypted.\n"
        "[3/14/24, 9:15:07 PM] Team: \u200eLeo added Priya\n"
        "[3/14/24, 11:59:00 PM] Leo: night deploy?\n"
        "[3/15/24, 12:01:30 AM] Sam: \u200eimage omitted\n"
        "[3/15/24, 12:02:00 AM] Sam: no. tomorrow 10am\n"
    ).encode()
    res = whatsapp.read(raw, "ios.txt")
    turns = res.conversations[0].turns
    assert [t.speaker for t in turns] == ["Leo", "Sam", "Sam"]
    assert turns[1].text == "image omitted"
    assert turns[2].time - turns[0].time == 180  # 11:59 PM -> 12:02 AM next day
    assert rules(res) == [(1, "system-line"), (2, "system-line")]


def test_whatsapp_date_order_ambiguous_uses_forward_time_and_can_be_forced():
    raw = (
        b"05/01/2024, 10:00 - A: one\n05/02/2024, 10:00 - B: two\n05/03/2024, 10:00 - A: three\n"
        b"04/03/2024, 10:00 - B: four\n"
    )
    auto = whatsapp.read(raw, "c.txt").conversations[0].turns
    # dmy: 5 Jan, 5 Feb, 5 Mar, 4 Mar (one step back); mdy: May 1, 2, 3, Apr 3 (one back) -> tie: dmy
    assert auto[1].time - auto[0].time == 31 * 86400
    forced = whatsapp.read(raw, "c.txt", type("O", (), {"date_order": "mdy"})()).conversations[0].turns
    assert forced[1].time - forced[0].time == 86400
    fwd = b"01/05/2024, 10:00 - A: one\n02/05/2024, 10:00 - B: two\n03/05/2024, 10:00 - A: x\n01/06/2024, 10:00 - B: y\n"  # mdy would jump Jan -> Feb -> Mar -> Jan: backwards
    t = whatsapp.read(fwd, "c.txt").conversations[0].turns
    assert t[1].time - t[0].time == 86400  # day-first wins: time only moves forward


def test_telegram_text_parts_service_and_media(tmp_path):
    doc = {
        "name": "Leo",
        "messages": [
            {"id": 1, "type": "service", "date": "2024-05-06T10:00:00", "action": "create_group"},
            {
                "id": 2,
                "type": "message",
                "date": "2024-05-06T10:01:00",
                "from": "Leo",
                "text": ["check ", {"type": "link", "text": "the logs"}, " pls"],
            },
            {"id": 3, "type": "message", "date": "2024-05-06T10:02:00", "from": "Sam", "text": "done. disk full"},
            {"id": 4, "type": "message", "date": "2024-05-06T10:03:00", "from": "Leo", "photo": "p.jpg", "text": ""},
        ],
    }
    raw = json.dumps(doc, indent=1).encode()
    res = telegram.read(raw, "result.json")
    turns = res.conversations[0].turns
    assert [(t.speaker, t.text) for t in turns] == [
        ("Leo", "check the logs pls"),
        ("Sam", "done. disk full"),
        ("Leo", "<Media omitted>"),
    ]
    lines = raw.decode().split("\n")
    assert '"id": 3' in lines[turns[1].line - 1]  # the line of the message itself
    assert [r.rule for r in res.rejects] == ["system-line"]
    assert turns[1].time - turns[0].time == 60


def test_csv_columns_bounds_and_missing_column():
    raw = (
        b'Episode,Scene,Character,Line\n1,1,Leo,hi\n1,1,Sam,"hello,\nthere"\n1,2,Leo,next scene\n'
        b"1,2,Sam\n1,2,Sam,ok then\n1,2,Leo,a, b\n1,2,Leo,trailing empty cell,\n"
    )
    opts = type(
        "O", (), {"speaker_column": "character", "text_column": "line", "bound_columns": ("episode", "scene")}
    )()
    res = csv_script.read(raw, "s.csv", opts)
    assert [[(t.speaker, t.text, t.line) for t in c.turns] for c in res.conversations] == [
        [("Leo", "hi", 2), ("Sam", "hello,\nthere", 3)],
        [("Leo", "next scene", 5), ("Sam", "ok then", 7), ("Leo", "trailing empty cell", 9)],
    ]
    assert rules(res) == [(6, "csv-missing-column"), (8, "csv-extra-column")]
    with pytest.raises(PersonaError, match="no column 'speaker'"):
        csv_script.read(raw, "s.csv")


def test_chatml_tool_messages_system_and_parts():
    rec = {
        "messages": [
            {"role": "system", "content": "tools: run()"},
            {"role": "user", "content": [{"type": "text", "text": "run the tests"}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
            {"role": "tool", "content": "3 failed"},
            {"role": "assistant", "content": "3 fail. all in money.py", "name": "Sam"},
        ]
    }
    res = chatml.read((json.dumps(rec) + "\n{broken\n").encode(), "log.jsonl")
    conv = res.conversations[0]
    assert conv.system == "tools: run()" and not conv.named
    assert [(t.speaker, t.role, t.text) for t in conv.turns] == [
        ("user", "user", "run the tests"),
        ("Sam", "assistant", "3 fail. all in money.py"),
    ]
    assert rules(res) == [(1, "tool-message"), (1, "tool-message"), (2, "malformed-json")]


def test_sharegpt_alpaca_completion_records():
    sg = sharegpt.read(
        b'{"system": "be brief", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}\n',
        "s.jsonl",
    ).conversations[0]
    assert sg.system == "be brief" and [(t.role, t.text) for t in sg.turns] == [("user", "q"), ("assistant", "a")]
    al = alpaca.read(
        json.dumps(
            [{"instruction": "fix it", "input": "code", "output": "done", "history": [["before?", "yes"]]}], indent=2
        ).encode(),
        "a.json",
    )
    assert [(t.role, t.text) for t in al.conversations[0].turns] == [
        ("user", "before?"),
        ("assistant", "yes"),
        ("user", "fix it\n\ncode"),
        ("assistant", "done"),
    ]
    assert al.conversations[0].line == 2  # the line where the array item starts
    co = completion.read(b'{"prompt": "p", "completion": "c"}\n{"prompt": 1}\n', "c.jsonl")
    assert [(t.role, t.text) for t in co.conversations[0].turns] == [("user", "p"), ("assistant", "c")]
    assert rules(co) == [(2, "bad-record")]


def test_undecodable_line_is_reported_and_the_rest_kept():
    raw = b'{"prompt": "p", "completion": "c"}\n{"prompt": "\xff\xfe", "completion": "x"}\n{"prompt": "q", "completion": "d"}\n'
    res = completion.read(raw, "c.jsonl")
    assert len(res.conversations) == 2 and rules(res) == [(2, "undecodable")]
    wa = whatsapp.read(
        b"12/03/2024, 21:15 - A: ok fine\n12/03/2024, 21:16 - B: \xc3\x28 broken\n12/03/2024, 21:17 - A: still here\n",
        "w.txt",
    )
    assert [t.text for t in wa.conversations[0].turns] == ["ok fine", "still here"]
    assert rules(wa) == [(2, "undecodable")]


@pytest.mark.parametrize(
    "name,fmt",
    [
        ("whatsapp_android.txt", "whatsapp"),
        ("whatsapp_ios_group.txt", "whatsapp"),
        ("script.csv", "csv"),
        ("agent_logs.jsonl", "chatml"),
        ("telegram_result.json", "telegram"),
        ("sharegpt.jsonl", "sharegpt"),
        ("alpaca.json", "alpaca"),
        ("completion.jsonl", "completion"),
        ("nina_whatsapp_de.txt", "whatsapp"),
        ("nina_telegram.json", "telegram"),
    ],
)
def test_detect_every_sample_file(name, fmt):
    path = SAMPLE / name
    assert detect(path, path.read_bytes()) == fmt
    got, res = read_source(Source(str(path)))
    assert got == fmt and res.conversations


def test_unknown_shape_lists_the_formats(tmp_path):
    p = tmp_path / "notes.jsonl"
    p.write_text('{"title": "x"}\n')
    with pytest.raises(PersonaError) as e:
        read_source(Source(str(p)))
    assert all(f in str(e.value) for f in FORMATS)
    with pytest.raises(PersonaError, match="input not found"):
        read_source(Source(str(tmp_path / "nope.txt")))
