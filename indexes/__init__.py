"""Durable FAISS indexes of GRACE embeddings.

An index is a directory::

    chunks.sqlite   the source of truth: id, source, position, text, metadata (JSON),
                    content hash, rationale and vector of every chunk, plus indexed files
    index.faiss     written with faiss.write_index; rebuilt from chunks.sqlite when missing or stale
    manifest.json   format version, encoder (model, fingerprint, settings), dimension, metric,
                    FAISS factory, search parameters, counts

Nothing is pickled and nothing is ``eval``-ed on load.
"""

from grace_rag.indexes.factory import SearchParams, choose_factory
from grace_rag.indexes.grace_index import GraceIndex
from grace_rag.indexes.records import Chunk, EncoderInfo, Hit

__all__ = ["Chunk", "EncoderInfo", "GraceIndex", "Hit", "SearchParams", "choose_factory"]
