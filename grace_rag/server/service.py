"""The warm state behind `grace-rag serve`: one encoder behind a micro-batcher, one index on its own thread.

The encoder (and its SQLite cache) is used only by the batcher's worker thread; the index
(whose SQLite store belongs to the thread that opened it) only by a one-thread executor. A
search encodes its query through the batcher (so concurrent searches share model calls), then
runs ``GraceIndex.query`` on the index thread with the query already encoded.
"""

from __future__ import annotations

import asyncio
import inspect
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from grace_rag.calibration import ScoreCalibration, calibration_for
from grace_rag.indexes.filters import parse_filter
from grace_rag.indexes.fusion import SearchMode, parse_mode
from grace_rag.server.batching import Encoded, MicroBatcher
from grace_rag.server.openai_api import RequestError


@dataclass
class ServeLimits:
    """Request limits and batching of the server (each violation is a 4xx answer that names the limit)."""

    max_inputs: int = 256  # texts per /v1/embeddings request
    max_text_chars: int = 20_000  # characters per text or query
    max_body_bytes: int = 4 * 1024 * 1024
    max_k: int = 100
    batch_texts: int = 64  # texts per model call
    batch_wait_ms: float = 0.0  # extra wait for company after the first request (0: none)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _QueryEncoded:
    """Stands in for the encoder inside ``GraceIndex.query``: its identity, with the query already encoded."""

    def __init__(self, encoder: Any, batcher: MicroBatcher, text: str, encoded: Encoded) -> None:
        self.model_name, self.fingerprint, self.dimension = encoder.model_name, encoder.fingerprint, encoder.dimension
        self.config = encoder.config
        self._batcher, self._text, self._encoded = batcher, text, encoded

    def encode(self, texts: Any, role: Any = "query") -> Encoded:
        role = str(getattr(role, "value", role))
        if list(texts) == [self._text] and role == "query":
            return self._encoded
        return self._batcher.encode(list(texts), role)


def search_options(mode: str | None, alpha: float | None, query: Any = None) -> dict[str, Any]:
    """Keyword arguments for ``query`` (default ``GraceIndex.query``): ``mode``/``alpha`` only when given,
    and a RequestError when this version of the index does not take them."""
    from grace_rag.indexes import GraceIndex

    given = {name: value for name, value in (("mode", mode), ("alpha", alpha)) if value is not None}
    accepted = inspect.signature(query or GraceIndex.query).parameters
    unknown = [name for name in given if name not in accepted]
    if unknown:
        raise RequestError(f"this grace-rag version has no search option {', '.join(unknown)}; leave it out")
    return given


class GraceService:
    """Embeds and searches for many concurrent clients with one warm model."""

    def __init__(self, encoder: Any, index_dir: Path | None = None, limits: ServeLimits | None = None) -> None:
        from grace_rag.indexes import GraceIndex

        self.encoder = encoder
        self.limits = limits or ServeLimits()
        self.batcher = MicroBatcher(encoder, self.limits.batch_texts, self.limits.batch_wait_ms / 1000, self._count_tokens)
        self._index_thread = ThreadPoolExecutor(1, thread_name_prefix="grace-rag-index")
        self.index = self._index_thread.submit(GraceIndex.open, Path(index_dir), encoder).result() if index_dir else None
        self.calibration: ScoreCalibration | None = calibration_for(encoder)
        self.in_flight = 0

    @classmethod
    def for_index(cls, index_dir: Path, device: str = "auto", limits: ServeLimits | None = None,
                  settings: Any = None) -> GraceService:
        """Load the model and settings recorded by ``index_dir`` (explicit ``settings`` over them) and open it."""
        from grace_rag.indexes.service import load_recorded_encoder, open_index

        with open_index(index_dir) as index:  # a missing or foreign directory fails before the model loads
            recorded = index.manifest.encoder
        return cls(load_recorded_encoder(Path(index_dir), recorded, device, settings), index_dir, limits)

    def _count_tokens(self, texts: list[str]) -> list[int]:
        tokenizer = getattr(getattr(self.encoder, "backbone", None), "tokenizer", None)
        if tokenizer is None:
            return [0] * len(texts)
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    async def embed(self, texts: list[str], role: str) -> Encoded:
        """Vectors for ``texts``, batched with whatever other clients are asking for."""
        return await asyncio.wrap_future(self.batcher.submit(texts, role))

    async def search(self, query: str, k: int, filters: dict[str, Any] | None, explain: bool,
                     options: dict[str, Any]) -> dict[str, Any]:
        """``{query, hits[, query_rationale]}``; each hit has ``score`` (the mode's score) and, when the model
        is calibrated, ``relevance`` from the hit's cosine (``None`` for a hit the dense side did not return).

        Lexical search never waits for the model: the query is not encoded."""
        if self.index is None:
            raise RequestError("this server has no index (started with --embeddings-only); use /v1/embeddings")
        parse_filter(filters)  # a malformed filter is refused before the model is asked for anything
        lexical = options.get("mode") is not None and parse_mode(options["mode"]) is SearchMode.LEXICAL
        encoded = None if lexical else await self.embed([query], "query")
        loop = asyncio.get_running_loop()
        hits, rationale = await loop.run_in_executor(
            self._index_thread, self._query, query, encoded, k, filters, options)
        result: dict[str, Any] = {"query": query, "hits": [self._hit(h, explain) for h in hits]}
        if explain:
            result["query_rationale"] = rationale
        return result

    def _query(self, query: str, encoded: Encoded | None, k: int, filters: dict[str, Any] | None,
               options: dict[str, Any]) -> tuple[list[Any], str]:
        stand_in = None if encoded is None else _QueryEncoded(self.encoder, self.batcher, query, encoded)
        return self.index.query(stand_in, query, k=k, where=filters or None, **options)  # type: ignore[union-attr]

    def _hit(self, hit: Any, explain: bool) -> dict[str, Any]:
        out = hit.to_dict()
        if self.calibration is not None:  # fitted on cosines: a fused or BM25 score is no cosine
            cosine = hit.dense_score
            out["relevance"] = None if cosine is None else round(self.calibration.relevance(cosine), 4)
        if not explain:
            out.pop("rationale", None)
        return out

    def info(self) -> dict[str, Any]:
        """Model, settings, index, limits, batching so far and the score calibration."""
        index = self._index_thread.submit(self.index.info).result() if self.index is not None else None
        return {
            "model": self.encoder.model_name, "fingerprint": self.encoder.fingerprint,
            "dimension": self.encoder.dimension, "settings": self.encoder.config.to_dict(),
            "index": index, "limits": self.limits.to_dict(), "batching": self.batcher.stats.to_dict(),
            "score_calibration": self.calibration.to_dict() if self.calibration else None,
        }

    def close(self) -> None:
        """Finish queued work, then release the model thread and the index."""
        self.batcher.close()
        if self.index is not None:
            self._index_thread.submit(self.index.close).result()
        self._index_thread.shutdown(wait=True)
