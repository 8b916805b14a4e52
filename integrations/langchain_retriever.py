"""LangChain adapter: ``GraceIndexRetriever``, a ``BaseRetriever`` over a `grace-rag index` directory.

```python
from grace_rag.integrations.langchain_retriever import GraceIndexRetriever

retriever = GraceIndexRetriever(index_dir=".grace-index", k=4, filter={"extension": ".md"})
docs = retriever.invoke("how do bees find flowers?")            # hybrid search by default
docs = retriever.invoke("bees", k=2, filter={"position": {"$lt": 3}}, mode="lexical")
```

Filters are LangChain's Mongo-style dicts (``{"key": value}``, ``{"key": {"$in": [...]}}``,
``$ne $gt $gte $lt $lte $nin``, ``$and $or $not``) over metadata and the chunk columns
(``source``, ``position``, ``id``, ``text``). Each Document carries its source, position,
rationale, score, and its dense and lexical rank and score in ``metadata``; ``id`` is the chunk id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError:  # pragma: no cover - exercised by a test that hides the package
    raise ImportError(
        "grace_rag.integrations.langchain_retriever needs LangChain: pip install 'grace-rag[frameworks]'"
    ) from None
from pydantic import ConfigDict, Field, PrivateAttr

from grace_rag.indexes.fusion import DEFAULT_MODE, FusionConfig, SearchMode, parse_mode

PER_CALL = {"k", "filter", "mode", "fusion", "alpha"}


class GraceIndexRetriever(BaseRetriever):
    """Retrieve from a grace-rag index with its own model and settings (dense, lexical or hybrid)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())

    index_dir: Path = Field(default=Path(".grace-index"), description="A `grace-rag index` directory.")
    k: int = Field(default=4, ge=1, description="Number of documents to return.")
    mode: str = Field(default=DEFAULT_MODE.value, description="dense, lexical or hybrid.")
    filter: dict[str, Any] | None = Field(default=None, description="Mongo-style metadata/column filter.")
    fusion: str | None = Field(default=None, description="Hybrid fusion: rrf or weighted (default: the index's).")
    alpha: float | None = Field(default=None, description="Weight of the dense side in weighted fusion.")
    device: str = Field(default="auto", description="Device for the model: auto, cpu, cuda, cuda:N or mps.")
    encoder: Any = Field(default=None, exclude=True, description="A loaded GraceEncoder to use (else the index's model).")
    _index: Any = PrivateAttr(default=None)
    _loaded: Any = PrivateAttr(default=None)

    def model_post_init(self, context: Any) -> None:
        parse_mode(self.mode)  # a wrong mode or alpha fails at construction, in one line
        FusionConfig.from_options(self.fusion, self.alpha)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        unknown = set(kwargs) - PER_CALL
        if unknown:
            raise TypeError(f"unexpected argument(s) {sorted(unknown)}; per call you can pass {sorted(PER_CALL)}")
        options = {"k": self.k, "filter": self.filter, "mode": self.mode, "fusion": self.fusion,
                   "alpha": self.alpha, **kwargs}
        mode = parse_mode(options["mode"])
        fusion = FusionConfig.from_options(options["fusion"], options["alpha"])
        index = self._open()
        encoder = None if mode is SearchMode.LEXICAL else self._encoder(index)
        hits, rationale = index.query(encoder, query, k=options["k"], where=options["filter"], mode=mode, fusion=fusion)
        return [
            Document(id=hit.id, page_content=hit.text, metadata={
                **hit.metadata, "source": hit.source, "position": hit.position, "rationale": hit.rationale,
                "query_rationale": rationale, "score": hit.score, "dense_rank": hit.dense_rank,
                "dense_score": hit.dense_score, "lexical_rank": hit.lexical_rank, "lexical_score": hit.lexical_score,
            })
            for hit in hits
        ]

    def _open(self) -> Any:
        from grace_rag.indexes import GraceIndex

        if self._index is None:
            self._index = GraceIndex.open(Path(self.index_dir))
        return self._index

    def _encoder(self, index: Any) -> Any:
        """The given encoder, else the index's model with its recorded settings (loaded once)."""
        if self.encoder is not None:
            return self.encoder
        if self._loaded is None:
            from grace_rag.indexes.service import load_recorded_encoder

            recorded = index.manifest.encoder
            self._loaded = load_recorded_encoder(Path(self.index_dir), recorded, self.device)
        return self._loaded
