"""nprobe "auto": measured on the index's own vectors when an IVF index is built."""

import faiss
import numpy as np
import pytest

from grace_rag.indexes import GraceIndex, SearchParams
from grace_rag.indexes.nprobe import calibrate_nprobe, exact_neighbours
from grace_rag.indexes.factory import (
    FALLBACK_NPROBE, TARGET_RECALL, apply_search_params, search_parameters, set_nprobe,
)
from grace_rag.indexes.records import Chunk

DIM = 16


def embedding_like(n: int, seed: int, latent: int = 8) -> np.ndarray:
    """Unit vectors near a ``latent``-dimensional subspace (as in benchmarks/index_speed.py)."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).standard_normal((latent, DIM))
    x = rng.standard_normal((n, latent)) @ basis / np.sqrt(latent) + 0.1 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def blocks(ids: np.ndarray, vectors: np.ndarray, size: int = 700):
    for start in range(0, len(vectors), size):
        yield ids[start:start + size], vectors[start:start + size]


def brute_force_recall(index: faiss.Index, nprobe: int, query_ids: np.ndarray, queries: np.ndarray,
                       ids: np.ndarray, base: np.ndarray, k: int = 10) -> float:
    """recall@k computed independently: full similarity matrix, own entry removed by id."""
    sims = queries @ base.T
    sims[query_ids[:, None] == ids[None, :]] = -np.inf
    truth = ids[np.argsort(-sims, axis=1, kind="stable")[:, :k]]
    faiss.extract_index_ivf(index).nprobe = nprobe
    _, found = index.search(queries, k + 1)
    got = [[i for i in row if i != own][:k] for own, row in zip(query_ids.tolist(), found.tolist())]
    return sum(len(set(g) & set(t)) for g, t in zip(got, truth.tolist())) / truth.size


@pytest.fixture(scope="module")
def filled():
    base = embedding_like(6000, 0)
    ids = np.arange(len(base), dtype=np.int64) * 5 + 3  # store ids are not row numbers
    index = faiss.index_factory(DIM, "IVF64,Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(base)
    index.add_with_ids(base, ids)
    picks = np.arange(0, len(base), 30)
    return index, ids, base, ids[picks], base[picks]


def test_exact_neighbours_leave_the_query_out_and_match_brute_force(filled):
    _, ids, base, query_ids, queries = filled
    got = exact_neighbours(blocks(ids, base), query_ids, queries, k=5)
    sims = queries @ base.T
    sims[query_ids[:, None] == ids[None, :]] = -np.inf
    want = ids[np.argsort(-sims, axis=1, kind="stable")[:, :5]]
    assert (got == want).all() and not (got == query_ids[:, None]).any()


def test_calibrated_nprobe_is_the_smallest_power_of_two_reaching_the_target(filled):
    index, ids, base, query_ids, queries = filled
    nprobe, recall = calibrate_nprobe(index, lambda: blocks(ids, base), query_ids, queries)
    assert 1 < nprobe < 64  # neither everything nor one list on this data
    assert recall == pytest.approx(brute_force_recall(index, nprobe, query_ids, queries, ids, base))
    assert recall >= TARGET_RECALL
    assert brute_force_recall(index, nprobe // 2, query_ids, queries, ids, base) < TARGET_RECALL


def test_an_unreachable_target_stops_where_more_lists_find_nothing(filled):
    index, ids, base, query_ids, queries = filled
    nprobe, recall = calibrate_nprobe(index, lambda: blocks(ids, base), query_ids, queries, target=1.01)
    assert recall == pytest.approx(1.0) and nprobe <= 64  # exact from here on
    assert brute_force_recall(index, nprobe // 2, query_ids, queries, ids, base) < 1.0


def test_a_coarse_hnsw_quantizer_is_told_to_find_every_probed_list():
    """At faiss's default quantizer efSearch (16) a graph of 1,024 lists asked for all of them returned
    ~230: nprobe stopped mattering (recall@10 stuck at 0.78 on 1M vectors, 0.63 on 10M)."""
    base = embedding_like(60000, 5)
    index = faiss.index_factory(DIM, "IVF1024_HNSW32,Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(base)
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(index).quantizer)
    for nprobe in (64, 1024):
        set_nprobe(index, nprobe)
        _, lists = quantizer.search(base[:20], nprobe)
        assert (lists >= 0).all()  # every list asked for is found
        params = search_parameters(index, SearchParams(nprobe=nprobe), faiss.IDSelectorRange(0, len(base)))
        assert params.nprobe == nprobe and params.keep_quantizer_params.efSearch >= nprobe


def make_index(path, info, vectors, search=None):
    chunks = [Chunk(id=f"c{i}", text=f"chunk {i}") for i in range(len(vectors))]
    with GraceIndex.create(path, info, factory="IVF16,Flat", search=search) as index:
        index.add(chunks, vectors)
        index.save()


def test_grace_index_measures_nprobe_at_build_and_keeps_it(info, tmp_path):
    make_index(tmp_path / "ix", info, embedding_like(2000, 1))
    with GraceIndex.open(tmp_path / "ix") as index:
        search = index.manifest.search
        assert search.nprobe == 0 and 1 <= search.tuned_nprobe <= 16 and search.tuned_recall >= TARGET_RECALL
        assert faiss.extract_index_ivf(index._index).nprobe == search.tuned_nprobe  # what searches use
        assert index.info()["search"]["tuned_nprobe"] == search.tuned_nprobe


def test_an_explicit_nprobe_is_kept_and_not_measured(info, tmp_path):
    make_index(tmp_path / "ix", info, embedding_like(2000, 1), search=SearchParams(nprobe=3))
    with GraceIndex.open(tmp_path / "ix") as index:
        assert index.manifest.search.nprobe == 3 and index.manifest.search.tuned_nprobe == 0
        assert faiss.extract_index_ivf(index._index).nprobe == 3


def test_an_older_manifest_without_measurement_searches_with_its_stored_or_fallback_nprobe():
    assert SearchParams.from_dict({"ef_search": 256, "nprobe": 32}).effective_nprobe == 32  # written before "auto"
    assert SearchParams.from_dict({}).effective_nprobe == FALLBACK_NPROBE  # auto, not measured yet
    ivf = faiss.index_factory(DIM, "IVF4,Flat", faiss.METRIC_INNER_PRODUCT)
    apply_search_params(ivf, SearchParams(tuned_nprobe=2, tuned_recall=0.97))
    assert faiss.extract_index_ivf(ivf).nprobe == 2


def test_a_manifest_recreated_from_the_store_measures_nprobe_again(info, tmp_path):
    make_index(tmp_path / "ix", info, embedding_like(2000, 1))
    with GraceIndex.open(tmp_path / "ix") as index:
        measured = index.manifest.search.tuned_nprobe
    (tmp_path / "ix" / "manifest.json").unlink()  # recreated from chunks.sqlite, without the measurement
    with GraceIndex.open(tmp_path / "ix") as index:
        assert index.manifest.search.tuned_nprobe == measured
        assert faiss.extract_index_ivf(index._index).nprobe == measured
