"""Run models on a dataset and return result dicts: quality metrics plus indexing speed.

``evaluate_retrieval(model, dataset)`` is the entry point the trainer calls; ``run_eval``
is what ``grace-rag eval`` delegates to: load the data, cut a subset, load each model,
evaluate it, and return one JSON-able payload.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grace_rag.config import EncoderConfig
from grace_rag.errors import ConfigError
from grace_rag.evaluation.adapters import (
    DenseRetriever,
    Embedder,
    LoadedModel,
    Retriever,
    as_retriever,
    load_model,
)
from grace_rag.evaluation.datasets import BeirDataset, StsDataset, load_dataset
from grace_rag.evaluation.metrics import cosine_pairs, retrieval_metrics, spearman
from grace_rag.evaluation.rationale_quality import FluencyScorers, rationale_figures, summarize
from grace_rag.evaluation.subset import SubsetSpec, build_subset, subset_sts

logger = logging.getLogger(__name__)

RETRIEVAL_DEPTH = 100


def _rate(count: int, seconds: float) -> float:
    return float(count / seconds) if seconds > 0 else float("inf")


def evaluate_retrieval(model: Retriever | Embedder, dataset: BeirDataset,
                       depth: int = RETRIEVAL_DEPTH) -> dict[str, Any]:
    """nDCG@10, Recall@10/100 and MRR@10 of ``model`` on ``dataset``, with timings.

    ``model`` is a retriever (``index``/``search``) or an embedder such as a GraceEncoder
    (``encode_queries``/``encode_documents``), searched exactly by inner product.
    """
    return _retrieval(as_retriever(model), dataset, depth)


def _retrieval(retriever: Retriever, dataset: BeirDataset, depth: int = RETRIEVAL_DEPTH) -> dict[str, Any]:
    doc_ids = list(dataset.corpus)
    query_ids = list(dataset.queries)
    started = time.perf_counter()
    retriever.index([dataset.corpus[doc_id] for doc_id in doc_ids])
    index_s = time.perf_counter() - started
    started = time.perf_counter()
    positions, scores = retriever.search([dataset.queries[qid] for qid in query_ids], depth)
    search_s = time.perf_counter() - started
    run = {qid: {doc_ids[int(p)]: float(s) for p, s in zip(row_p, row_s, strict=True)}
           for qid, row_p, row_s in zip(query_ids, positions, scores, strict=True)}
    return {**retrieval_metrics(dataset.qrels, run),
            "docs_per_s": _rate(len(doc_ids), index_s),
            "queries_per_s": _rate(len(query_ids), search_s),
            "n_queries": len(query_ids), "n_docs": len(doc_ids)}


def evaluate_grace_retrieval(encoder: Any, dataset: BeirDataset, fluency: Any | None = None) -> dict[str, Any]:
    """``evaluate_retrieval`` of a GraceEncoder plus the quality of its document rationales.

    Adds the rationale columns of :func:`~grace_rag.evaluation.rationale_quality.summarize`
    (``fluency`` is a FluencyScorer of the untrained base model, or None to skip perplexity) and
    ``rationale_contribution``: nDCG@10 minus nDCG@10 of the same encoder without rationales.
    """
    retriever = DenseRetriever(encoder)
    metrics = _retrieval(retriever, dataset)
    if encoder.config.max_rationale_tokens == 0 or retriever.rationales is None:
        return metrics
    docs = [dataset.corpus[d] for d in dataset.corpus]
    rationales = retriever.rationales
    figures = rationale_figures(docs, rationales, tokenizer=encoder.backbone.tokenizer,
                                limit=encoder.config.max_rationale_tokens, fluency=fluency)
    plain = _retrieval(DenseRetriever(encoder.without_rationales()), dataset)["ndcg@10"]
    return {**metrics, **summarize(figures, empty=sum(not r for r in rationales)),
            "ndcg@10_no_rationale": plain, "rationale_contribution": metrics["ndcg@10"] - plain}


def evaluate_sts(model: Embedder, dataset: StsDataset) -> dict[str, Any]:
    """Spearman correlation between gold scores and the cosine of the pair embeddings.

    Both sentences are encoded in the document role (STS is symmetric).
    """
    if not isinstance(model, Embedder):
        raise ConfigError(f"{type(model).__name__} does not embed texts, so it cannot score "
                          "STS pairs; use an embedding model (minilm, default, a path)")
    texts = [text for pair in dataset.pairs for text in pair]
    started = time.perf_counter()
    vectors = np.asarray(model.encode_documents(texts), dtype=np.float32)  # (2n, D)
    encode_s = time.perf_counter() - started
    similarity = cosine_pairs(vectors[0::2], vectors[1::2])  # (n,)
    return {"spearman": spearman(dataset.scores, similarity.tolist()),
            "docs_per_s": _rate(len(texts), encode_s), "n_pairs": len(dataset.pairs)}


def evaluate_loaded(loaded: LoadedModel, dataset: BeirDataset | StsDataset,
                    fluency: FluencyScorers | None = None) -> dict[str, Any]:
    """One result row: the model's label, its metrics, timings and settings.

    A GraceEncoder on a retrieval dataset also gets its rationale columns when ``fluency`` is
    given (the scorers of the untrained base models, shared by the rows of one run).
    """
    logger.info("evaluating %s on %s", loaded.label, dataset.name)
    if isinstance(dataset, StsDataset):
        if not isinstance(loaded.model, Embedder):
            logger.warning("%s cannot score STS pairs; skipped", loaded.label)
            return {"model": loaded.label, "spearman": None, "docs_per_s": None,
                    "skipped": "not an embedding model", "settings": loaded.settings}
        metrics = evaluate_sts(loaded.model, dataset)
    elif fluency is not None and _is_grace(loaded.model):
        metrics = evaluate_grace_retrieval(loaded.model, dataset, fluency.for_encoder(loaded.model))
    else:
        metrics = evaluate_retrieval(loaded.model, dataset)
    return {"model": loaded.label, **metrics, "settings": loaded.settings}


def _is_grace(model: Any) -> bool:
    from grace_rag.encoder import GraceEncoder

    return isinstance(model, GraceEncoder)


@dataclass(frozen=True)
class EvalRequest:
    """Everything ``grace-rag eval`` needs: where the data is, which models, which subset."""

    dataset: Path
    models: list[str] = field(default_factory=lambda: ["default"])
    split: str = "test"
    subset: int | None = None  # queries (retrieval) or pairs (STS); None = the whole split
    corpus_size: int | None = None
    distractors: int = 5  # BM25 distractors per query in a retrieval subset
    seed: int = 0
    grace: EncoderConfig = field(default_factory=EncoderConfig)  # its explicit fields apply to GraceEncoder models
    fusion: Any = None  # FusionConfig for hybrid:NAME models (None: the index's defaults)
    rationale_metrics: bool = True  # GraceEncoder rows also report the quality of their rationales

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("no models to evaluate; pass --model at least once")
        if self.subset is not None and self.subset < 1:
            raise ConfigError(f"--subset must be a positive number, got {self.subset}")


def prepare_dataset(request: EvalRequest) -> BeirDataset | StsDataset:
    """Load the dataset of ``request`` and cut the requested subset."""
    dataset = load_dataset(request.dataset, request.split)
    if request.subset is None:
        if request.corpus_size is not None or request.distractors != EvalRequest.distractors:
            raise ConfigError("--corpus-size and --distractors apply to a subset; pass --subset N as well")
        return dataset
    if isinstance(dataset, StsDataset):
        return subset_sts(dataset, request.subset, request.seed)
    spec = SubsetSpec(n_queries=request.subset, corpus_size=request.corpus_size,
                      distractors_per_query=request.distractors, seed=request.seed)
    return build_subset(dataset, spec)


def run_eval(request: EvalRequest) -> dict[str, Any]:
    """Evaluate every requested model; returns ``{"dataset", "split", "task", "subset", "results"}``."""
    dataset = prepare_dataset(request)
    fluency = FluencyScorers() if request.rationale_metrics else None
    results = [evaluate_loaded(load_model(name, request.grace, request.fusion), dataset, fluency)
               for name in request.models]
    return {"dataset": dataset.name, "split": dataset.split,
            "task": "sts" if isinstance(dataset, StsDataset) else "retrieval",
            "subset": dataset.subset, "results": results}
