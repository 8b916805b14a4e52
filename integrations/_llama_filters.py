"""LlamaIndex ``MetadataFilters`` -> grace-rag filters (EQ, NE, GT, GTE, LT, LTE, IN, NIN; AND, OR, NOT; nested)."""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from grace_rag.errors import ConfigError
from grace_rag.indexes.filters import Combine, Condition, Filter, Group, Op, parse_filter

OPERATORS = {
    FilterOperator.EQ: Op.EQ, FilterOperator.NE: Op.NE, FilterOperator.GT: Op.GT, FilterOperator.GTE: Op.GTE,
    FilterOperator.LT: Op.LT, FilterOperator.LTE: Op.LTE, FilterOperator.IN: Op.IN, FilterOperator.NIN: Op.NIN,
}
CONDITIONS = {FilterCondition.AND: Combine.AND, FilterCondition.OR: Combine.OR, FilterCondition.NOT: Combine.NOT}


def to_filter(filters: Any) -> Filter | None:
    """A grace-rag filter from ``MetadataFilters``, a single ``MetadataFilter``, a dict, or None."""
    if isinstance(filters, MetadataFilters):
        condition = CONDITIONS.get(filters.condition or FilterCondition.AND)
        if condition is None:
            raise ConfigError(f"filter condition {filters.condition!r} is not supported; use and, or, not")
        return Group(condition, tuple(p for f in filters.filters if (p := to_filter(f)) is not None))
    if isinstance(filters, MetadataFilter):
        op = OPERATORS.get(filters.operator)
        if op is None:
            supported = ", ".join(o.name for o in OPERATORS)
            raise ConfigError(f"filter operator {filters.operator.name} on {filters.key!r} is not supported; use {supported}")
        return Condition(filters.key, op, filters.value)
    return parse_filter(filters)
