"""Metrics against hand-computed values and against trec_eval's nDCG definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grace_rag.errors import DataError
from grace_rag.evaluation.metrics import (
    cosine_pairs,
    per_query_metrics,
    retrieval_metrics,
    spearman,
    truncate_run,
)


def ranked_run(doc_ids: list[str]) -> dict[str, float]:
    """Scores that rank ``doc_ids`` in the given order."""
    return {doc: float(len(doc_ids) - i) for i, doc in enumerate(doc_ids)}


def trec_ndcg(ranking: list[str], judged: dict[str, int], k: int) -> float:
    """trec_eval ndcg_cut: gain = relevance, discount = log2(rank + 1), ideal from the qrels."""
    dcg = sum(judged.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(ranking[:k], 1))
    ideal = sorted((rel for rel in judged.values() if rel > 0), reverse=True)[:k]
    idcg = sum(rel / math.log2(rank + 1) for rank, rel in enumerate(ideal, 1))
    return dcg / idcg if idcg else 0.0


def test_hand_computed_single_query():
    qrels = {"q": {"d1": 1, "d3": 2, "d9": 0}}
    run = {"q": ranked_run(["d2", "d4", "d1", "d3"])}
    scores = retrieval_metrics(qrels, run)
    dcg = 1 / math.log2(4) + 2 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert scores["ndcg@10"] == pytest.approx(dcg / idcg)
    assert scores["recall@10"] == pytest.approx(1.0)
    assert scores["mrr@10"] == pytest.approx(1 / 3)


def test_recall_and_mrr_cutoffs():
    ranking = [f"n{i}" for i in range(10)] + ["p1"] + [f"m{i}" for i in range(50)] + ["p2"]
    qrels = {"q": {"p1": 1, "p2": 1, "p3": 1, "n0": 0}}
    scores = retrieval_metrics(qrels, {"q": ranked_run(ranking)})
    assert scores["recall@10"] == 0.0
    assert scores["recall@100"] == pytest.approx(2 / 3)  # p3 never retrieved
    assert scores["mrr@10"] == 0.0  # first relevant at rank 11
    assert scores["ndcg@10"] == 0.0


def test_mean_over_queries_counts_unretrieved_queries_as_zero():
    qrels = {"a": {"x": 1}, "b": {"y": 1}}
    run = {"a": ranked_run(["x", "z"])}  # "b" missing from the run
    scores = retrieval_metrics(qrels, run)
    assert scores["ndcg@10"] == pytest.approx(0.5)
    assert scores["mrr@10"] == pytest.approx(0.5)
    assert per_query_metrics(qrels, run)["b"]["recall@100"] == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_ndcg_matches_trec_eval_definition_with_graded_relevance(seed: int):
    rng = np.random.default_rng(seed)
    docs = [f"d{i:02d}" for i in range(40)]
    qrels, run, expected = {}, {}, []
    for q in range(6):
        judged = {doc: int(rng.integers(0, 4)) for doc in rng.choice(docs, 8, replace=False)}
        ranking = list(rng.permutation(docs)[:25])
        qrels[f"q{q}"] = judged
        run[f"q{q}"] = ranked_run(ranking)
        expected.append(trec_ndcg(ranking, judged, 10))
    assert retrieval_metrics(qrels, run)["ndcg@10"] == pytest.approx(np.mean(expected))


def test_truncate_breaks_ties_like_trec_eval():
    run = {"q": {"a": 1.0, "c": 1.0, "b": 1.0, "z": 0.5}}
    assert list(truncate_run(run, 2)["q"]) == ["c", "b"]  # equal scores: doc id descending


def test_mrr_cut_uses_trec_eval_order_on_ties():
    qrels = {"q": {"a": 1}}
    run = {"q": {f"t{i:02d}": 1.0 for i in range(10)} | {"a": 1.0}}
    # all tie; trec_eval puts "a" last (id descending), i.e. at rank 11
    assert retrieval_metrics(qrels, run)["mrr@10"] == 0.0


def test_empty_qrels_rejected():
    with pytest.raises(DataError, match="no relevance judgements"):
        retrieval_metrics({}, {"q": {"a": 1.0}})


def test_spearman_hand_computed():
    gold = [1.0, 2.0, 3.0, 4.0]
    assert spearman(gold, [0.1, 0.2, 0.3, 0.9]) == pytest.approx(1.0)
    assert spearman(gold, [0.9, 0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    # ranks (1,2,3,4) vs (2,1,3,4): d^2 sum = 2 -> 1 - 6*2 / (4*15) = 0.8
    assert spearman(gold, [0.2, 0.1, 0.3, 0.4]) == pytest.approx(0.8)


def test_spearman_rejects_mismatched_lengths():
    with pytest.raises(DataError, match="3 gold scores but 2"):
        spearman([1, 2, 3], [1, 2])


def test_cosine_pairs_and_zero_vectors():
    first = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    second = np.array([[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0]])
    assert cosine_pairs(first, second) == pytest.approx([1.0, -1.0, 0.0])
