"""Typed settings blocks, one protocol for all of them, with errors that point at the line.

Every stage keeps its knobs in a dataclass that subclasses :class:`Settings` (``CleanConfig``,
``SFTConfig``, ``PairsConfig``, the recipe's own blocks, ...). The protocol is the same for each:

- ``Cls.from_mapping(data, where)`` builds the block from a plain mapping (a recipe block, a
  JSON/YAML file, ``--set`` overrides, command-line options) and checks it: an unknown key names
  the closest valid one, a wrong type names the expected type, and when the mapping came from a
  YAML file (``where`` is a :class:`Where` with its lines) the message starts with ``file:line``;
- ``block.validate(where)`` checks the values together (``where`` labels the messages; it
  returns nothing and raises :class:`PersonaError`);
- ``Cls.click_options(skip=...)`` is a decorator that adds one ``--flag`` per field.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mlx_persona.core.errors import PersonaError

Lines = dict  # key path (tuple of str) -> 1-based line number in the YAML file


def load_yaml_with_lines(path: Path) -> tuple[Any, Lines]:
    """Parse a YAML file; also return the line of every mapping key, by key path."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PersonaError(f"{path}: cannot read ({type(e).__name__})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise PersonaError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or type(e).__name__})") from None
    lines: Lines = {}

    def walk(n, prefix: tuple) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = prefix + (str(k.value),)
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                lines[prefix + (str(i),)] = v.start_mark.line + 1
                walk(v, prefix + (str(i),))

    if node is not None:
        walk(node, ())
    return data, lines


def where(source: Path | None, lines: Lines | None, path: tuple) -> str:
    """``file:line: a.b.c`` when the line is known, ``file: a.b.c`` without it, else ``a.b.c``."""
    dotted = ".".join(path)
    if source is None:
        return dotted
    for cut in range(len(path), 0, -1):
        if lines and path[:cut] in lines:
            return f"{source}:{lines[path[:cut]]}: {dotted}"
    return f"{source}: {dotted}"


@dataclass(frozen=True)
class Where:
    """Where a block of settings came from: its key path, and for a file, the file and the line
    of every key (:func:`load_yaml_with_lines`). ``str()`` is the label of its messages."""

    path: tuple = ()
    source: Path | None = None
    lines: Lines | None = None

    def key(self, name) -> Where:
        return Where(self.path + (str(name),), self.source, self.lines)

    def __str__(self) -> str:
        return where(self.source, self.lines, self.path)


def unknown(key, valid, label: str, what: str = "setting") -> PersonaError:
    """The one message for a key that is not there: the closest valid one, else all of them."""
    near = difflib.get_close_matches(str(key), [str(v) for v in valid], n=1, cutoff=0.5)
    hint = f" (did you mean '{near[0]}'?)" if near else f" (valid: {', '.join(map(str, valid))})"
    return PersonaError(f"{label}: unknown {what} '{key}'{hint}")


def _type_name(f: dataclasses.Field) -> str:
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return t.replace("typing.", "")


def split_optional(kind: str) -> tuple[bool, str]:
    """``("Optional[int]" | "int | None" | "None | int")`` -> ``(True, "int")``; else ``(False, kind)``."""
    if kind.startswith("Optional[") and kind.endswith("]"):
        return True, kind[len("Optional[") : -1]
    parts = [p.strip() for p in kind.split("|")]
    if len(parts) > 1 and "None" in parts:
        return True, " | ".join(p for p in parts if p != "None")
    return False, kind


def coerce(label: str, kind: str, value: Any) -> Any:
    """Turn a YAML/CLI value into ``kind`` (a type name as written in the dataclass)."""
    optional, base = split_optional(kind)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise PersonaError(f"{label}: a value is required (expected {base})")
    if base == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise PersonaError(f"{label}: expected true or false, got {value!r}")
    if base in ("int", "float"):
        if isinstance(value, bool):
            raise PersonaError(f"{label}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise PersonaError(f"{label}: expected a number, got {value!r}") from None
        if base == "int":
            if not number.is_integer():
                raise PersonaError(f"{label}: expected a whole number, got {value!r}")
            return int(number)
        return number
    if base == "str":
        if isinstance(value, (dict, list)):
            raise PersonaError(f"{label}: expected text, got a {type(value).__name__}")
        return str(value)
    if base.startswith(("list", "tuple")):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if base.startswith("tuple"):
            if not isinstance(value, (list, tuple)):
                raise PersonaError(f"{label}: expected a list, got {value!r}")
            return tuple(value)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise PersonaError(f"{label}: expected a list of names, got {value!r}")
        return list(value)
    if base.startswith("dict"):
        if not isinstance(value, dict):
            raise PersonaError(f"{label}: expected a mapping, got {value!r}")
        return dict(value)
    return value  # a type this helper does not check: the dataclass validates it


def build(cls, data: Mapping[str, Any] | None, at: Where):
    """Build dataclass ``cls`` from ``data`` (no checks across fields: see :class:`Settings`);
    one-line error for any unknown key or bad value."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise PersonaError(f"{at}: expected a mapping of settings, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            raise unknown(key, list(fields), str(at.key(key)))
        kwargs[name] = coerce(str(at.key(key)), _type_name(fields[name]), value)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise PersonaError(f"{at}: {e}") from None


class Settings:
    """What every settings block offers; subclasses are dataclasses whose fields carry
    ``metadata={"help": ...}`` (their command-line help) and, for a closed set of values,
    ``"choices"``."""

    block: ClassVar[str] = ""  # the recipe key of the block, and the label of its messages

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: Where | str | None = None):
        """The block from a plain mapping, checked (:meth:`validate`); ``where`` labels errors:
        a :class:`Where` (with file and lines), a label such as ``"sft"``, or the block's name."""
        at = where if isinstance(where, Where) else Where((where or cls.block,))
        obj = build(cls, data, at)
        obj.validate(str(at))
        return obj

    def validate(self, where: str | None = None) -> None:
        """Check the values together; raise :class:`PersonaError` labelled with ``where``."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def help(cls, name: str) -> str:
        return next(f.metadata["help"] for f in dataclasses.fields(cls) if f.name == name)

    @classmethod
    def click_options(cls, skip: tuple = ()):
        """A decorator adding one ``--flag`` per field (help from the field's metadata; booleans
        get ``--x/--no-x``, fields with ``choices`` a choice). Values are passed on as given and
        default to None, "not given", so a command can layer them over a file and the defaults;
        :meth:`from_mapping` types and checks them."""
        import click

        def decorate(fn):
            for f in reversed(dataclasses.fields(cls)):
                if f.name in skip:
                    continue
                flag, kind, help = "--" + f.name.replace("_", "-"), _type_name(f), f.metadata.get("help")
                if kind == "bool":
                    fn = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None, help=help)(fn)
                elif "choices" in f.metadata:
                    fn = click.option(
                        flag, f.name, type=click.Choice(list(f.metadata["choices"])), default=None, help=help
                    )(fn)
                else:
                    fn = click.option(flag, f.name, default=None, metavar=_metavar(kind), help=help)(fn)
            return fn

        return decorate


def _metavar(kind: str) -> str:
    base = split_optional(kind)[1]
    return {"int": "INTEGER", "float": "FLOAT"}.get(base, "A,B,..." if base.startswith(("list", "tuple")) else "TEXT")


def parse_override(text: str) -> tuple[tuple, Any]:
    """``sft.rank=32`` -> (("sft", "rank"), 32); the value is read as YAML (numbers, booleans, lists)."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise PersonaError(f"--set {text!r}: expected KEY=VALUE, e.g. sft.rank=32")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return tuple(k.strip() for k in key.strip().split(".")), value


def apply_override(data: dict, keys: tuple, value: Any) -> None:
    node = data
    for k in keys[:-1]:
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise PersonaError(f"--set {'.'.join(keys)}: '{k}' is not a block of settings")
        node = nxt
    node[keys[-1]] = value
