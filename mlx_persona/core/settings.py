"""Typed settings blocks from YAML, with errors that point at the line.

Every stage keeps its knobs in a dataclass (``CleanConfig``, ``SFTConfig``, ...). This module
turns a plain mapping (a recipe block, a JSON file, ``--set`` overrides) into such a dataclass:
an unknown key names the closest valid one, a wrong type names the expected type, and when the
mapping came from a YAML file the message starts with ``file:line``.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Mapping, Optional

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


def where(source: Optional[Path], lines: Optional[Lines], path: tuple) -> str:
    """``file:line: a.b.c`` when the line is known, else ``a.b.c``."""
    dotted = ".".join(path)
    if source is not None and lines:
        for cut in range(len(path), 0, -1):
            if path[:cut] in lines:
                return f"{source}:{lines[path[:cut]]}: {dotted}"
        return f"{source}: {dotted}"
    return dotted


def _type_name(f: dataclasses.Field) -> str:
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return t.replace("typing.", "")


def coerce(label: str, kind: str, value: Any) -> Any:
    """Turn a YAML/CLI value into ``kind`` (a type name as written in the dataclass)."""
    optional = kind.startswith("Optional[")
    base = kind[len("Optional["):-1] if optional else kind
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


def from_mapping(cls, data: Optional[Mapping[str, Any]], path: tuple = (), source: Optional[Path] = None,
                 lines: Optional[Lines] = None):
    """Build dataclass ``cls`` from ``data``; one-line error for any unknown key or bad value."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise PersonaError(f"{where(source, lines, path)}: expected a mapping of settings, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            near = difflib.get_close_matches(name, list(fields), n=1, cutoff=0.5)
            hint = f" (did you mean '{near[0]}'?)" if near else f" (valid: {', '.join(fields)})"
            raise PersonaError(f"{where(source, lines, path + (str(key),))}: unknown key '{key}'{hint}")
        kwargs[name] = coerce(where(source, lines, path + (str(key),)), _type_name(fields[name]), value)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise PersonaError(f"{where(source, lines, path)}: {e}") from None


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


def click_options(cls, skip: tuple = ()):
    """A decorator adding one ``--flag`` per field of settings dataclass ``cls`` (help from the
    field's metadata; booleans get ``--x/--no-x``). Every value defaults to None, meaning "not
    given", so the command can layer it over a file and the defaults."""
    import click

    def decorate(fn):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip:
                continue
            flag = "--" + f.name.replace("_", "-")
            if _type_name(f) == "bool":
                fn = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None, help=f.metadata.get("help"))(fn)
            else:
                fn = click.option(flag, f.name, default=None, metavar="VALUE", help=f.metadata.get("help"))(fn)
        return fn

    return decorate
