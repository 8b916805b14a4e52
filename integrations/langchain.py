"""LangChain adapter: ``GraceEmbeddings``, an ``Embeddings`` whose vectors come from GRACE rationales."""

from __future__ import annotations

from typing import Any

try:
    from langchain_core.embeddings import Embeddings
    from langchain_core.runnables.config import run_in_executor
except ImportError:  # pragma: no cover - exercised by a test that hides the package
    raise ImportError(
        "grace_rag.integrations.langchain needs LangChain: pip install 'grace-rag[frameworks]'"
    ) from None
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from grace_rag.integrations._encoder import make_encoder


class GraceEmbeddings(BaseModel, Embeddings):
    """GRACE embeddings for LangChain.

    ``GraceEmbeddings()`` loads the embedded default model; ``model`` takes a name or path,
    ``max_rationale_tokens``/``device``/``config`` tune it, and ``encoder`` adopts an already
    built GraceEncoder (which then wins over the other settings).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())

    model: str | None = Field(default=None, description="Model name or path (default: the embedded model).")
    max_rationale_tokens: int | None = Field(default=None, description="Rationale length in tokens.")
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:N or mps.")
    config: Any = Field(default=None, description="An EncoderConfig (all encoder settings).", exclude=True)
    encoder: Any = Field(default=None, description="An existing GraceEncoder to use as is.", exclude=True)
    _encoder: Any = PrivateAttr(default=None)

    def model_post_init(self, context: Any) -> None:
        self._encoder = make_encoder(self.encoder, self.model, self.config, self.max_rationale_tokens, self.device)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per document (document instruction)."""
        return self._encoder.encode(list(texts), role="document").vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        """The query's vector (query instruction)."""
        return self._encoder.encode([text], role="query").vectors[0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await run_in_executor(None, self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await run_in_executor(None, self.embed_query, text)

    def explain(self, texts: list[str]) -> list[str]:
        """The rationales the model writes for ``texts`` (what their vectors are built from)."""
        return self._encoder.explain(list(texts))
