"""How many IVF lists a search must visit: measured on the index's own vectors when it is built.

A fixed nprobe is wrong at every scale: on embedding-like data (benchmarks/index_speed.py,
32-dimensional latent + noise) recall@10 at nprobe 32 is 0.69 with 1,024 lists over 500k
vectors and 0.42 with 16,384 lists over 10M. :func:`calibrate_nprobe` takes stored vectors as
queries (each one's own entry left out of both rankings), ranks the store exactly, and returns
the smallest power of two whose approximate top-k reaches the target recall.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import faiss
import numpy as np

from grace_rag.indexes.factory import TARGET_RECALL, set_nprobe

logger = logging.getLogger(__name__)

#: stored vectors used as queries (recall is then known to about +-0.02)
CALIBRATION_QUERIES = 200
K = 10


def exact_neighbours(blocks: Iterable[tuple[np.ndarray, np.ndarray]], query_ids: np.ndarray,
                     queries: np.ndarray, k: int = K) -> np.ndarray:
    """The ids of each query's ``k`` most similar stored vectors (inner product), its own id left out."""
    best_scores = np.full((len(queries), k + 1), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), k + 1), -1, dtype=np.int64)
    for ids, vectors in blocks:
        scores = queries @ np.asarray(vectors, dtype=np.float32).T
        scores[ids[None, :] == query_ids[:, None]] = -np.inf  # a query is not its own neighbour
        scores = np.concatenate([best_scores, scores], axis=1)
        candidates = np.concatenate([best_ids, np.broadcast_to(ids, (len(queries), len(ids)))], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, : k + 1]
        best_scores = np.take_along_axis(scores, order, axis=1)
        best_ids = np.take_along_axis(candidates, order, axis=1)
    return best_ids[:, :k]


def recall_at(index: faiss.Index, nprobe: int, query_ids: np.ndarray, queries: np.ndarray,
              truth: np.ndarray) -> float:
    """recall@k of ``index`` searched with ``nprobe`` against ``truth`` (each query's own id left out)."""
    k = truth.shape[1]
    before = faiss.extract_index_ivf(index).nprobe
    set_nprobe(index, nprobe)
    try:
        _, found = index.search(queries, k + 1)
    finally:
        set_nprobe(index, before)
    hits = 0
    for own, row, want in zip(query_ids, found, truth):
        got = [i for i in row.tolist() if i != own and i >= 0][:k]
        hits += len(set(got) & set(want.tolist()))
    return hits / truth.size


def calibrate_nprobe(index: faiss.Index, blocks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
                     query_ids: np.ndarray, queries: np.ndarray, target: float = TARGET_RECALL) -> tuple[int, float]:
    """(nprobe, recall@10): the smallest power of two up to the number of lists whose recall reaches ``target``,
    or, if the index's codes keep it below, the smallest from which doubling finds no further neighbour.

    ``index`` is a filled IVF index whose ids are the store's ids; ``blocks()`` yields the store's
    (ids, vectors) for the exact ranking; ``query_ids``/``queries`` are stored vectors.
    """
    truth = exact_neighbours(blocks(), query_ids, queries)
    nlist = faiss.extract_index_ivf(index).nlist
    nprobe, recall = 1, recall_at(index, 1, query_ids, queries, truth)
    while recall < target and nprobe < nlist:
        more = min(2 * nprobe, nlist)
        better = recall_at(index, more, query_ids, queries, truth)
        if better <= recall:  # a plateau: more lists cost time and find nothing
            logger.warning("recall@%d stops at %.3f from nprobe %d (target %.2f): the index's codes limit it",
                           K, recall, nprobe, target)
            break
        nprobe, recall = more, better
    logger.info("nprobe %d of %d lists reaches recall@%d %.3f on %d stored vectors (target %.2f)",
                nprobe, nlist, K, recall, len(queries), target)
    return nprobe, recall
