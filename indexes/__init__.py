"""Durable FAISS indexes of GRACE embeddings: a directory with index.faiss, chunks.sqlite and manifest.json."""

from grace_rag.indexes.factory import SearchParams, choose_factory
from grace_rag.indexes.grace_index import GraceIndex
from grace_rag.indexes.records import Chunk, EncoderInfo, Hit

__all__ = ["Chunk", "EncoderInfo", "GraceIndex", "Hit", "SearchParams", "choose_factory"]
