"""Fusing a dense and a lexical ranking into one: reciprocal rank fusion and weighted min-max fusion.

Everything here is pure: a *ranking* is a best-first sequence of ``(key, score)`` pairs from one
side (dense: cosine similarity; lexical: BM25), and fusion returns :class:`Fused` items that keep
each side's 1-based rank and score (``None`` where the side did not return the key).

The defaults (method, alpha) live in ``DEFAULT_FUSION`` and ``DEFAULT_ALPHA`` only; they are
chosen over every dev set (mean and worst case) by ``benchmarks/fusion_dev.py``, with
``benchmarks/fusion.py``'s larger SciFact subset as a check, and re-chosen when the default model changes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from grace_rag.config import parse_choice
from grace_rag.errors import ConfigError

Ranking = Sequence[tuple[Hashable, float]]


class SearchMode(str, Enum):
    """Which side(s) of an index answer a query."""

    DENSE = "dense"  # FAISS over GRACE vectors
    LEXICAL = "lexical"  # BM25 over chunk texts
    HYBRID = "hybrid"  # both, fused


class FusionMethod(str, Enum):
    """How a dense and a lexical ranking are combined."""

    RRF = "rrf"  # reciprocal rank fusion: sum of 1 / (k + rank)
    WEIGHTED = "weighted"  # alpha * minmax(dense) + (1 - alpha) * minmax(lexical)


DEFAULT_MODE = SearchMode.HYBRID
#: Chosen over the five retrieval dev sets with the default model (benchmarks/fusion_dev.py, 30 queries and
#: 150 documents per set; benchmarks/out/dev/s-today/fusion.json): weighted fusion, mean / worst set nDCG@10
#: alpha 0.3 0.855 / 0.650, 0.4 0.845 / 0.651, 0.5 0.840 / 0.629, 0.6 0.833 / 0.641; RRF 0.792 / 0.633;
#: BM25 alone 0.840 / 0.660, dense alone 0.690 / 0.531. On the larger SciFact subset (150 queries, 400
#: documents; benchmarks/fusion.py) alpha 0.4 and 0.5 both score 0.830 and 0.3 drops to 0.818, so 0.4: as
#: good as 0.5 there, better on the mean and the worst set. Re-checked for the current default model
#: (benchmarks/out/dev/s-cand-a-100-w128/fusion.json): alpha 0.3 0.862 / 0.667, 0.4 0.866 / 0.674,
#: 0.5 0.853 / 0.680, 0.6 0.856 / 0.703; 0.4 keeps the best mean. A weak dense side wants less weight (the
#: untrained base: 0.1 was best): re-run it for a model of your own and pass --alpha.
DEFAULT_FUSION = FusionMethod.WEIGHTED
DEFAULT_ALPHA = 0.4  # weight of the dense side in weighted fusion
RRF_K = 60  # the constant of Cormack et al. (2009)
DEFAULT_CANDIDATES = 100  # each side contributes at least this many candidates to the fusion


@dataclass(frozen=True)
class FusionConfig:
    """How hybrid search fuses its two rankings."""

    method: FusionMethod = DEFAULT_FUSION
    alpha: float = DEFAULT_ALPHA
    rrf_k: int = RRF_K
    candidates: int = DEFAULT_CANDIDATES

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", parse_choice(FusionMethod, self.method, "fusion"))
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be between 0 and 1 (the weight of the dense side), got {self.alpha!r}")
        if self.rrf_k < 1 or self.candidates < 1:
            raise ConfigError(f"rrf_k and candidates must be at least 1, got {self.rrf_k} and {self.candidates}")

    @classmethod
    def from_options(cls, fusion: str | FusionMethod | None = None, alpha: float | None = None) -> "FusionConfig":
        """From CLI/framework options: ``alpha`` alone implies weighted fusion; with ``rrf`` it is an error."""
        method = parse_choice(FusionMethod, fusion, "fusion") if fusion is not None else None
        if alpha is not None and method is FusionMethod.RRF:
            raise ConfigError("alpha weights the weighted fusion; drop alpha or use fusion 'weighted'")
        if method is None:
            method = FusionMethod.WEIGHTED if alpha is not None else DEFAULT_FUSION
        return cls(method=method, alpha=DEFAULT_ALPHA if alpha is None else alpha)

    def to_dict(self) -> dict[str, Any]:
        return {"fusion": self.method.value, "alpha": self.alpha, "rrf_k": self.rrf_k, "candidates": self.candidates}


@dataclass(frozen=True)
class Fused:
    """One fused result: its key, fused score, and where each side ranked it (1-based)."""

    key: Hashable
    score: float
    dense_rank: int | None = None
    dense_score: float | None = None
    lexical_rank: int | None = None
    lexical_score: float | None = None


def parse_mode(mode: str | SearchMode) -> SearchMode:
    """A SearchMode from its name; an unknown one is a ConfigError listing the modes."""
    return parse_choice(SearchMode, mode, "mode")


def min_max(scores: Sequence[float]) -> list[float]:
    """Scale scores to [0, 1]; when all are equal (or there is one), each becomes 1."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high == low:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def _sides(dense: Ranking, lexical: Ranking) -> dict[Hashable, dict[str, Any]]:
    """key -> ranks and scores on each side, in order of first appearance (dense first)."""
    table: dict[Hashable, dict[str, Any]] = {}
    for side, ranking in (("dense", dense), ("lexical", lexical)):
        for rank, (key, score) in enumerate(ranking, 1):
            entry = table.setdefault(key, {})
            if f"{side}_rank" not in entry:  # a repeated key keeps its best (first) place
                entry[f"{side}_rank"], entry[f"{side}_score"] = rank, float(score)
    return table


def _ordered(table: dict[Hashable, dict[str, Any]], fused: dict[Hashable, float]) -> list[Fused]:
    """Best fused score first; ties go to the better best rank, then to dense order, then lexical."""
    def best_rank(key: Hashable) -> int:
        entry = table[key]
        return min(r for r in (entry.get("dense_rank"), entry.get("lexical_rank")) if r is not None)

    order = sorted(table, key=lambda key: (-fused[key], best_rank(key)))  # stable: insertion order breaks ties
    return [Fused(key=key, score=fused[key], **table[key]) for key in order]


def reciprocal_rank_fusion(dense: Ranking, lexical: Ranking, k: int = RRF_K) -> list[Fused]:
    """Score = sum over the sides that returned a key of 1 / (k + rank)."""
    table = _sides(dense, lexical)
    fused = {key: sum(1.0 / (k + entry[f"{side}_rank"]) for side in ("dense", "lexical") if f"{side}_rank" in entry)
             for key, entry in table.items()}
    return _ordered(table, fused)


def weighted_fusion(dense: Ranking, lexical: Ranking, alpha: float) -> list[Fused]:
    """Score = alpha * minmax(dense) + (1 - alpha) * minmax(lexical); a side that missed a key adds 0."""
    table = _sides(dense, lexical)
    normalised: dict[str, dict[Hashable, float]] = {}
    for side in ("dense", "lexical"):
        keys = [key for key, entry in table.items() if f"{side}_score" in entry]
        normalised[side] = dict(zip(keys, min_max([table[key][f"{side}_score"] for key in keys])))
    fused = {key: alpha * normalised["dense"].get(key, 0.0) + (1.0 - alpha) * normalised["lexical"].get(key, 0.0)
             for key in table}
    return _ordered(table, fused)


def single_side(ranking: Ranking, mode: SearchMode) -> list[Fused]:
    """One side's ranking as Fused items: the score stays that side's own score."""
    side = "lexical" if mode is SearchMode.LEXICAL else "dense"
    table = _sides(ranking, []) if side == "dense" else _sides([], ranking)
    return [Fused(key=key, score=entry[f"{side}_score"], **entry) for key, entry in table.items()]


_FUSERS: dict[FusionMethod, Callable[[Ranking, Ranking, FusionConfig], list[Fused]]] = {
    FusionMethod.RRF: lambda d, lex, c: reciprocal_rank_fusion(d, lex, c.rrf_k),
    FusionMethod.WEIGHTED: lambda d, lex, c: weighted_fusion(d, lex, c.alpha),
}


def fuse(dense: Ranking, lexical: Ranking, config: FusionConfig | None = None) -> list[Fused]:
    """Fuse two rankings with the method of ``config`` (the defaults when ``None``)."""
    config = config or FusionConfig()
    return _FUSERS[config.method](dense, lexical, config)
