"""The runner: retrieval and STS results from retrievers, embedders and a tiny GraceEncoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from grace_rag.errors import ConfigError
from grace_rag.evaluation.adapters import BM25Retriever, DenseRetriever, top_k
from grace_rag.evaluation.loading import load_model
from grace_rag.evaluation.datasets import load_beir, load_sts
from grace_rag.evaluation.runner import (
    EvalRequest,
    evaluate_loaded,
    evaluate_retrieval,
    evaluate_sts,
    run_eval,
)

RETRIEVAL_KEYS = {"ndcg@10", "recall@10", "recall@100", "mrr@10", "docs_per_s"}


def test_top_k_orders_best_first_and_is_stable():
    scores = np.array([[0.1, 0.9, 0.5, 0.9]])
    positions, values = top_k(scores, 3)
    assert positions.tolist() == [[1, 3, 2]] and values.tolist() == [[0.9, 0.9, 0.5]]


def test_dense_search_finds_identical_text(bow):
    retriever = DenseRetriever(bow)
    retriever.index(["red apple pie", "blue ocean wave", "green forest path"])
    positions, _ = retriever.search(["blue ocean wave", "green forest path"], k=2)
    assert positions[:, 0].tolist() == [1, 2]


def test_search_before_index_is_an_error(bow):
    with pytest.raises(ConfigError, match="before index"):
        DenseRetriever(bow).search(["x"], 1)


def test_bm25_on_topical_data_is_near_perfect(beir_dir: Path):
    result = evaluate_retrieval(BM25Retriever(), load_beir(beir_dir))
    assert RETRIEVAL_KEYS <= set(result)
    assert result["recall@10"] == pytest.approx(1.0)
    assert result["ndcg@10"] > 0.9 and result["n_docs"] == 110


def test_embedder_is_searched_by_inner_product(beir_dir: Path, bow):
    result = evaluate_retrieval(bow, load_beir(beir_dir))
    assert 0.0 <= result["ndcg@10"] <= 1.0 and result["recall@100"] == pytest.approx(1.0)
    assert ("document", 110) in bow.calls and ("query", 10) in bow.calls


def test_sts_spearman_with_embedder(sts_file: Path, bow):
    result = evaluate_sts(bow, load_sts(sts_file))
    assert result["n_pairs"] == 4 and -1.0 <= result["spearman"] <= 1.0
    assert bow.calls == [("document", 8)]


def test_bm25_cannot_score_sts(sts_file: Path):
    row = evaluate_loaded(load_model("bm25"), load_sts(sts_file))
    assert row["spearman"] is None and "skipped" in row
    with pytest.raises(ConfigError, match="cannot score STS"):
        evaluate_sts(BM25Retriever(), load_sts(sts_file))


def test_tiny_grace_encoder_end_to_end(beir_dir: Path):
    from grace_rag.testing import tiny_encoder

    result = evaluate_retrieval(tiny_encoder(), load_beir(beir_dir))
    for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10"):
        assert 0.0 <= result[key] <= 1.0
    assert result["docs_per_s"] > 0


def test_run_eval_records_the_subset(beir_dir: Path):
    payload = run_eval(EvalRequest(dataset=beir_dir, models=["bm25"], subset=3, seed=1))
    assert payload["task"] == "retrieval" and payload["subset"]["queries"] == 3
    assert [row["model"] for row in payload["results"]] == ["bm25"]


def test_corpus_size_without_subset_is_rejected(beir_dir: Path):
    with pytest.raises(ConfigError, match="pass --subset"):
        run_eval(EvalRequest(dataset=beir_dir, models=["bm25"], corpus_size=10))
    with pytest.raises(ConfigError, match="pass --subset"):
        run_eval(EvalRequest(dataset=beir_dir, models=["bm25"], distractors=1))
