"""Checking a config dataclass's values against its field annotations (one ConfigError line per bad field).

Config files and keyword arguments reach dataclasses unchecked: ``batch_size="abc"`` or
``tau=float("nan")`` would otherwise fail steps later with a raw TypeError or a silent NaN.
:func:`check_field_types` reads each field's annotation and refuses a value of another type,
naming the field and what it must be. Rules: ``bool`` is not an ``int``; an ``int`` is a valid
``float``; a ``float`` must be finite; a ``str`` must be valid UTF-8 text; ``X | None`` allows
``None``; ``list[X]`` checks its items; an ``Enum`` takes its members; a dataclass field takes an instance.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from enum import Enum
from typing import Any

from grace_rag.errors import ConfigError
from grace_rag.textio import is_text


def check_field_types(obj: Any) -> None:
    """ConfigError naming the first field of dataclass ``obj`` whose value does not fit its annotation."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        kind = hints.get(f.name, Any)
        if not matches(value, kind):
            raise ConfigError(f"{f.name} must be {describe(kind)}, got {value!r}")


def _options(kind: Any) -> tuple[Any, ...] | None:
    """The members of a union annotation (``X | Y``, ``Optional[X]``), or None for another annotation."""
    if typing.get_origin(kind) is typing.Union or isinstance(kind, types.UnionType):
        return typing.get_args(kind)
    return None


def matches(value: Any, kind: Any) -> bool:
    """Whether ``value`` fits the annotation ``kind``."""
    if (members := _options(kind)) is not None:
        return any(matches(value, member) for member in members)
    if kind is Any:
        return True
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is str:
        return isinstance(value, str) and is_text(value)
    if isinstance(kind, type) and (issubclass(kind, Enum) or dataclasses.is_dataclass(kind)):
        return isinstance(value, kind)
    origin = typing.get_origin(kind)
    if origin in (list, tuple):
        args = typing.get_args(kind) or (Any,)
        return isinstance(value, (list, tuple)) and all(matches(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict)
    return True  # an annotation these rules do not cover is not checked here


def describe(kind: Any) -> str:
    """``kind`` in words: "an integer", "a finite number or None", "one of: a, b"."""
    if (members := _options(kind)) is not None:
        return " or ".join(describe(member) for member in members)
    words = {type(None): "None", bool: "true or false", int: "an integer", float: "a finite number",
             str: "a string"}
    if kind in words:
        return words[kind]
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return f"an {kind.__name__}" if kind.__name__[0] in "AEIOU" else f"a {kind.__name__}"
    if isinstance(kind, type) and issubclass(kind, Enum):
        return "one of: " + ", ".join(str(member.value) for member in kind)
    if typing.get_origin(kind) in (list, tuple):
        return f"a list of {describe((typing.get_args(kind) or (Any,))[0]).removeprefix('a ').removeprefix('an ')}s"
    return str(kind)
