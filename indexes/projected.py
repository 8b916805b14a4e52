"""Large HNSW indexes: the graph is built on a PCA projection, then searched with the full vectors.

Building an HNSW graph costs distance computations, each over every dimension. For a large
corpus (``PROJECTED_MIN`` vectors and up) the graph is built over the vectors projected by PCA
to a quarter of their dimensions (L2 on unit vectors orders neighbours as cosine does, and is
unchanged by PCA's centring), then moved into the ordinary ``IndexHNSWFlat`` over the full
vectors. The result is the same index type as a one-piece build: searches traverse the graph
with exact full-dimensional similarities, filters, ``efSearch``, incremental adds and
``faiss.write_index`` work as before, and nothing needs refining. Only the choice of graph edges
saw the projection. ``benchmarks/index_speed.py --types hnsw32 hnsw32-pca-graph`` measures build
time and recall against a one-piece build.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import faiss
import numpy as np

logger = logging.getLogger(__name__)

#: corpus size from which an HNSW graph is built on the projection (below it a full build takes seconds)
PROJECTED_MIN = 200_000
#: the projection keeps 1 / PROJECTION_RATIO of the dimensions
PROJECTION_RATIO = 4
#: vectors the PCA is trained on (a uniform sample, like a coarse quantizer's training set)
PCA_SAMPLE = 65_536
#: vectors projected and inserted into the graph at a time
BLOCK = 50_000


def hnsw_of(index: faiss.Index) -> faiss.IndexHNSWFlat | None:
    """The ``IndexHNSWFlat`` inside ``index`` (itself, or under an ``IndexIDMap2``), else None."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else faiss.downcast_index(index)
    return inner if isinstance(inner, faiss.IndexHNSWFlat) else None


def fill_hnsw_projected(index: faiss.Index, blocks: Iterable[tuple[np.ndarray, np.ndarray]],
                        ratio: int = PROJECTION_RATIO, seed: int = 0) -> faiss.Index:
    """``index`` (an empty ``IndexIDMap2`` over an ``IndexHNSWFlat``, or a bare one) filled with every
    (ids, vectors) block, its graph built on a PCA projection to ``dimension // ratio`` dimensions.

    The full vectors are streamed into the index's own storage (the one copy kept in memory);
    the projection is computed from it block by block.
    """
    hnsw = hnsw_of(index)
    if hnsw is None or index.ntotal:
        raise ValueError("fill_hnsw_projected needs an empty IndexHNSWFlat (optionally under IndexIDMap2)")
    storage = faiss.downcast_index(hnsw.storage)
    id_parts = []
    for ids, vectors in blocks:
        storage.add(np.ascontiguousarray(vectors, dtype=np.float32))
        id_parts.append(np.asarray(ids, dtype=np.int64))
    n, dim = storage.ntotal, storage.d
    if n == 0:
        return index
    stored = faiss.rev_swig_ptr(storage.get_xb(), n * dim).reshape(n, dim)  # (N, D), a view of the storage
    pca = faiss.PCAMatrix(dim, max(1, dim // ratio))
    sample = np.sort(np.random.default_rng(seed).choice(n, min(n, PCA_SAMPLE), replace=False))
    pca.train(np.ascontiguousarray(stored[sample]))
    graph = faiss.IndexHNSWFlat(pca.d_out, hnsw.hnsw.nb_neighbors(1), faiss.METRIC_L2)
    graph.hnsw.efConstruction = hnsw.hnsw.efConstruction
    for start in range(0, n, BLOCK):
        graph.add(pca.apply(np.ascontiguousarray(stored[start:start + BLOCK])))  # (block, D / ratio)
    similarity = hnsw.hnsw.is_similarity  # how the full index compares (inner product), not the L2 graph
    hnsw.hnsw = graph.hnsw  # a copy of the graph: levels, neighbour lists, entry point
    hnsw.hnsw.is_similarity = similarity
    hnsw.ntotal = n
    if isinstance(index, faiss.IndexIDMap2):
        faiss.copy_array_to_vector(np.concatenate(id_parts), index.id_map)
        index.ntotal = n
        index.construct_rev_map()
    logger.info("built an HNSW graph over %d vectors on a %d-dimensional PCA projection", n, pca.d_out)
    return index
