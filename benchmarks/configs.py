"""The configurations the report compares: baselines, rationale lengths, pooling variants."""

from __future__ import annotations

from dataclasses import dataclass, field

from grace_rag.config import EncoderConfig


@dataclass(frozen=True)
class BenchConfig:
    """One row of the report: a model name and the GraceEncoder settings it runs with."""

    label: str
    model: str
    settings: EncoderConfig = field(default_factory=EncoderConfig)
    group: str = "grace"


def _grace(label: str, tokens: int, pooling: str = "mean", layer: str = "last") -> BenchConfig:
    return BenchConfig(label, "default", EncoderConfig(max_rationale_tokens=tokens, pooling=pooling, layer=layer))


CONFIGS: list[BenchConfig] = [
    BenchConfig("bm25", "bm25", group="baseline"),
    BenchConfig("minilm", "minilm", group="baseline"),
    _grace("grace rt=0 (base)", 0),
    _grace("grace rt=32", 32),
    _grace("grace rt=64", 64),
    _grace("grace rt=128", 128),
    _grace("grace rt=32 penultimate-mean", 32, layer="penultimate"),
    _grace("grace rt=32 eos", 32, pooling="last"),
    _grace("grace rt=32 max", 32, pooling="max"),
]

BY_LABEL = {config.label: config for config in CONFIGS}


def slug(label: str) -> str:
    """A file-name-safe form of a label."""
    return "".join(ch if ch.isalnum() else "-" for ch in label).strip("-")
