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
    """Use a `grace-rag index` directory as a LlamaIndex retriever (nodes carry source, rationale and ranks).

    ``mode`` is ``hybrid`` (default), ``dense`` or ``lexical`` (LlamaIndex's ``VectorStoreQueryMode``
    DEFAULT, SPARSE/TEXT_SEARCH and HYBRID are accepted too); ``alpha`` (weight of the dense side)
    and ``fusion`` (``rrf`` or ``weighted``) tune hybrid search. ``filters`` is a LlamaIndex
    ``MetadataFilters`` (EQ, NE, GT, GTE, LT, LTE, IN, NIN; AND, OR, NOT; nested) or a dict, over
    metadata and the chunk columns (``source``, ``position``, ``id``, ``text``). The index's own
    model and settings are loaded unless ``encoder`` is given (none is needed in lexical mode).
    """

    def __init__(self, index_dir: str | Path = ".grace-index", *, encoder: Any = None, similarity_top_k: int = 5,
                 filters: Any = None, mode: Any = "hybrid", alpha: float | None = None, fusion: str | None = None,
                 device: str = "auto", **kwargs: Any) -> None:
        from grace_rag.indexes import GraceIndex
        from grace_rag.indexes.fusion import FusionConfig
        from grace_rag.integrations._llama_filters import to_filter

        super().__init__(**kwargs)
        self._mode = _search_mode(mode)
        self._fusion = FusionConfig.from_options(fusion, alpha)
        self._index = GraceIndex.open(Path(index_dir))
        self._filters = self._index.resolve_filter(to_filter(filters))
        self._encoder = encoder.encoder if isinstance(encoder, GraceEmbedding) else encoder
        self._device = device
        self._top_k = similarity_top_k

    def _query_encoder(self) -> Any:
        from grace_rag.indexes.fusion import SearchMode
        from grace_rag.indexes.service import load_encoder

        if self._encoder is None and self._mode is not SearchMode.LEXICAL:
            recorded = self._index.manifest.encoder
            self._encoder = load_encoder(recorded.model_name, recorded.settings, self._device)
        return self._encoder

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits, rationale = self._index.query(self._query_encoder(), query_bundle.query_str, k=self._top_k,
                                            where=self._filters, mode=self._mode, fusion=self._fusion)
        return [NodeWithScore(node=_node(hit, rationale), score=hit.score) for hit in hits]


_HIDDEN = ["rationale", "query_rationale", "dense_rank", "dense_score", "lexical_rank", "lexical_score"]


def _node(hit: Any, query_rationale: str) -> TextNode:
    """A TextNode for a hit; ranks and rationales stay out of the LLM prompt and the embedding text."""
    metadata = {**hit.metadata, "source": hit.source, "rationale": hit.rationale, "query_rationale": query_rationale,
                "dense_rank": hit.dense_rank, "dense_score": hit.dense_score,
                "lexical_rank": hit.lexical_rank, "lexical_score": hit.lexical_score}
    return TextNode(id_=hit.id, text=hit.text, metadata=metadata,
                    excluded_llm_metadata_keys=list(_HIDDEN), excluded_embed_metadata_keys=list(_HIDDEN))


def _search_mode(mode: Any) -> Any:
    """Our mode names, or LlamaIndex's VectorStoreQueryMode (default -> dense, sparse/text_search -> lexical)."""
    from grace_rag.indexes.fusion import parse_mode

    aliases = {"default": "dense", "sparse": "lexical", "text_search": "lexical"}
    value = getattr(mode, "value", mode)
    return parse_mode(aliases.get(value, value) if isinstance(value, str) else value)
