"""Large IVF indexes: trained once, filled as shards added in parallel threads, merged into one index.

FAISS releases the GIL while it adds vectors, so shards fill in parallel threads of this process
(each with its share of the OpenMP threads), reading the chunk store block by block. The shards
share the trained coarse quantizer, so ``merge_from`` joins their inverted lists into one
ordinary IVF index: the file written by ``GraceIndex.save`` is the same as a one-shot build's,
and searches return the same results. HNSW graphs cannot be merged; HNSW indexes are built in
one piece as before.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import faiss
import numpy as np

logger = logging.getLogger(__name__)

#: corpus size from which an IVF index is filled in shards (below it one add() takes seconds)
SHARDED_MIN = 200_000
#: blocks queued per shard at most (bounds the memory held by blocks waiting to be added)
QUEUED_PER_SHARD = 2


def is_ivf(index: faiss.Index) -> bool:
    return faiss.try_extract_index_ivf(index) is not None


def default_shards(threads: int | None = None) -> int:
    """One shard per OpenMP thread FAISS may use (at least two: the point is to overlap the work)."""
    return max(2, threads or faiss.omp_get_max_threads())


def fill_sharded(trained: faiss.Index, blocks: Iterable[tuple[np.ndarray, np.ndarray]],
                 shards: int | None = None) -> faiss.Index:
    """``trained`` (an empty, trained IVF index) filled with every (ids, vectors) block, via parallel shards.

    Block ``i`` goes to shard ``i % shards``; each shard has one worker thread, so its blocks are
    added in order. The shards are merged into the first one, which is returned.
    """
    if not is_ivf(trained) or not trained.is_trained or trained.ntotal:
        raise ValueError("fill_sharded needs an empty, trained IVF index")
    shards = shards or default_shards()
    threads = max(1, faiss.omp_get_max_threads() // shards)
    parts = [faiss.clone_index(trained) for _ in range(shards)]
    workers = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"faiss-shard-{i}") for i in range(shards)]
    queued: deque[Future] = deque()
    try:
        for number, (ids, vectors) in enumerate(blocks):
            while len(queued) >= QUEUED_PER_SHARD * shards:
                queued.popleft().result()
            part = parts[number % shards]
            queued.append(workers[number % shards].submit(_add, part, ids, vectors, threads))
        for future in queued:
            future.result()
    finally:
        for worker in workers:
            worker.shutdown(wait=True)
    merged = parts[0]
    for part in parts[1:]:
        merged.merge_from(part, 0)  # the inverted lists move: ids are kept, the shard is left empty
    logger.info("filled %d IVF shards in parallel (%d threads each) and merged %d vectors",
                shards, threads, merged.ntotal)
    return merged


def _add(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray, threads: int) -> None:
    faiss.omp_set_num_threads(threads)  # this worker thread's OpenMP team
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
