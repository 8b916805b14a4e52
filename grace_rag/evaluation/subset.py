"""NanoBEIR-style subsets: a seeded sample of queries, all their positives, BM25 distractors, fill.

A generative encoder costs about a second per document on a laptop CPU, so the full corpus
of even a small BEIR task takes hours. A subset keeps the retrieval problem honest (hard
negatives from BM25 plus random documents) at a size that runs in minutes. The same inputs
always give the same subset, and the subset's description, with a digest of the chosen ids,
travels with every result.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import asdict, dataclass

from grace_rag.errors import ConfigError
from grace_rag.evaluation.adapters import BM25Retriever
from grace_rag.evaluation.datasets import BeirDataset, StsDataset

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubsetSpec:
    """How to cut a subset: sizes and the seed."""

    n_queries: int
    corpus_size: int | None = None  # None: 10 x n_queries documents
    distractors_per_query: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_queries < 1:
            raise ConfigError(f"subset needs at least 1 query, got {self.n_queries}")
        if self.distractors_per_query < 0:
            raise ConfigError("distractors_per_query must be >= 0, "
                              f"got {self.distractors_per_query}")
        if self.corpus_size is not None and self.corpus_size < 1:
            raise ConfigError(f"subset corpus size must be >= 1, got {self.corpus_size}")

    @property
    def target_size(self) -> int:
        return self.corpus_size if self.corpus_size is not None else 10 * self.n_queries


def _digest(*groups: list[str]) -> str:
    hasher = hashlib.sha256()
    for group in groups:
        hasher.update("\n".join(group).encode("utf-8"))
        hasher.update(b"\x00")
    return hasher.hexdigest()[:12]


def sample_queries(dataset: BeirDataset, n_queries: int, seed: int) -> list[str]:
    """A seeded sample of the queries that have at least one positive, in sorted id order."""
    eligible = sorted(qid for qid, docs in dataset.qrels.items()
                      if any(score > 0 for score in docs.values()))
    if n_queries >= len(eligible):
        return eligible
    return sorted(random.Random(seed).sample(eligible, n_queries))


def bm25_distractors(dataset: BeirDataset, query_ids: list[str], per_query: int,
                     exclude: set[str]) -> list[list[str]]:
    """For each query, its top ``per_query`` BM25 documents that are not in ``exclude``."""
    if per_query == 0:
        return [[] for _ in query_ids]
    doc_ids = list(dataset.corpus)
    retriever = BM25Retriever()
    retriever.index([dataset.corpus[doc_id] for doc_id in doc_ids])
    depth = min(len(doc_ids), per_query + len(exclude))
    positions, scores = retriever.search([dataset.queries[qid] for qid in query_ids], depth)
    ranked = []
    for row_positions, row_scores in zip(positions, scores, strict=True):
        hits = [doc_ids[p] for p, s in zip(row_positions, row_scores, strict=True)
                if s > 0 and doc_ids[p] not in exclude]
        ranked.append(hits[:per_query])
    return ranked


def _round_robin(lists: list[list[str]], chosen: set[str], limit: int) -> list[str]:
    """Take rank 1 of every list, then rank 2, ... skipping duplicates, up to ``limit`` items."""
    taken: list[str] = []
    depth = max((len(items) for items in lists), default=0)
    for rank in range(depth):
        for items in lists:
            if len(taken) >= limit:
                return taken
            if rank < len(items) and items[rank] not in chosen:
                chosen.add(items[rank])
                taken.append(items[rank])
    return taken


def build_subset(dataset: BeirDataset, spec: SubsetSpec) -> BeirDataset:
    """Cut ``dataset`` down as ``spec`` says; every positive of every chosen query is kept.

    Order of filling: positives (always, even past the target size), then BM25 distractors
    taken rank by rank across queries, then documents drawn at random (seeded) until the
    corpus holds ``spec.target_size`` documents.
    """
    query_ids = sample_queries(dataset, spec.n_queries, spec.seed)
    positives = sorted({doc for qid in query_ids
                        for doc, score in dataset.qrels[qid].items() if score > 0})
    chosen = set(positives)
    if len(positives) > spec.target_size:
        logger.warning("subset keeps all %d positives, more than the target %d documents",
                       len(positives), spec.target_size)
    ranked = bm25_distractors(dataset, query_ids, spec.distractors_per_query, set(positives))
    distractors = _round_robin(ranked, chosen, max(0, spec.target_size - len(chosen)))
    rest = sorted(set(dataset.corpus) - chosen)
    n_fill = min(len(rest), max(0, spec.target_size - len(chosen)))
    fill = sorted(random.Random(spec.seed + 1).sample(rest, n_fill))
    doc_ids = sorted(chosen | set(fill))
    corpus = {doc_id: dataset.corpus[doc_id] for doc_id in doc_ids}
    qrels = {qid: {d: s for d, s in dataset.qrels[qid].items() if d in corpus} for qid in query_ids}
    description = {
        "source": f"{dataset.name}/{dataset.split}", **asdict(spec),
        "queries": len(query_ids), "documents": len(doc_ids), "positives": len(positives),
        "bm25_distractors": len(distractors), "random_fill": len(fill),
        "digest": _digest(query_ids, doc_ids),
    }
    logger.info("subset %s", description)
    return dataset.with_subset(corpus, {qid: dataset.queries[qid] for qid in query_ids},
                               qrels, description)


def subset_sts(dataset: StsDataset, n_pairs: int, seed: int = 0) -> StsDataset:
    """A seeded sample of ``n_pairs`` sentence pairs, kept in file order."""
    if n_pairs < 2:
        raise ConfigError(f"an STS subset needs at least 2 pairs, got {n_pairs}")
    total = len(dataset.pairs)
    rows = list(range(total)) if n_pairs >= total else sorted(
        random.Random(seed).sample(range(total), n_pairs))
    pairs = [dataset.pairs[i] for i in rows]
    description = {"source": f"{dataset.name}/{dataset.split}", "n_pairs": len(rows),
                   "seed": seed, "digest": _digest([str(i) for i in rows])}
    return StsDataset(name=dataset.name, split=dataset.split, pairs=pairs,
                      scores=[dataset.scores[i] for i in rows], subset=description)

