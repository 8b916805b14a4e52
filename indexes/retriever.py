"""Retriever: an index and the model that built it; it encodes queries, the index only stores and searches.

```python
from grace_rag.indexes.retriever import Retriever

with Retriever.open(".grace-index", device="cpu") as retriever:
    result = retriever.search("how do bees find flowers?", k=3, mode="hybrid", where={"extension": ".md"})
    for hit in result.hits:
        print(hit.score, hit.source)
```

``open`` reads the model and settings the index recorded; the model is loaded when a search
first needs it (lexical search needs none), and its fingerprint is checked against the index's
before any vector of it is used. ``grace-rag query``, ``grace-rag serve`` and the LlamaIndex and
LangChain retrievers are built on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from grace_rag.config import EncoderConfig, Role
from grace_rag.errors import GraceIndexError, ModelNotFoundError
from grace_rag.indexes.fusion import DEFAULT_MODE, FusionConfig, SearchMode, parse_mode
from grace_rag.indexes.grace_index import GraceIndex
from grace_rag.indexes.records import EncoderInfo, Hit, check_fingerprint


class QueryEncoding(Protocol):
    """What encoding a query gives: its vector (first row) and its rationale."""

    vectors: np.ndarray
    rationales: list[str]


@dataclass
class SearchResult:
    """The hits of one query, and how they were found."""

    query: str
    mode: SearchMode
    hits: list[Hit]
    query_rationale: str = ""  # empty in lexical mode
    fusion: FusionConfig = field(default_factory=FusionConfig)

    def to_dict(self, explain: bool = False) -> dict[str, Any]:
        """The JSON of `grace-rag query --json` and of ``POST /search``: rationales only with ``explain``."""
        out: dict[str, Any] = {"query": self.query, "mode": self.mode.value, "hits": [h.to_dict() for h in self.hits]}
        if self.mode is SearchMode.HYBRID:
            out["fusion"] = self.fusion.to_dict()
        if explain:
            out["query_rationale"] = self.query_rationale
        else:
            for hit in out["hits"]:
                hit.pop("rationale")
        return out


def load_encoder(model: str | None, config: EncoderConfig | None = None, device: str = "auto") -> Any:
    """A GraceEncoder for ``model`` (None: the default model) with ``config``, without a progress bar."""
    from grace_rag.encoder import GraceEncoder

    config = (config or EncoderConfig()).with_changes(show_progress=False)
    kwargs: dict[str, Any] = {"config": config, "device": device}
    return GraceEncoder(model=model, **kwargs) if model is not None else GraceEncoder(**kwargs)


def recorded_config(recorded: EncoderInfo, settings: EncoderConfig | None = None) -> EncoderConfig:
    """The settings an index records, with the explicit fields of ``settings`` over them."""
    names = {f.name for f in fields(EncoderConfig)}
    known = {k: v for k, v in recorded.settings.items() if k in names}
    return EncoderConfig(**{**known, **(settings or EncoderConfig()).to_dict(explicit_only=True)})


def load_recorded_encoder(index_dir: Path, recorded: EncoderInfo, device: str = "auto",
                          settings: EncoderConfig | None = None) -> Any:
    """The encoder an index was built with (its manifest names it); a model that cannot be loaded names the index.

    The name is only loaded from, never written into, and the encoder's fingerprint is then checked
    against the index's, so a manifest that points elsewhere cannot mix vectors.
    """
    try:
        return load_encoder(recorded.model_name, recorded_config(recorded, settings), device)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(f"index {index_dir} was built with model {recorded.model_name!r}, which cannot be "
                                 f"loaded now ({exc}); pass the same model with --model") from None


class Retriever:
    """Search one index with its own model: ``search(text)`` encodes the query (unless lexical) and ranks."""

    def __init__(self, index: GraceIndex, encoder: Any = None, *, model: str | None = None,
                 settings: EncoderConfig | None = None, device: str = "auto") -> None:
        self.index = index
        self._model, self._settings, self._device = model, settings, device
        self._encoder = None
        if encoder is not None:
            self.use(encoder)

    @classmethod
    def open(cls, index_dir: str | Path, *, model: str | None = None, settings: EncoderConfig | None = None,
             device: str = "auto", encoder: Any = None) -> Retriever:
        """Open ``index_dir`` for searching. The model is the index's (or ``model``, which must build the same
        vectors); ``settings``' explicit fields override the recorded ones and must match them too."""
        return cls(GraceIndex.open(Path(index_dir)), encoder, model=model, settings=settings, device=device)

    @property
    def encoder(self) -> Any:
        """The query encoder, loaded (and checked against the index) on first use."""
        if self._encoder is None:
            self.use(self._load())
        return self._encoder

    def use(self, encoder: Any) -> None:
        """Encode queries with ``encoder``; refused unless it makes the vectors the index holds."""
        check_fingerprint(self.index.manifest.encoder, EncoderInfo.of(encoder), self.index.path)
        self._encoder = encoder

    def _load(self) -> Any:
        recorded = self.index.manifest.encoder
        if self._model is not None:
            return load_encoder(self._model, recorded_config(recorded, self._settings), self._device)
        return load_recorded_encoder(self.index.path, recorded, self._device, self._settings)

    def encode_query(self, text: str) -> QueryEncoding:
        """The query's vector and rationale (what ``search`` uses; a server batches these itself)."""
        return self.encoder.encode([text], role=Role.QUERY)

    def search(self, text: str, k: int = 5, where: Any = None, *, mode: str | SearchMode = DEFAULT_MODE,
               fusion: FusionConfig | None = None, encoded: QueryEncoding | None = None) -> SearchResult:
        """The ``k`` best chunks for ``text``: dense, lexical or hybrid (fused as ``fusion`` says), within ``where``.

        ``encoded``: the query already encoded by this retriever's encoder (a server's micro-batcher).
        """
        if not isinstance(text, str) or not text.strip():
            raise GraceIndexError("the query is empty; pass the text to search for")
        mode, fusion = parse_mode(mode), fusion or FusionConfig()
        self.index.resolve_filter(where)  # a bad filter fails before any model loads
        if mode is SearchMode.LEXICAL:
            hits = self.index.search(None, k=k, where=where, text=text, mode=mode, fusion=fusion)
            return SearchResult(text, mode, hits, "", fusion)
        encoded = encoded if encoded is not None else self.encode_query(text)
        hits = self.index.search(encoded.vectors[0], k=k, where=where, text=text, mode=mode, fusion=fusion)
        return SearchResult(text, mode, hits, encoded.rationales[0], fusion)

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
