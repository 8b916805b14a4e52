"""Hybrid retrieval in the evaluation harness: an embedder's dense ranking fused with BM25.

It uses the index's own pieces (``grace_rag.indexes.lexical`` for BM25, ``grace_rag.indexes.fusion``
for fusion, the same candidate depth), so a score measured here is what ``grace-rag query``
returns for the same documents.
"""

from __future__ import annotations

import numpy as np

from grace_rag.errors import ConfigError
from grace_rag.evaluation.adapters import DenseRetriever, Embedder, LoadedModel
from grace_rag.indexes.fusion import Fused, FusionConfig, Ranking, fuse
from grace_rag.indexes.lexical import LexicalIndex


def as_arrays(fused: list[list[Fused]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` keys (document positions) and fused scores per query, as ``(Q, k)`` arrays."""
    width = min([k, *(len(row) for row in fused)]) if fused else 0
    positions = np.array([[int(item.key) for item in row[:width]] for row in fused], dtype=np.int64).reshape(len(fused), width)
    scores = np.array([[item.score for item in row[:width]] for row in fused], dtype=np.float32).reshape(len(fused), width)
    return positions, scores


class HybridRetriever:
    """Dense search over an embedder fused with BM25, the way a grace-rag index searches in hybrid mode."""

    def __init__(self, embedder: Embedder, fusion: FusionConfig | None = None) -> None:
        self.dense = DenseRetriever(embedder)
        self.fusion = fusion or FusionConfig()
        self.lexical: LexicalIndex | None = None

    def index(self, texts: list[str]) -> None:
        self.dense.index(texts)
        self.lexical = LexicalIndex.build(list(range(len(texts))), list(texts), revision=0)

    def rankings(self, texts: list[str], depth: int) -> tuple[list[Ranking], list[Ranking]]:
        """Each query's dense and lexical candidates (document position, score), best first."""
        if self.lexical is None:
            raise ConfigError("HybridRetriever.search called before index(); index documents first")
        positions, scores = self.dense.search(list(texts), depth)  # (Q, depth)
        dense = [list(zip(p.tolist(), s.tolist())) for p, s in zip(positions, scores)]
        lexical = [self.lexical.search(text, depth) for text in texts]
        return dense, lexical

    def search(self, texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        dense, lexical = self.rankings(texts, max(k, self.fusion.candidates))
        return as_arrays([fuse(d, lex, self.fusion) for d, lex in zip(dense, lexical)], k)


def load_hybrid(dense: LoadedModel, fusion: FusionConfig | None = None) -> LoadedModel:
    """``hybrid:NAME``: NAME's embeddings fused with BM25 (an error when NAME is not an embedding model)."""
    if not isinstance(dense.model, Embedder):
        raise ConfigError(f"hybrid:{dense.label} needs an embedding model (default, minilm or a model path); "
                          f"{dense.label} is not one")
    fusion = fusion or FusionConfig()
    return LoadedModel(f"hybrid:{dense.label}", HybridRetriever(dense.model, fusion), {**dense.settings, **fusion.to_dict()})
