"""Choosing, building and tuning the FAISS index type for a corpus size (pure functions)."""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import faiss
import numpy as np

from grace_rag.errors import GraceIndexError

logger = logging.getLogger(__name__)

# Corpus sizes where the automatic choice changes (faiss wiki, "Guidelines to choose an index").
EXACT_MAX = 20_000  # brute force over <= 20k vectors costs ~1 ms: exact is the best choice
HNSW_MAX = 2_000_000  # HNSW keeps full vectors and a graph: fast and accurate, memory-hungry
DEFAULT_EF_SEARCH = 256  # 1M embedding-like vectors: recall@10 0.98 at ~3 ms (benchmarks/index_speed.py)
AUTO_NPROBE = 0  # nprobe request "auto": the smallest that reaches TARGET_RECALL, measured when an IVF index is built
FALLBACK_NPROBE = 32  # used when "auto" has not been measured yet (an IVF index not built by this version)
TARGET_RECALL = 0.95  # recall@10 the automatic nprobe must reach (calibration.py)
AUTO = "auto"  # the factory request that lets the corpus size decide
EXACT_FALLBACK = "Flat"  # what a forced factory is replaced by until there are enough vectors to train it
MIN_POINTS_PER_CENTROID = 39  # faiss ClusteringParameters.min_points_per_centroid


@dataclass(frozen=True)
class SearchParams:
    """Query-time knobs of the approximate index types (ignored by exact ones)."""

    ef_search: int = DEFAULT_EF_SEARCH
    nprobe: int = AUTO_NPROBE  # IVF lists searched per query; 0: measured at build (see ``tuned_nprobe``)
    tuned_nprobe: int = 0  # what the last build measured for nprobe "auto" (0: not measured)
    tuned_recall: float = 0.0  # recall@10 it reached on stored vectors used as queries

    @property
    def effective_nprobe(self) -> int:
        """The nprobe searches use: the requested one, else the measured one, else FALLBACK_NPROBE."""
        return self.nprobe or self.tuned_nprobe or FALLBACK_NPROBE

    def to_dict(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {"ef_search": self.ef_search, "nprobe": self.nprobe}
        if self.tuned_nprobe:
            out.update(tuned_nprobe=self.tuned_nprobe, tuned_recall=round(self.tuned_recall, 4))
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "SearchParams":
        return cls(
            ef_search=int(data.get("ef_search", DEFAULT_EF_SEARCH)),
            nprobe=int(data.get("nprobe", AUTO_NPROBE)),
            tuned_nprobe=int(data.get("tuned_nprobe", 0)),
            tuned_recall=float(data.get("tuned_recall", 0.0)),
        )


def ivf_lists(n_vectors: int) -> int:
    """Number of IVF lists: about 8*sqrt(N), rounded to a power of two (faiss guideline 4-16*sqrt(N))."""
    target = 8 * math.sqrt(max(n_vectors, 1))
    return max(1, 2 ** round(math.log2(target)))


def choose_factory(n_vectors: int) -> str:
    """The FAISS factory string for a corpus of ``n_vectors`` normalised vectors (inner product).

    Small corpora get exact search; medium ones HNSW; very large ones an IVF index with an
    HNSW coarse quantizer and 8-bit scalar-quantised vectors to bound memory.
    """
    if n_vectors < 0:
        raise GraceIndexError(f"corpus size must be >= 0, got {n_vectors}")
    if n_vectors <= EXACT_MAX:
        return "Flat"
    if n_vectors <= HNSW_MAX:
        return "HNSW32"
    return f"IVF{ivf_lists(n_vectors)}_HNSW32,SQ8"


def needs_id_map(factory: str) -> bool:
    """Whether the index type cannot store external ids itself (everything but IVF)."""
    return not factory.startswith("IVF") and not factory.startswith("IDMap")


def faiss_reason(exc: BaseException) -> str:
    """The readable part of a faiss error (its last line, without the C++ function and source location)."""
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return re.sub(r"^(Error in .*? at \S+:\d+: )?(Error: )?", "", text)[:200]


def build_index(factory: str, dimension: int) -> faiss.Index:
    """An empty inner-product FAISS index from a factory string, with external-id support."""
    if not isinstance(factory, str) or not factory.strip():
        raise GraceIndexError("the FAISS factory string is empty; try 'auto', 'Flat', 'HNSW32' or 'IVF1024,Flat'")
    full = f"IDMap2,{factory}" if needs_id_map(factory) else factory
    try:
        return faiss.index_factory(dimension, full, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise GraceIndexError(
            f"invalid FAISS factory string {factory!r} for {dimension}-dimensional vectors ({faiss_reason(exc)}); "
            "try 'auto', 'Flat', 'HNSW32' or 'IVF1024,Flat'"
        ) from None


def supports_removal(index: faiss.Index) -> bool:
    """Whether vectors can be removed in place (HNSW graphs cannot; they are rebuilt)."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    return not isinstance(inner, (faiss.IndexHNSW,))


def quantizer_ef(nprobe: int) -> int:
    """efSearch of an HNSW coarse quantizer that must return ``nprobe`` lists.

    At faiss's default (16) the graph search returns fewer lists than asked: on 1M embedding-like
    vectors in 4,096 lists recall@10 stopped at 0.78 whatever nprobe, and at 0.63 on 10M; with
    twice nprobe it matches a flat quantizer (0.976 at nprobe 512, benchmarks/index_speed.py).
    """
    return max(16, 2 * nprobe)


def hnsw_quantizer(ivf: faiss.IndexIVF) -> faiss.IndexHNSW | None:
    """The coarse quantizer of ``ivf`` when it is an HNSW graph (large indexes), else None."""
    quantizer = faiss.downcast_index(ivf.quantizer)
    return quantizer if isinstance(quantizer, faiss.IndexHNSW) else None


def set_nprobe(index: faiss.Index, nprobe: int) -> None:
    """Search ``nprobe`` lists of an IVF index, and let an HNSW coarse quantizer find that many."""
    ivf = faiss.extract_index_ivf(index)
    ivf.nprobe = nprobe
    quantizer = hnsw_quantizer(ivf)
    if quantizer is not None:
        quantizer.hnsw.efSearch = quantizer_ef(nprobe)


def apply_search_params(index: faiss.Index, params: SearchParams) -> None:
    """Set efSearch / nprobe on whatever part of the index understands them."""
    if faiss.try_extract_index_ivf(index) is not None:
        set_nprobe(index, params.effective_nprobe)
        return
    try:
        faiss.ParameterSpace().set_index_parameter(index, "efSearch", params.ef_search)
    except RuntimeError:
        pass  # this index type has no such knob


def training_size(index: faiss.Index) -> int:
    """How many vectors to train an untrained index on: 64 per IVF list (faiss warns below 39)."""
    ivf = faiss.try_extract_index_ivf(index)
    return 64 * ivf.nlist if ivf is not None else 65_536


def train_index(factory: str, dimension: int, sample: Callable[[int], np.ndarray]) -> faiss.Index | None:
    """An empty ``factory`` index, trained on ``sample(n)`` vectors if it needs training; None (and a
    warning) when faiss cannot train it on them."""
    index = build_index(factory, dimension)
    if index.is_trained:
        return index
    vectors = sample(training_size(index))
    try:
        index.train(vectors)
    except RuntimeError as exc:
        logger.warning("cannot train FAISS index %r on %d vectors (%s); searching exactly (Flat) instead",
                       factory, len(vectors), faiss_reason(exc))
        return None
    return index


def search_parameters(index: faiss.Index, params: SearchParams, selector: faiss.IDSelector) -> faiss.SearchParameters:
    """Per-query parameters restricted to ``selector``, of the type the inner index expects."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    if isinstance(inner, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=params.ef_search)
    ivf = faiss.try_extract_index_ivf(inner)
    if ivf is not None:
        nprobe = params.effective_nprobe
        if hnsw_quantizer(ivf) is not None:
            quantizer = faiss.SearchParametersHNSW(efSearch=quantizer_ef(nprobe))
            out = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe, quantizer_params=quantizer)
            out.keep_quantizer_params = quantizer  # the C++ struct points at it: keep it alive with the result
            return out
        return faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
    return faiss.SearchParameters(sel=selector)


def _inner(index: faiss.Index) -> faiss.Index:
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else faiss.downcast_index(index)


@functools.lru_cache(maxsize=64)
def training_minimum(factory: str, dimension: int) -> int:
    """Vectors a ``factory`` index needs before it is trained (0 when it needs no training).

    k-means wants ``MIN_POINTS_PER_CENTROID`` points per centroid: an IVF index needs that many per
    list, a product quantizer that many per code (faiss prints a warning and clusters poorly below).
    """
    index = build_index(factory, dimension)
    if index.is_trained:
        return 0
    need = 1
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        need = max(need, ivf.nlist * MIN_POINTS_PER_CENTROID)
    inner = faiss.downcast_index(ivf) if ivf is not None else _inner(index)
    if getattr(inner, "storage", None) is not None:  # HNSW over compressed vectors
        inner = faiss.downcast_index(inner.storage)
    pq = getattr(inner, "pq", None)
    if pq is not None:
        need = max(need, pq.ksub * MIN_POINTS_PER_CENTROID)
    return need


def resolve_factory(request: str, n_vectors: int, dimension: int | None = None) -> str:
    """The factory string to build: the forced one, or the automatic choice for the size.

    With ``dimension``, a forced factory that cannot be trained on ``n_vectors`` vectors yet gives
    ``EXACT_FALLBACK`` (exact search) until the index holds enough; then the forced one is trained.
    """
    if request == AUTO:
        return choose_factory(n_vectors)
    if dimension is not None and n_vectors < training_minimum(request, dimension):
        return EXACT_FALLBACK
    return request
