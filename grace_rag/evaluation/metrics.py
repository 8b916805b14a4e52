"""Retrieval metrics via pytrec_eval (as MTEB computes them) and STS Spearman correlation.

nDCG@10, Recall@10 and Recall@100 are trec_eval's ``ndcg_cut_10``, ``recall_10`` and
``recall_100`` (gain = relevance, discount = log2(rank + 1)). trec_eval's ``recip_rank``
has no cutoff, so MRR@10 is ``recip_rank`` on the run truncated to its top 10, which is how
MTEB and BEIR report it. Scores are averaged over every judged query; a judged query missing
from the run counts as 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from grace_rag.errors import DataError

logger = logging.getLogger(__name__)

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]

#: Our metric name -> (pytrec_eval measure to request, key in its output, cutoff of the run).
RETRIEVAL_MEASURES: dict[str, tuple[str, str, int | None]] = {
    "ndcg@10": ("ndcg_cut.10", "ndcg_cut_10", None),
    "recall@10": ("recall.10", "recall_10", None),
    "recall@100": ("recall.100", "recall_100", None),
    "mrr@10": ("recip_rank", "recip_rank", 10),
}


def _pytrec_eval():
    try:
        import pytrec_eval
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("retrieval metrics need pytrec_eval; install it with: "
                          "pip install 'grace-rag[eval]'") from exc
    return pytrec_eval


def truncate_run(run: Run, k: int) -> Run:
    """Keep each query's top ``k`` documents, ordered as trec_eval orders them.

    trec_eval sorts by score descending and breaks ties by document id descending.
    """
    truncated: Run = {}
    for query_id, scores in run.items():
        ranked = sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)
        truncated[query_id] = dict(ranked[:k])
    return truncated


def per_query_metrics(qrels: Qrels, run: Run) -> dict[str, dict[str, float]]:
    """Each metric of :data:`RETRIEVAL_MEASURES` for each judged query (0 if not retrieved)."""
    if not qrels:
        raise DataError("no relevance judgements to evaluate against")
    pytrec_eval = _pytrec_eval()
    results: dict[str, dict[str, float]] = {qid: {} for qid in qrels}
    for name, (measure, key, cutoff) in RETRIEVAL_MEASURES.items():
        scored_run = truncate_run(run, cutoff) if cutoff else run
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, {measure})
        scores = evaluator.evaluate(scored_run)
        for query_id in qrels:
            results[query_id][name] = float(scores.get(query_id, {}).get(key, 0.0))
    return results


def retrieval_metrics(qrels: Qrels, run: Run) -> dict[str, float]:
    """Mean nDCG@10, Recall@10, Recall@100 and MRR@10 over the judged queries."""
    per_query = per_query_metrics(qrels, run)
    return {name: float(np.mean([scores[name] for scores in per_query.values()]))
            for name in RETRIEVAL_MEASURES}


def cosine_pairs(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``(n, d)`` arrays; a zero vector scores 0."""
    first = np.asarray(first, dtype=np.float64)  # (n, d)
    second = np.asarray(second, dtype=np.float64)  # (n, d)
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)  # (n,)
    dots = np.einsum("nd,nd->n", first, second)  # (n,)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def spearman(gold: Sequence[float], predicted: Sequence[float]) -> float:
    """Spearman rank correlation between gold scores and predicted similarities."""
    from scipy.stats import spearmanr

    if len(gold) != len(predicted):
        raise DataError(f"got {len(gold)} gold scores but {len(predicted)} predictions")
    if len(gold) < 2:
        raise DataError("Spearman correlation needs at least 2 pairs")
    value = spearmanr(gold, predicted).statistic
    if not np.isfinite(value):
        logger.warning("Spearman correlation undefined (constant scores); reporting 0")
        return 0.0
    return float(value)
