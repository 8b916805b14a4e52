"""The FAISS index-type choice and the factory helpers."""

import faiss
import numpy as np
import pytest

from grace_rag.errors import GraceIndexError
from grace_rag.indexes.factory import (
    EXACT_MAX, HNSW_MAX, SearchParams, apply_search_params, build_index, choose_factory, ivf_lists, supports_removal,
)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, "Flat"), (1, "Flat"), (EXACT_MAX, "Flat"), (EXACT_MAX + 1, "HNSW32"), (1_000_000, "HNSW32"),
     (HNSW_MAX, "HNSW32"), (HNSW_MAX + 1, "IVF8192_HNSW32,SQ8"), (100_000_000, "IVF65536_HNSW32,SQ8")],
)
def test_choice_follows_corpus_size(n, expected):
    assert choose_factory(n) == expected


def test_ivf_lists_is_a_power_of_two_near_eight_sqrt_n():
    # 8 * sqrt(1e6) = 8000 -> 8192; 8 * sqrt(1e4) = 800 -> 1024; 8 * sqrt(4e6) = 16000 -> 16384
    assert [ivf_lists(n) for n in (10_000, 1_000_000, 4_000_000)] == [1024, 8192, 16384]


def test_negative_size_is_an_error():
    with pytest.raises(GraceIndexError):
        choose_factory(-1)


def test_every_automatic_choice_builds_with_inner_product():
    for n in (10, 50_000, 5_000_000):
        index = build_index(choose_factory(n), 16)
        assert index.metric_type == faiss.METRIC_INNER_PRODUCT
        assert index.d == 16


def test_invalid_factory_is_a_clear_error():
    with pytest.raises(GraceIndexError, match="invalid FAISS factory string 'Nonsense42'"):
        build_index("Nonsense42", 8)


def test_hnsw_cannot_remove_but_flat_and_ivf_can():
    assert not supports_removal(build_index("HNSW32", 8))
    assert supports_removal(build_index("Flat", 8))
    assert supports_removal(build_index("IVF4,Flat", 8))


def test_search_params_reach_hnsw_and_ivf():
    hnsw = build_index("HNSW16", 8)
    apply_search_params(hnsw, SearchParams(ef_search=77, nprobe=3))
    assert faiss.downcast_index(hnsw.index).hnsw.efSearch == 77
    ivf = build_index("IVF4,Flat", 8)
    ivf.train(np.random.default_rng(0).standard_normal((200, 8)).astype("float32"))
    apply_search_params(ivf, SearchParams(ef_search=77, nprobe=3))
    assert faiss.extract_index_ivf(ivf).nprobe == 3
