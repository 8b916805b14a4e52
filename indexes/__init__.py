"""Durable hybrid indexes of GRACE embeddings: FAISS for the vectors, BM25 for the words.

An index is a directory::

    chunks.sqlite   the source of truth: id, source, position, text, metadata (JSON),
                    content hash, rationale and vector of every chunk, plus indexed files
    index.faiss     written with faiss.write_index; rebuilt from chunks.sqlite when missing or stale
    lexical/        BM25 (bm25s, saved with allow_pickle=False) over the chunk texts, with the
                    chunk id of each document; rebuilt from chunks.sqlite when missing, stale or altered
    manifest.json   format version, encoder (model, fingerprint, settings), dimension, metric,
                    FAISS factory, search parameters, the store revision and checksum of each part, counts
    write.lock      one writer at a time (indexes.lock); damaged parts are repaired (indexes.repair)

Search is ``dense``, ``lexical`` or ``hybrid`` (both, fused: :mod:`grace_rag.indexes.fusion`);
filters (:mod:`grace_rag.indexes.filters`) apply to both sides. ``GraceIndex`` stores and searches;
``Retriever`` pairs it with the model that built it and encodes queries. Nothing is pickled and nothing
is ``eval``-ed on load.
"""

from grace_rag.indexes.factory import SearchParams, choose_factory
from grace_rag.indexes.filters import Combine, Condition, Group, Op
from grace_rag.indexes.fusion import FusionConfig, FusionMethod, SearchMode
from grace_rag.indexes.grace_index import GraceIndex
from grace_rag.indexes.records import Chunk, EncoderInfo, Hit
from grace_rag.indexes.retriever import Retriever, SearchResult

__all__ = [
    "Chunk", "Combine", "Condition", "EncoderInfo", "FusionConfig", "FusionMethod", "GraceIndex", "Group", "Hit", "Op",
    "Retriever", "SearchMode", "SearchParams", "SearchResult", "choose_factory",
]
