"""grace-rag: GRACE embeddings (rationale, then masked mean pooling) for RAG pipelines.

Nothing heavy is imported here: ``torch``/``transformers`` load when an encoder is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from grace_rag.config import EncoderConfig, Layer, Pooling, Role
from grace_rag.errors import GraceError

if TYPE_CHECKING:
    from grace_rag.encoder import GraceEncoder
    from grace_rag.integrations.langchain import GraceEmbeddings
    from grace_rag.integrations.llama_index import GraceEmbedding

__version__ = "0.1.0"
__all__ = ["EncoderConfig", "GraceEmbedding", "GraceEmbeddings", "GraceEncoder", "GraceError", "Layer", "Pooling", "Role"]

_LAZY = {
    "GraceEncoder": "grace_rag.encoder",
    "GraceEmbedding": "grace_rag.integrations.llama_index",
    "GraceEmbeddings": "grace_rag.integrations.langchain",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'grace_rag' has no attribute {name!r}")
