"""A small reader of Go ``text/template``, enough to render Ollama TEMPLATEs in tests.

It follows Go's rules for what it covers: ``{{ }}`` actions with ``{{-``/``-}}`` whitespace
trimming, ``if``/``else if``/``else``/``end``, ``range`` (dot becomes the element), fields
(``.Role``, ``$.System``), string literals, and the functions ``not``, ``eq``, ``ne``, ``and``,
``or``; truth is Go's (empty string, empty list, nil and false are false). Anything else raises,
so a template that relies on more fails the test instead of rendering wrong.
"""

from __future__ import annotations

import re
import shlex

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)


def _tokens(src: str) -> list:
    out, pos = [], 0
    for m in _ACTION.finditer(src):
        text = src[pos : m.start()]
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        if out and out[-1][0] == "trim_next":
            out.pop()
            text = text.lstrip(" \t\r\n")
        out.append(("text", text))
        out.append(("action", m.group(2)))
        if m.group(3):
            out.append(("trim_next", None))
        pos = m.end()
    text = src[pos:]
    if out and out[-1][0] == "trim_next":
        out.pop()
        text = text.lstrip(" \t\r\n")
    out.append(("text", text))
    return out


def _parse(tokens: list, i: int = 0, stop=("end",)):
    """-> (nodes, index, the word that stopped the block)."""
    nodes = []
    while i < len(tokens):
        kind, value = tokens[i]
        i += 1
        if kind == "text":
            nodes.append(("text", value))
            continue
        word = value.split(" ", 1)[0]
        if word in stop or value.startswith("else"):
            return nodes, i, value
        if word in ("if", "range"):
            body, i, ended = _parse(tokens, i)
            branches = [(value[len(word) :].strip(), body)]
            other = []
            while ended.startswith("else"):
                rest = ended[4:].strip()
                block, i, ended = _parse(tokens, i)
                if rest.startswith("if "):
                    branches.append((rest[3:].strip(), block))
                else:
                    other = block
            nodes.append((word, branches, other))
        else:
            nodes.append(("value", value))
    return nodes, i, None


def _eval(expr: str, dot, root):
    args = shlex.split(expr, posix=False)
    if not args:
        raise ValueError("empty pipeline")

    def arg(a):
        if a.startswith('"'):
            return a[1:-1].encode().decode("unicode_escape")
        if a == ".":
            return dot
        if a.startswith("$."):
            return root.get(a[2:])
        if a.startswith("."):
            return dot.get(a[1:]) if isinstance(dot, dict) else None
        raise ValueError(f"not supported in this reader: {a}")

    fn, rest = args[0], args[1:]
    if fn == "not":
        return not _truth(arg(rest[0]))
    if fn == "eq":
        return arg(rest[0]) == arg(rest[1])
    if fn == "ne":
        return arg(rest[0]) != arg(rest[1])
    if fn == "and":
        return all(_truth(arg(a)) for a in rest)
    if fn == "or":
        return any(_truth(arg(a)) for a in rest)
    if rest:
        raise ValueError(f"not supported in this reader: {expr}")
    return arg(fn)


def _truth(v) -> bool:
    return bool(v)


def _run(nodes, dot, root) -> str:
    out = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "value":
            v = _eval(node[1], dot, root)
            out.append("" if v is None else str(v))
        elif node[0] == "if":
            for cond, body in node[1]:
                if _truth(_eval(cond, dot, root)):
                    out.append(_run(body, dot, root))
                    break
            else:
                out.append(_run(node[2], dot, root))
        elif node[0] == "range":
            items = _eval(node[1][0][0], dot, root) or []
            out.extend(_run(node[1][0][1], item, root) for item in items)
            if not items:
                out.append(_run(node[2], dot, root))
    return "".join(out)


def render(template: str, **data) -> str:
    nodes, _, ended = _parse(_tokens(template))
    if ended is not None:
        raise ValueError(f"unexpected {ended}")
    return _run(nodes, data, data)


def ollama_render(template: str, messages: list[dict], system: str = "") -> str:
    """What Ollama renders for a chat: every system message joined into ``.System`` (and kept in
    ``.Messages``, as current Ollama does); consecutive messages of one role merged."""
    systems = [m["content"] for m in messages if m["role"] == "system"]
    merged: list[dict] = []
    for m in messages:
        if merged and merged[-1]["Role"] == m["role"]:
            merged[-1]["Content"] += "\n\n" + m["content"]
        else:
            merged.append({"Role": m["role"], "Content": m["content"]})
    return render(template, System="\n\n".join(systems) or system, Messages=merged)
