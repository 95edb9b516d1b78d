"""An Ollama Modelfile whose TEMPLATE prompts the twin exactly as its own chat template does.

Ollama does not run Jinja: a Modelfile's TEMPLATE is a Go ``text/template`` over ``.Messages``.
Rather than translate Jinja (a language), we *measure* the model's chat template: render it
for conversations whose texts are unique markers and cut the result at the markers. Chat
formats are a prefix and a suffix around each role's text, so the cuts give

    head            before the system text (the system prefix)
    system suffix, user prefix/suffix, assistant prefix/suffix
    generation      what ``add_generation_prompt`` appends (the assistant's opening)
    default system  what the template writes when the conversation has no system message

and those pieces become a Go template (:func:`go_template`). Before the Modelfile is written the
pieces are put back together for other conversations (one, two and three turns, with and without
a system message) and compared with the Jinja rendering: a template that is not "prefix + text +
suffix" per role (one that reorders or rewrites messages) is refused with a one-line error rather
than exported wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlx_persona.core.errors import PersonaError
from mlx_persona.models.generate import END_OF_TEXT

SYS, U1, A1, U2, A2, U3 = "SYSMARK7", "USERMARK1", "ASSTMARK1", "USERMARK2", "ASSTMARK2", "USERMARK3"


@dataclass
class ChatFormat:
    """A chat template as text around each message; ``render`` is the reference (Python) reading."""

    system_prefix: str
    system_suffix: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str
    generation: str
    default_system: str = ""  # written when there is no system message

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        has_system = any(m["role"] == "system" for m in messages)
        out = "" if has_system else self.default_system
        for m in messages:
            pre, suf = {
                "system": (self.system_prefix, self.system_suffix),
                "user": (self.user_prefix, self.user_suffix),
                "assistant": (self.assistant_prefix, self.assistant_suffix),
            }[m["role"]]
            out += pre + m["content"] + suf
        return out + (self.generation if add_generation_prompt else "")


def _cut(text: str, markers: list[str]) -> list[str]:
    """``text`` split at each marker in order: len(markers) + 1 pieces; error if one is missing."""
    pieces = []
    for m in markers:
        if text.count(m) != 1:
            raise ValueError(m)
        before, text = text.split(m)
        pieces.append(before)
    return pieces + [text]


def _strip(text: str, prefix: str = "", suffix: str = "") -> str:
    if not text.startswith(prefix) or not text.endswith(suffix) or len(text) < len(prefix) + len(suffix):
        raise ValueError("not a prefix/suffix format")
    return text[len(prefix) : len(text) - len(suffix)]


def measure(render, bos: str | None = None) -> ChatFormat:
    """The :class:`ChatFormat` of ``render(messages, add_generation_prompt) -> str`` (a model's chat
    template). ``bos``: a BOS text the tokenizer adds by itself, dropped from the template's head
    (llama.cpp and Ollama add BOS when they tokenize). Raises PersonaError when the template is
    not prefix + text + suffix per role."""

    def msg(role, text):
        return {"role": role, "content": text}

    s, u1, a1, u2 = msg("system", SYS), msg("user", U1), msg("assistant", A1), msg("user", U2)
    try:
        head, x1, x2, x3, _tail = _cut(render([s, u1, a1, u2], True), [SYS, U1, A1, U2])
        one = render([s, u1], False)
        user_suffix = _cut(one, [U1])[1]
        generation = _strip(render([s, u1], True), one)
        assistant_suffix = _cut(render([s, u1, a1], False), [A1])[1]
        assistant_prefix = _strip(x2, user_suffix)
        user_prefix = _strip(x3, assistant_suffix)
        system_suffix = _strip(x1, "", user_prefix)
        no_system = _cut(render([u1], False), [U1])[0]
        default_system = _strip(no_system, "", user_prefix)
    except ValueError:
        raise PersonaError(
            "the chat template is not one prefix and suffix per role; Ollama's TEMPLATE cannot copy it (export gguf instead)"
        ) from None
    if bos and head.startswith(bos):
        head, default_system = head[len(bos) :], default_system.removeprefix(bos)
    fmt = ChatFormat(
        head, system_suffix, user_prefix, user_suffix, assistant_prefix, assistant_suffix, generation, default_system
    )
    _check(fmt, render, bos)
    return fmt


def _check(fmt: ChatFormat, render, bos: str | None) -> None:
    """The pieces, put back together, must give the template's own text for other conversations."""
    turns = [("user", U1), ("assistant", A1), ("user", U2), ("assistant", A2), ("user", U3)]
    convs = []
    for n in (1, 3, 5):
        msgs = [{"role": r, "content": t} for r, t in turns[:n]]
        convs += [msgs, [{"role": "system", "content": SYS}] + msgs]
    for msgs in convs:
        expect = render(msgs, True)
        if bos and expect.startswith(bos):
            expect = expect[len(bos) :]
        if fmt.render(msgs) != expect:
            raise PersonaError(
                "the chat template changes with the conversation in a way Ollama's TEMPLATE cannot copy (export gguf instead)"
            )


def _literal(text: str) -> str:
    """Text for a Go template: ``{{`` would start an action, so it is written as a string action."""
    return text.replace("{{", '{{ "{{" }}')


def go_template(fmt: ChatFormat) -> str:
    """The Go ``text/template`` Ollama renders. The system prompt comes from ``.System`` (Ollama
    joins every system message into it; older versions also drop them from ``.Messages``, newer
    ones keep them, so the range skips them either way), then each user and assistant message,
    then the generation prompt. No ``{{-`` trimming anywhere: the prefixes and suffixes keep
    their newlines exactly."""
    system = "{{ if .System }}" + _literal(fmt.system_prefix) + "{{ .System }}" + _literal(fmt.system_suffix)
    system += ("{{ else }}" + _literal(fmt.default_system) if fmt.default_system else "") + "{{ end }}"
    turns = (
        '{{ range .Messages }}{{ if eq .Role "user" }}'
        + _literal(fmt.user_prefix)
        + "{{ .Content }}"
        + _literal(fmt.user_suffix)
        + '{{ else if eq .Role "assistant" }}'
        + _literal(fmt.assistant_prefix)
        + "{{ .Content }}"
        + _literal(fmt.assistant_suffix)
        + "{{ end }}{{ end }}"
    )
    return system + turns + _literal(fmt.generation)


def stop_words(fmt: ChatFormat, eos: str | None, specials: list[str]) -> list[str]:
    """``PARAMETER stop`` values: the EOS token, every special token that ends an assistant
    turn or opens the next message, and every end-of-text special the vocabulary has (as our own
    generation stops at them: :data:`mlx_persona.models.generate.END_OF_TEXT`)."""
    found = [eos] if eos else []
    for text in (fmt.assistant_suffix, fmt.user_prefix):
        found += [t for t in specials if t and t in text]
    found += [t for t in END_OF_TEXT if t in specials]
    return list(dict.fromkeys(found))


def _quoted(text: str) -> str:
    if '"""' in text:
        raise PersonaError('a Modelfile cannot hold text with """ in it (the chat template or the persona line)')
    return f'"""{text}"""'


def modelfile(
    gguf_name: str,
    template: str,
    system: str | None,
    stops: list[str],
    temperature: float,
    num_ctx: int,
) -> str:
    """The Modelfile text: ``FROM`` the GGUF beside it, TEMPLATE, SYSTEM, stops, sampling."""
    lines = [
        "# Ollama Modelfile written by mlx-persona export: ollama create twin -f Modelfile",
        f"FROM ./{gguf_name}",
        f"TEMPLATE {_quoted(template)}",
    ]
    if system:
        lines.append(f"SYSTEM {_quoted(system)}")
    lines += [f"PARAMETER stop {_go_string(s)}" for s in stops]
    lines += [f"PARAMETER temperature {temperature:g}", f"PARAMETER num_ctx {num_ctx}"]
    return "\n".join(lines) + "\n"


def _go_string(s: str) -> str:
    import json

    return json.dumps(s, ensure_ascii=False)
