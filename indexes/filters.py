"""Search filters: a small condition tree over chunk columns and metadata, parsed from dicts, run as SQL.

A filter is a :class:`Condition` (``key op value``) or a :class:`Group` of filters joined by AND,
OR or NOT (none of the parts). ``key`` is a chunk column (``id``, ``source``, ``position``,
``text``, ``content_hash``, ``rationale``) or else a key of the chunk's metadata JSON; a column
wins over a metadata key of the same name. A chunk whose metadata lacks the key matches ``ne``
and ``nin`` (it is not equal) and no other operator, as LlamaIndex's in-memory filters behave.

Dict filters follow the Mongo-style convention of LangChain's vector stores::

    {"lang": "en"}                                # equal
    {"year": [2020, 2021]}                        # one of
    {"year": {"$gte": 2020, "$lt": 2024}}         # $eq $ne $gt $gte $lt $lte $in $nin
    {"$or": [{"lang": "en"}, {"lang": "fr"}]}     # $and $or $not
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Union

from grace_rag.errors import ConfigError
from grace_rag.textio import check_text

COLUMNS = ("id", "source", "position", "text", "content_hash", "rationale")


class Op(str, Enum):
    """A comparison between a chunk's value and the filter's value."""

    EQ = "eq"
    NE = "ne"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    IN = "in"
    NIN = "nin"


class Combine(str, Enum):
    """How a group joins its parts."""

    AND = "and"
    OR = "or"
    NOT = "not"  # none of the parts matches


ORDERED = (Op.GT, Op.GTE, Op.LT, Op.LTE)
LISTS = (Op.IN, Op.NIN)
_SQL_OP = {Op.EQ: "=", Op.GT: ">", Op.GTE: ">=", Op.LT: "<", Op.LTE: "<="}
_SCALARS = (str, int, float, bool, type(None))
#: groups nested deeper than this are refused (real filters nest two or three; SQLite's parser
#: overflows near 50 nested NOTs and Python's recursion near 1,000)
MAX_DEPTH = 16


@dataclass(frozen=True)
class Condition:
    """``key op value``: e.g. ``Condition("year", Op.GTE, 2020)``."""

    key: str
    op: Op
    value: Any

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key.strip():
            raise ConfigError(f"a filter key must be a non-empty string, got {self.key!r}")
        check_text(self.key, "a filter key")
        object.__setattr__(self, "op", Op(self.op))
        if self.op in LISTS:
            if isinstance(self.value, (str, bytes)) or not isinstance(self.value, (list, tuple, set, frozenset)):
                raise ConfigError(f"filter {self.key!r} {self.op.value} needs a list of values, got {self.value!r}")
            object.__setattr__(self, "value", tuple(self.value))
        values = self.value if self.op in LISTS else (self.value,)
        for value in values:
            if not isinstance(value, _SCALARS):
                raise ConfigError(f"filter {self.key!r} compares strings, numbers, booleans or null, got {value!r}")
            if self.op in ORDERED and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"filter {self.key!r} {self.op.value} compares numbers, got {value!r}")
            if isinstance(value, str):
                check_text(value, f"the value of filter {self.key!r}")


@dataclass(frozen=True)
class Group:
    """Filters joined by AND, OR or NOT (none of them)."""

    combine: Combine
    parts: tuple["Filter", ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "combine", Combine(self.combine))
        object.__setattr__(self, "parts", tuple(self.parts))
        if depth(self) > MAX_DEPTH:
            raise ConfigError(f"a filter may nest groups ($and, $or, $not) {MAX_DEPTH} levels deep, this one "
                              "nests more; write it flatter")


Filter = Union[Condition, Group]


# -- parsing ------------------------------------------------------------------------------
_DICT_OPS = {"$eq": Op.EQ, "$ne": Op.NE, "$neq": Op.NE, "$gt": Op.GT, "$gte": Op.GTE, "$lt": Op.LT,
             "$lte": Op.LTE, "$in": Op.IN, "$nin": Op.NIN}
_DICT_GROUPS = {"$and": Combine.AND, "$or": Combine.OR, "$not": Combine.NOT}


def depth(flt: Filter | None) -> int:
    """How many groups deep a filter nests (a condition: 0), counted without recursion."""
    deepest, todo = 0, [(flt, 0)]
    while todo:
        node, level = todo.pop()
        if isinstance(node, Group):
            deepest = max(deepest, level + 1)
            todo += [(part, level + 1) for part in node.parts]
    return deepest


def parse_filter(where: Any, _level: int = 0) -> Filter | None:
    """A Filter from a dict (Mongo-style), a Filter, or ``None``/``{}`` (no filter)."""
    if where is None or isinstance(where, (Condition, Group)):
        return where
    if not isinstance(where, dict):
        raise ConfigError(f"a filter is a dict such as {{'lang': 'en'}}, got {type(where).__name__}")
    if not where:
        return None
    if _level > MAX_DEPTH:  # before recursing further (a nest of thousands would overflow the stack)
        raise ConfigError(f"a filter may nest groups ($and, $or, $not) {MAX_DEPTH} levels deep, this one "
                          "nests more; write it flatter")
    parts = [_dict_part(key, value, _level) for key, value in where.items()]
    return parts[0] if len(parts) == 1 else Group(Combine.AND, tuple(parts))


def _dict_part(key: str, value: Any, level: int) -> Filter:
    if not isinstance(key, str):
        raise ConfigError(f"a filter key must be a non-empty string, got {key!r}")
    check_text(key, "a filter key")
    if key in _DICT_GROUPS:
        items = value if isinstance(value, (list, tuple)) else [value]
        if not all(isinstance(item, dict) for item in items):
            raise ConfigError(f"{key} takes a list of filter dicts, got {value!r}")
        parts = (parse_filter(item, level + 1) for item in items)
        return Group(_DICT_GROUPS[key], tuple(p for p in parts if p is not None))
    if key.startswith("$"):
        raise ConfigError(f"unknown filter operator {key!r}; use {', '.join(_DICT_GROUPS)} or a key")
    if isinstance(value, dict):
        unknown = [op for op in value if op not in _DICT_OPS]
        if unknown or not value:
            raise ConfigError(f"unknown filter operator {unknown[0] if unknown else '{}'!r} for {key!r}; "
                              f"valid operators are: {', '.join(_DICT_OPS)}")
        conditions = [Condition(key, _DICT_OPS[op], v) for op, v in value.items()]
        return conditions[0] if len(conditions) == 1 else Group(Combine.AND, tuple(conditions))
    if isinstance(value, (list, tuple, set)):
        return Condition(key, Op.IN, value)
    return Condition(key, Op.EQ, value)


_ITEM = re.compile(r"^\s*([^=!<>]+?)\s*(!=|>=|<=|=|>|<)(.*)$")
_TEXT_OPS = {"=": Op.EQ, "!=": Op.NE, ">": Op.GT, ">=": Op.GTE, "<": Op.LT, "<=": Op.LTE}


def parse_where_items(items: Sequence[str] | None) -> Filter | None:
    """``["lang=en", "year>=2020", "tags!=[1, 2]"]`` -> their AND; values are JSON when they parse."""
    conditions = []
    for item in items or []:
        match = _ITEM.match(item)
        if not match:
            raise ConfigError(f"--where expects KEY=VALUE (or !=, >, >=, <, <=), got {item!r}")
        key, sign, raw = match.groups()
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            if raw.lstrip().startswith(("[", "{")):  # meant as JSON: a typo must not become a literal string
                raise ConfigError(f"--where {item!r}: the value looks like JSON but is not valid JSON ({exc.msg}); "
                                  'write a list as ["a", "b"], or a text that starts with [ or { as a JSON '
                                  'string ("[a")') from None
            value = raw
        op = _TEXT_OPS[sign]
        if isinstance(value, list) and op in (Op.EQ, Op.NE):
            op = Op.IN if op is Op.EQ else Op.NIN
        conditions.append(Condition(key.strip(), op, value))
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else Group(Combine.AND, tuple(conditions))


# -- reading ------------------------------------------------------------------------------
def conditions(flt: Filter | None) -> Iterator[Condition]:
    """Every condition in a filter tree."""
    if isinstance(flt, Condition):
        yield flt
    elif isinstance(flt, Group):
        for part in flt.parts:
            yield from conditions(part)


def check_keys(flt: Filter | None, metadata_keys: Sequence[str]) -> None:
    """ConfigError naming the first key that is neither a column nor a metadata key in the index."""
    known = set(COLUMNS) | set(metadata_keys)
    for condition in conditions(flt):
        if condition.key not in known:
            raise ConfigError(f"unknown filter key {condition.key!r}; keys in this index: {', '.join(sorted(known))}")


def to_sql(flt: Filter | None) -> tuple[str, list[Any]]:
    """A SQL boolean expression over the ``chunks`` table, with its parameters."""
    if flt is None:
        return "1", []
    if isinstance(flt, Condition):
        return _condition_sql(flt)
    pieces = [to_sql(part) for part in flt.parts]
    params = [p for _, ps in pieces for p in ps]
    if flt.combine is Combine.AND:
        return ("(" + " AND ".join(s for s, _ in pieces) + ")") if pieces else "1", params
    joined = ("(" + " OR ".join(s for s, _ in pieces) + ")") if pieces else "0"
    return (f"NOT {joined}" if flt.combine is Combine.NOT else joined), params


def _condition_sql(c: Condition) -> tuple[str, list[Any]]:
    if c.key in COLUMNS:  # NOT NULL columns: plain comparisons (SQLite can use its index on source)
        expr, key_params, definite = c.key, [], "{}"
    else:  # a missing metadata key is NULL: comparisons with it are false, never NULL (NOT works)
        # json_each matches the key exactly (a JSON path cannot quote every key: '"' is unescapable there)
        expr, key_params, definite = "(SELECT value FROM json_each(metadata) WHERE key = ?)", [c.key], "IFNULL({}, 0)"
    if c.op in LISTS:
        marks = ",".join("?" * len(c.value))
        if c.op is Op.IN:
            return definite.format(f"{expr} IN ({marks})"), [*key_params, *c.value]
        return f"({expr} IS NULL OR {expr} NOT IN ({marks}))", [*key_params, *key_params, *c.value]
    if c.value is None:
        return f"{expr} {'IS NOT' if c.op is Op.NE else 'IS'} NULL", key_params
    if c.op is Op.NE:
        return f"({expr} IS NULL OR {expr} != ?)", [*key_params, *key_params, c.value]
    return definite.format(f"{expr} {_SQL_OP[c.op]} ?"), [*key_params, c.value]
