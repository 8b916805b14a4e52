"""Training on a mix of sources: weighted data files, one source per batch, optional BM25-mined negatives.

A source is a file or folder with a weight (``--data FILE[:WEIGHT]``, or ``[[data]]`` tables in a
config file). Each batch is drawn from one source, chosen at random in proportion to the weights
(as sentence-transformers' proportional multi-dataset sampler does): in-batch negatives then come
from the same domain, and the loss of every step belongs to one source, so it can be reported per
source. Within a source, examples are taken in a seeded permutation per pass over it. The batch of
step ``s`` is a pure function of ``(seed, s)``, so a resumed run sees the same batches.

Supervised sources may hold pairs without a ``negative`` (in-batch negatives only), or have one
mined with BM25 from the source's own positives (``mine_negatives``).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grace_rag.errors import ConfigError, DataError

from .data import Triplet

log = logging.getLogger(__name__)

_WEIGHT = re.compile(r"^(?P<path>.+):(?P<weight>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)$")


@dataclass(frozen=True)
class DataSource:
    """One training file or folder and its share of the batches."""

    path: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.strip():
            raise ConfigError(f"a data source needs a path, got {self.path!r}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) \
                or not math.isfinite(self.weight) or self.weight < 0:
            raise ConfigError(f"data source {self.path}: weight must be a finite number >= 0, got {self.weight!r}")

    @property
    def name(self) -> str:
        """A short label for logs and metrics: the file's stem, or the folder's name."""
        path = Path(self.path)
        if path.name in ("train.jsonl", "train_triplets.jsonl", "corpus.jsonl") or path.suffix == ".tsv":
            return path.parent.name or path.stem
        return path.stem if path.suffix else path.name

    @classmethod
    def parse(cls, spec: str) -> DataSource:
        """``FILE`` or ``FILE:WEIGHT`` (the part after the last colon is a weight only if it is a number)."""
        match = _WEIGHT.match(spec)
        if match and not Path(spec).exists():
            return cls(match.group("path"), float(match.group("weight")))
        return cls(spec)

    @classmethod
    def coerce(cls, value: Any) -> DataSource:
        """A DataSource from itself, ``"FILE[:WEIGHT]"`` or ``{"path": ..., "weight": ...}`` (config files)."""
        if isinstance(value, DataSource):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"path", "weight"})
            if unknown or "path" not in value:
                raise ConfigError(f"a data source is {{path = \"FILE\", weight = W}}, got {value!r}")
            return cls(value["path"], value.get("weight", 1.0))
        raise ConfigError(f"a data source is \"FILE[:WEIGHT]\" or {{path, weight}}, got {value!r}")


def check_weights(sources: Sequence[DataSource]) -> None:
    """Weights must sum to something positive."""
    if sources and not sum(s.weight for s in sources) > 0:
        raise ConfigError("the data sources' weights sum to 0; give at least one source a positive weight")


def mine_negatives(pairs: Sequence[Triplet], seed: int = 0) -> list[Triplet]:
    """Give every pair without a negative the best BM25 match of its query among the source's other positives."""
    from grace_rag.evaluation.adapters import BM25Retriever

    needy = [i for i, t in enumerate(pairs) if not t.negatives]
    if not needy:
        return list(pairs)
    docs = sorted({t.positive for t in pairs})
    if len(docs) < 2:
        raise DataError("mining negatives needs at least two distinct positives in a source")
    retriever = BM25Retriever()
    retriever.index(docs)
    hits, scores = retriever.search([pairs[i].query for i in needy], min(len(docs), 8))
    rng = np.random.default_rng(seed)
    out = list(pairs)
    for row, i in enumerate(needy):
        own = {t.positive for t in pairs if t.query == pairs[i].query}
        found = [docs[int(j)] for j, s in zip(hits[row], scores[row]) if s > 0 and docs[int(j)] not in own]
        negative = found[0] if found else docs[int(rng.integers(len(docs)))]
        if negative in own:  # the random fallback hit a positive: take any other text
            negative = next(d for d in docs if d not in own)
        out[i] = Triplet(pairs[i].query, pairs[i].positive, (negative,))
    log.info("mined %d BM25 negatives", len(needy))
    return out


@dataclass
class MixSampler:
    """Batches drawn from weighted sources: step -> (source index, examples)."""

    sources: Sequence[Sequence[Any]]
    weights: Sequence[float]
    batch_size: int
    seed: int = 0
    names: Sequence[str] | None = None
    _picks: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if len(self.sources) != len(self.weights) or not self.sources:
            raise ConfigError("one weight per data source is needed")
        total = float(sum(self.weights))
        if not total > 0:
            raise ConfigError("the data sources' weights sum to 0; give at least one source a positive weight")
        self._p = np.asarray(self.weights, dtype=float) / total
        for data, w in zip(self.sources, self.weights):
            if w > 0 and len(data) < self.batch_size:
                raise DataError(f"a data source has {len(data)} examples but batch_size is {self.batch_size}; "
                                "lower --batch-size or give that source weight 0")
        self.names = list(self.names) if self.names is not None else [f"source{i}" for i in range(len(self.sources))]

    @property
    def size(self) -> int:
        """Examples in the sources that are drawn from (weight > 0)."""
        return sum(len(d) for d, w in zip(self.sources, self.weights) if w > 0)

    def source_of(self, step: int) -> int:
        """Which source step ``step`` draws from (seeded per step; always 0 with one source)."""
        if len(self._p) == 1:
            return 0
        return int(np.random.default_rng([self.seed, step, 7]).choice(len(self._p), p=self._p))

    def _count_before(self, step: int, source: int) -> int:
        while len(self._picks) < step:
            self._picks.append(self.source_of(len(self._picks)))
        return sum(1 for s in self._picks[:step] if s == source)

    def batch(self, step: int) -> tuple[int, list[Any]]:
        """The source and examples of global step ``step``: its n-th batch of that source, from a seeded
        permutation per pass over it (one source: exactly ``run.batch_for_step``)."""
        from .run import batch_for_step

        source = self.source_of(step)
        return source, batch_for_step(self.sources[source], self._count_before(step, source), self.batch_size,
                                      self.seed + source)


#: metrics that are "the loss" of a step, in order of preference
_LOSS_KEYS = ("contrastive_loss", "policy_loss")


class SourceLosses:
    """The loss of each step credited to its source, and a running mean per source for the progress bar."""

    def __init__(self, names: Sequence[str], window: int = 20) -> None:
        self.names = list(names)
        self.window = window
        self._recent: dict[str, list[float]] = {name: [] for name in self.names}

    def record(self, source: int, metrics: dict[str, Any]) -> dict[str, Any]:
        """What the metrics line of this step adds: its source, and ``loss[source]``."""
        name = self.names[source]
        loss = next((float(metrics[k]) for k in _LOSS_KEYS if k in metrics), None)
        out: dict[str, Any] = {"source": name}
        if loss is not None:
            out[f"loss[{name}]"] = loss
            recent = self._recent[name]
            recent.append(loss)
            del recent[:-self.window]
        return out

    def postfix(self, metrics: dict[str, Any]) -> str:
        """``squad 1.234 | snli 0.567 | reward 0.1 | 30.2 s/step``: the sources' running mean losses."""
        parts = [f"{name} {sum(v) / len(v):.3f}" for name, v in self._recent.items() if v]
        if "reward_total" in metrics:
            parts.append(f"reward {metrics['reward_total']:.3f}")
        parts.append(f"{metrics.get('s_per_step', float('nan')):.1f} s/step")
        return " | ".join(parts)
