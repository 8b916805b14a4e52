"""The steps of a search: pick the mode, rank on the dense side, turn fused rankings into hits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import faiss
import numpy as np

from grace_rag.errors import ConfigError
from grace_rag.indexes.factory import SearchParams, search_parameters
from grace_rag.indexes.filters import Filter
from grace_rag.indexes.fusion import DEFAULT_MODE, Fused, SearchMode, parse_mode
from grace_rag.indexes.records import Hit
from grace_rag.indexes.store import ChunkStore

FILTER_EXACT_MAX = 4096  # a filter matching at most this many chunks is searched exactly


def choose_mode(mode: str | SearchMode | None, has_vector: bool, has_text: bool) -> SearchMode:
    """The search mode; ``None`` means hybrid when both a vector and a text are given, else the one possible."""
    if mode is None:
        if has_vector and has_text:
            return DEFAULT_MODE
        if not (has_vector or has_text):
            raise ConfigError("nothing to search for: pass a query vector, a query text (text=...), or both")
        return SearchMode.DENSE if has_vector else SearchMode.LEXICAL
    mode = parse_mode(mode)
    if mode in (SearchMode.DENSE, SearchMode.HYBRID) and not has_vector:
        raise ConfigError(f"{mode.value} search needs a query vector; use Retriever.search(text) or mode='lexical'")
    if mode in (SearchMode.LEXICAL, SearchMode.HYBRID) and not has_text:
        raise ConfigError(f"{mode.value} search needs the query text: pass text=...")
    return mode


def dense_ranking(index: faiss.Index, store: ChunkStore, params: SearchParams, query: np.ndarray, n: int,
                  where: Filter | None) -> list[tuple[int, float]]:
    """The ``n`` chunks most similar to ``query`` (1, d) as (fid, cosine), best first, within ``where``."""
    if where is not None and store.count_matching(where) <= FILTER_EXACT_MAX:
        fids, vectors = store.matching(where)
        scores = vectors @ query[0]  # (M,)
        order = np.argsort(-scores, kind="stable")[:n]
        return list(zip(fids[order].tolist(), scores[order].tolist()))
    if where is None:
        scores, fids = index.search(query, min(n, index.ntotal))
    else:
        selector = faiss.IDSelectorBatch(store.matching_fids(where))
        scores, fids = index.search(query, n, params=search_parameters(index, params, selector))
    keep = fids[0] >= 0
    return list(zip(fids[0][keep].tolist(), scores[0][keep].tolist()))


def to_hits(store: ChunkStore, fused: Sequence[Fused]) -> list[Hit]:
    """The stored chunks of fused results, in order, carrying the fused score and each side's rank and score."""
    rows = store.hit_map([int(f.key) for f in fused])
    return [
        replace(rows[int(f.key)], score=float(f.score), dense_rank=f.dense_rank, dense_score=f.dense_score,
                lexical_rank=f.lexical_rank, lexical_score=f.lexical_score)
        for f in fused if int(f.key) in rows
    ]
