"""Large HNSW indexes whose graph is built on a PCA projection: an ordinary HNSW index over the full vectors."""

import faiss
import numpy as np
import pytest

from grace_rag.indexes import GraceIndex
from grace_rag.indexes import grace_index as grace_index_module
from grace_rag.indexes.factory import SearchParams, search_parameters
from grace_rag.indexes.projected import fill_hnsw_projected
from grace_rag.indexes.records import Chunk

DIM, LATENT = 32, 6


def embedding_like(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    """Unit vectors with a low-dimensional structure plus noise (as text embeddings have)."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).standard_normal((LATENT, dim))
    x = (rng.standard_normal((n, LATENT)) @ basis + 0.1 * rng.standard_normal((n, dim))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def blocks(vectors: np.ndarray, size: int = 700):
    for start in range(0, len(vectors), size):
        yield np.arange(start, min(start + size, len(vectors)), dtype=np.int64) * 3 + 7, vectors[start:start + size]


def exact(base: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    order = np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :k]
    return order * 3 + 7  # the external ids of blocks()


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return sum(len(set(f) & set(t)) for f, t in zip(found.tolist(), truth.tolist())) / truth.size


def projected(base: np.ndarray) -> faiss.Index:
    index = faiss.index_factory(DIM, "IDMap2,HNSW32", faiss.METRIC_INNER_PRODUCT)
    return fill_hnsw_projected(index, blocks(base))


def test_the_projected_graph_finds_what_a_full_build_finds():
    base, queries = embedding_like(4000, 0), embedding_like(50, 1)
    full = faiss.index_factory(DIM, "IDMap2,HNSW32", faiss.METRIC_INNER_PRODUCT)
    for ids, vectors in blocks(base):
        full.add_with_ids(vectors, ids)
    fast = projected(base)
    truth = exact(base, queries)
    for index in (full, fast):
        faiss.ParameterSpace().set_index_parameter(index, "efSearch", 64)
    got = {name: recall(index.search(queries, 10)[1], truth) for name, index in (("full", full), ("fast", fast))}
    assert got["fast"] >= 0.95 and got["fast"] >= got["full"] - 0.02, got
    # an ordinary HNSW over the full vectors, under the given ids; scores are full-dimensional cosines
    inner = faiss.downcast_index(fast.index)
    assert isinstance(inner, faiss.IndexHNSWFlat) and inner.d == DIM and fast.ntotal == len(base)
    np.testing.assert_array_equal(fast.reconstruct(7 + 3 * 123), base[123])
    scores, ids = fast.search(queries[:1], 1)
    assert scores[0, 0] == pytest.approx(float(base[(ids[0, 0] - 7) // 3] @ queries[0]), abs=1e-5)


def test_it_survives_a_round_trip_takes_more_vectors_and_filters():
    base, queries = embedding_like(3000, 2), embedding_like(20, 3)
    index = projected(base)
    again = faiss.deserialize_index(faiss.serialize_index(index))
    assert (again.search(queries, 10)[1] == index.search(queries, 10)[1]).all()
    extra = embedding_like(5, 4)
    again.add_with_ids(extra, np.arange(5, dtype=np.int64) + 10**6)
    assert again.search(extra[:1], 1)[1][0, 0] == 10**6  # a vector added later is found as itself
    allowed = np.array([7 + 3 * i for i in range(0, 3000, 2)], dtype=np.int64)  # even rows only
    params = search_parameters(again, SearchParams(ef_search=64), faiss.IDSelectorBatch(allowed))
    _, ids = again.search(queries, 5, params=params)
    assert set(ids.ravel().tolist()) <= set(allowed.tolist())


def test_only_an_empty_hnsw_index_can_be_filled():
    with pytest.raises(ValueError):
        fill_hnsw_projected(faiss.IndexFlatIP(DIM), [])
    full = projected(embedding_like(100, 5))
    with pytest.raises(ValueError):
        fill_hnsw_projected(full, [])
    empty = faiss.index_factory(DIM, "IDMap2,HNSW32", faiss.METRIC_INNER_PRODUCT)
    assert fill_hnsw_projected(empty, iter(())).ntotal == 0


def test_grace_index_builds_large_hnsw_graphs_on_the_projection(info, tmp_path, monkeypatch):
    vectors = embedding_like(1500, 6, info.dimension)
    chunks = [Chunk(id=f"c{i}", text=f"chunk {i}") for i in range(len(vectors) + 1)]
    vectors = np.vstack([vectors, vectors[-1:]])
    calls, results = [], {}

    def counted(index, blocks):
        calls.append(index.ntotal)
        return fill_hnsw_projected(index, blocks)

    monkeypatch.setattr(grace_index_module, "fill_hnsw_projected", counted)
    for name, threshold in (("one", 10**9), ("projected", 1000)):
        monkeypatch.setattr(grace_index_module, "PROJECTED_MIN", threshold)
        with GraceIndex.create(tmp_path / name, info, factory="HNSW32") as index:
            index.add(chunks, vectors)
            assert index.delete([chunks[-1].id]) == 1  # an HNSW graph cannot forget a node: rebuilt at save
            index.save()
        with GraceIndex.open(tmp_path / name) as index:
            results[name] = [index.search(q, k=1)[0].id for q in vectors[:30]]
    assert calls == [0]  # only the index above the threshold was built on the projection
    assert results["projected"] == results["one"] == [f"c{i}" for i in range(30)]  # each vector finds itself
