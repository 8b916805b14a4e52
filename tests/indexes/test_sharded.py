"""Large IVF indexes filled as parallel shards and merged: the same index as one add() would give."""

import faiss
import numpy as np
import pytest

from grace_rag.indexes import GraceIndex
from grace_rag.indexes import grace_index as grace_index_module
from grace_rag.indexes.records import Chunk
from grace_rag.indexes.sharded import fill_sharded

DIM = 16


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def blocks(vectors: np.ndarray, size: int):
    for start in range(0, len(vectors), size):
        yield np.arange(start, min(start + size, len(vectors)), dtype=np.int64) * 3 + 7, vectors[start:start + size]


def trained(vectors: np.ndarray, factory: str = "IVF32,Flat") -> faiss.Index:
    index = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
    index.train(vectors[:2000])
    return index


def top(index: faiss.Index, queries: np.ndarray, k: int = 10, nprobe: int = 4) -> list[list[tuple[float, int]]]:
    faiss.ParameterSpace().set_index_parameter(index, "nprobe", nprobe)
    scores, ids = index.search(queries, k)
    return [sorted(zip(np.round(s, 5).tolist(), i.tolist())) for s, i in zip(scores, ids)]


@pytest.mark.parametrize("factory", ["IVF32,Flat", "IVF32_HNSW32,SQ8"])
def test_shards_merged_equal_one_add(factory):
    base, queries = unit(5000, 0), unit(20, 1)
    one = trained(base, factory)
    for ids, vectors in blocks(base, 700):
        one.add_with_ids(vectors, ids)
    sharded = fill_sharded(trained(base, factory), blocks(base, 700), shards=3)
    assert sharded.ntotal == one.ntotal == len(base)
    assert top(sharded, queries) == top(one, queries)  # same lists, same candidates, same hits


def test_all_lists_probed_is_exact_search():
    base, queries = unit(3000, 2), unit(10, 3)
    sharded = fill_sharded(trained(base), blocks(base, 500), shards=2)
    exact = faiss.IndexIDMap(faiss.IndexFlatIP(DIM))
    exact.add_with_ids(base, np.arange(len(base), dtype=np.int64) * 3 + 7)
    _, want = exact.search(queries, 10)
    assert [{i for _, i in row} for row in top(sharded, queries, nprobe=32)] == [set(row) for row in want.tolist()]


def test_fill_sharded_needs_an_empty_trained_ivf():
    with pytest.raises(ValueError):
        fill_sharded(faiss.IndexFlatIP(DIM), [])


def test_grace_index_fills_a_large_ivf_in_shards(info, tmp_path, monkeypatch):
    vectors = unit(1200, 4)
    chunks = [Chunk(id=f"c{i}", text=f"chunk {i}") for i in range(len(vectors))]
    results, calls = {}, []

    def counted(index, blocks):
        calls.append(index.ntotal)
        return fill_sharded(index, blocks)

    monkeypatch.setattr(grace_index_module, "fill_sharded", counted)
    for name, threshold in (("one", 10**9), ("sharded", 1000)):
        monkeypatch.setattr(grace_index_module, "SHARDED_MIN", threshold)
        with GraceIndex.create(tmp_path / name, info, factory="IVF16,Flat") as index:
            index.add(chunks, vectors)
            index.save()
        with GraceIndex.open(tmp_path / name) as index:
            results[name] = [[(h.id, round(h.score, 5)) for h in index.search(q, k=5)] for q in vectors[:15]]
    assert calls == [0]  # only the index above the threshold went through the shards
    assert results["sharded"] == results["one"]
