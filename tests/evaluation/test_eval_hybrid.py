"""Hybrid retrieval in the evaluation harness: the index's fusion and BM25, hybrid:NAME models, eval CLI options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from grace_rag.cli.eval import register
from grace_rag.errors import ConfigError
from grace_rag.evaluation import HybridRetriever, load_beir, load_model
from grace_rag.evaluation.adapters import BM25Retriever, DenseRetriever
from grace_rag.evaluation.runner import evaluate_retrieval
from grace_rag.indexes.fusion import FusionConfig, FusionMethod


def texts(beir_dir: Path) -> tuple[list[str], list[str]]:
    dataset = load_beir(beir_dir)
    return list(dataset.corpus.values()), list(dataset.queries.values())


def test_alpha_one_is_the_dense_ranking_and_alpha_zero_the_bm25_ranking(beir_dir, bow):
    docs, queries = texts(beir_dir)
    dense, bm25 = DenseRetriever(bow), BM25Retriever()
    dense.index(docs)
    bm25.index(docs)
    by_dense = HybridRetriever(bow, FusionConfig(method=FusionMethod.WEIGHTED, alpha=1.0))
    by_dense.index(docs)
    assert by_dense.search(queries, 3)[0].tolist() == dense.search(queries, 3)[0].tolist()
    by_bm25 = HybridRetriever(bow, FusionConfig(method=FusionMethod.WEIGHTED, alpha=0.0))
    by_bm25.index(docs)
    _, lexical = by_bm25.rankings(queries, 100)
    positions, _ = by_bm25.search(queries, 2)
    want, want_scores = bm25.search(queries, 2)  # bm25s breaks ties its own way: compare the scores
    for row, ranking, scores in zip(positions, lexical, want_scores):
        got = dict(ranking)
        np.testing.assert_allclose([got[int(p)] for p in row], scores, rtol=1e-5)


def test_hybrid_of_a_weak_embedder_and_bm25_beats_the_embedder(beir_dir, bow):
    dataset = load_beir(beir_dir)
    dense = evaluate_retrieval(bow, dataset)["ndcg@10"]
    for method in FusionMethod:
        fused = evaluate_retrieval(HybridRetriever(bow, FusionConfig(method=method)), dataset)
        assert fused["ndcg@10"] >= dense and fused["n_docs"] == len(dataset.corpus)


def test_search_returns_k_columns_even_when_bm25_matches_little(bow):
    hybrid = HybridRetriever(bow)
    hybrid.index(["red apple pie", "blue ocean wave", "green forest path", "yellow sun"])
    positions, scores = hybrid.search(["zebra", "blue ocean"], 3)
    assert positions.shape == scores.shape == (2, 3) and positions[1, 0] == 1


def test_hybrid_model_names(model_dir):
    loaded = load_model(f"hybrid:{model_dir}", fusion=FusionConfig(method="rrf"))
    assert loaded.label == f"hybrid:{model_dir}" and isinstance(loaded.model, HybridRetriever)
    assert loaded.settings["fusion"] == "rrf" and "fingerprint" in loaded.settings
    with pytest.raises(ConfigError, match="hybrid:bm25 needs an embedding model"):
        load_model("hybrid:bm25")


def app() -> typer.Typer:
    application = typer.Typer()
    register(application)
    application.command("noop")(lambda: None)
    return application


def test_eval_cli_scores_hybrid_with_its_fusion_options(beir_dir, model_dir):
    args = ["eval", str(beir_dir), "-m", "bm25", "-m", f"hybrid:{model_dir}", "--max-rationale-tokens", "2",
            "--alpha", "0.25", "--json"]
    result = CliRunner().invoke(app(), args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["results"]
    assert [r["model"] for r in rows] == ["bm25", f"hybrid:{model_dir}[rt=2]"]
    assert rows[1]["settings"]["fusion"] == "weighted" and rows[1]["settings"]["alpha"] == 0.25
    assert rows[1]["settings"]["max_rationale_tokens"] == 2 and 0 <= rows[1]["ndcg@10"] <= 1
    bad = CliRunner().invoke(app(), ["eval", str(beir_dir), "-m", f"hybrid:{model_dir}", "--fusion", "rrf", "--alpha", "0.5"])
    assert bad.exit_code != 0 and "drop alpha" in str(bad.exception)


def test_fused_scores_follow_the_fused_order(beir_dir, bow):
    docs, queries = texts(beir_dir)
    hybrid = HybridRetriever(bow)
    hybrid.index(docs)
    _, scores = hybrid.search(queries, 10)
    assert np.all(np.diff(scores, axis=1) <= 0)
