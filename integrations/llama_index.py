"""LlamaIndex adapters: ``GraceEmbedding`` (a BaseEmbedding) and a retriever over a grace-rag index."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

try:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError:  # pragma: no cover - exercised by a test that hides the package
    raise ImportError(
        "grace_rag.integrations.llama_index needs LlamaIndex: pip install 'grace-rag[frameworks]'"
    ) from None

from grace_rag.integrations._encoder import make_encoder


class GraceEmbedding(BaseEmbedding):
    """GRACE embeddings for LlamaIndex: the model writes a rationale, then text+rationale is pooled.

    ``GraceEmbedding()`` loads the embedded default model; pass ``model_name`` (a name or path),
    ``max_rationale_tokens``, ``device`` or a whole ``config`` (EncoderConfig), or an already
    built ``encoder`` (a GraceEncoder). Batches follow ``embed_batch_size``; ``show_progress``
    is honoured by LlamaIndex's batch methods.
    """

    _encoder: Any = PrivateAttr()

    def __init__(self, model_name: str | None = None, *, encoder: Any = None, config: Any = None,
                 max_rationale_tokens: int | None = None, device: str = "auto", embed_batch_size: int = 8,
                 **kwargs: Any) -> None:
        built = make_encoder(encoder, model_name, config, max_rationale_tokens, device)
        super().__init__(model_name=built.model_name, embed_batch_size=embed_batch_size, **kwargs)
        self._encoder = built

    @classmethod
    def class_name(cls) -> str:
        return "GraceEmbedding"

    @property
    def encoder(self) -> Any:
        return self._encoder

    def _encode(self, texts: list[str], role: str) -> list[list[float]]:
        return self._encoder.encode(texts, role=role).vectors.tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encode([query], "query")[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._encode([text], "document")[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encode(list(texts), "document")

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


class GraceIndexRetriever(BaseRetriever):
    """Use a `grace-rag index` directory as a LlamaIndex retriever (nodes carry source and rationale)."""

    def __init__(self, index_dir: str | Path = ".grace-index", *, encoder: Any = None, similarity_top_k: int = 5,
                 filters: dict[str, Any] | None = None, device: str = "auto", **kwargs: Any) -> None:
        from grace_rag.indexes import GraceIndex
        from grace_rag.indexes.service import load_encoder

        super().__init__(**kwargs)
        self._index = GraceIndex.open(Path(index_dir))
        if isinstance(encoder, GraceEmbedding):
            encoder = encoder.encoder
        recorded = self._index.manifest.encoder
        self._encoder = encoder or load_encoder(recorded.model_name, recorded.settings, device)
        self._top_k = similarity_top_k
        self._filters = filters

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits, rationale = self._index.query(self._encoder, query_bundle.query_str, k=self._top_k, where=self._filters)
        return [
            NodeWithScore(
                node=TextNode(id_=hit.id, text=hit.text, metadata={
                    **hit.metadata, "source": hit.source, "rationale": hit.rationale, "query_rationale": rationale,
                }),
                score=hit.score,
            )
            for hit in hits
        ]
