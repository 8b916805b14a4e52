"""LlamaIndex adapters: ``GraceEmbedding`` (a BaseEmbedding) and a retriever over a grace-rag index."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

try:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import BaseModel, PrivateAttr
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError:  # pragma: no cover - exercised by a test that hides the package
    raise ImportError(
        "grace_rag.integrations.llama_index needs LlamaIndex: pip install 'grace-rag[frameworks]'"
    ) from None

from pydantic import ConfigDict, Field, create_model

from grace_rag.config import EncoderConfig
from grace_rag.integrations._encoder import (
    CACHE_FOLDER_HELP, DEVICE_HELP, adopt, build_encoder, check_against, config_as_settings, config_fields,
    merge_settings, setting_names,
)
from grace_rag.indexes.files import DEFAULT_INDEX_DIR
from grace_rag.models import DEFAULT_MODEL
from grace_rag.tiktoken_files import seed_tiktoken_cache

#: GraceEmbedding's declared settings: every EncoderConfig field, plus device and cache_folder
_GraceEmbeddingSettings = create_model(
    "_GraceEmbeddingSettings", __base__=BaseEmbedding, __module__=__name__, **config_fields(),
    device=(str, Field(default="auto", description=DEVICE_HELP)),
    cache_folder=(str | None, Field(default=None, description=CACHE_FOLDER_HELP)),
)


class GraceEmbedding(_GraceEmbeddingSettings):  # type: ignore[misc,valid-type]
    """GRACE embeddings for LlamaIndex: the model writes a rationale, then text+rationale is pooled.

    ``GraceEmbedding()`` loads the embedded default model. Every ``EncoderConfig`` setting is a
    keyword argument and a declared field (``max_rationale_tokens``, ``layer``, ``pooling``, ...),
    as are ``device``, ``cache_folder`` and LlamaIndex's ``embed_batch_size``;
    ``text_instruction`` (LlamaIndex's name) is our ``document_instruction``. ``config=`` takes
    a whole EncoderConfig, ``encoder=`` an already built GraceEncoder. An unknown argument is an
    error. ``to_dict``/``from_dict`` and pickling keep every setting (the model itself is not
    pickled: a copy in another process loads ``model_name`` again).
    """

    model_config = ConfigDict(extra="forbid", use_enum_values=True)
    model_name: str = Field(default=DEFAULT_MODEL, description="Model alias, directory or .gguf file.")
    embed_batch_size: int = Field(default=8, gt=0, le=2048, description="Texts per call to the encoder.")
    _encoder: Any = PrivateAttr(default=None)

    def __init__(self, model_name: str | None = None, *, encoder: Any = None, config: EncoderConfig | None = None,
                 text_instruction: str | None = None, **kwargs: Any) -> None:
        names = setting_names()
        given = {name: kwargs.pop(name) for name in names if name in kwargs}
        settings = merge_settings([
            ("config", config_as_settings(config)), ("keyword arguments", given),
            ("text_instruction", {"document_instruction": text_instruction}),
        ])
        name = model_name or (encoder.model_name if encoder is not None else DEFAULT_MODEL)
        if encoder is not None:
            check_against(encoder, settings)
            kwargs.setdefault("device", str(encoder.device))
        super().__init__(model_name=name, **settings, **kwargs)
        seed_tiktoken_cache()  # LlamaIndex's splitters load tiktoken offline in this and in spawned processes
        if encoder is None:
            encoder = build_encoder(self.model_name, settings, self.device, self.cache_folder)
        self._adopt(encoder)

    def _adopt(self, encoder: Any) -> None:
        adopt(self, encoder)

    @classmethod
    def class_name(cls) -> str:
        return "GraceEmbedding"

    @property
    def encoder(self) -> Any:
        """The GraceEncoder (loaded again from the settings in a process that unpickled this object)."""
        if self._encoder is None:
            settings = {name: getattr(self, name) for name in setting_names() if getattr(self, name) is not None}
            self._adopt(build_encoder(self.model_name, settings, self.device, self.cache_folder))
        return self._encoder

    @property
    def fingerprint(self) -> str:
        """The encoder's fingerprint: equal fingerprints mean interchangeable vectors."""
        return str(self.encoder.fingerprint)

    def __getstate__(self) -> dict[str, Any]:
        seed_tiktoken_cache()  # pickled for worker processes, which rebuild a pipeline's tiktoken tokenizers
        encoder, self._encoder = self._encoder, None  # the model is rebuilt, never pickled
        try:
            return super().__getstate__()
        finally:
            self._encoder = encoder

    def __setstate__(self, state: dict[str, Any]) -> None:
        BaseModel.__setstate__(self, state)  # the encoder loads on first use

    def _encode(self, texts: list[str], role: str) -> list[list[float]]:
        return self.encoder.encode(texts, role=role).vectors.tolist()

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

    def __init__(self, index_dir: str | Path = DEFAULT_INDEX_DIR, *, encoder: Any = None, similarity_top_k: int = 5,
                 filters: Any = None, mode: Any = "hybrid", alpha: float | None = None, fusion: str | None = None,
                 device: str = "auto", **kwargs: Any) -> None:
        from grace_rag.indexes.fusion import FusionConfig
        from grace_rag.indexes.retriever import Retriever
        from grace_rag.integrations._llama_filters import to_filter

        super().__init__(**kwargs)
        self._mode = _search_mode(mode)
        self._fusion = FusionConfig.from_options(fusion, alpha)
        encoder = encoder.encoder if isinstance(encoder, GraceEmbedding) else encoder
        self._retriever = Retriever.open(Path(index_dir), encoder=encoder, device=device)
        self._filters = self._retriever.index.resolve_filter(to_filter(filters))
        self._top_k = similarity_top_k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        result = self._retriever.search(query_bundle.query_str, self._top_k, self._filters, mode=self._mode,
                                        fusion=self._fusion)
        return [NodeWithScore(node=_node(hit, result.query_rationale), score=hit.score) for hit in result.hits]


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
