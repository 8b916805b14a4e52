"""The warm state behind `grace-rag serve`: one encoder behind a micro-batcher, one Retriever on its own thread.

The encoder (and its SQLite cache) is used only by the batcher's worker thread; the Retriever's
index (whose SQLite store belongs to the thread that opened it) only by a one-thread executor.
A search encodes its query through the batcher (so concurrent searches share model calls), then
runs ``Retriever.search`` on the index thread with the query already encoded.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from grace_rag.score_calibration import ScoreCalibration, calibration_for
from grace_rag.config import EncoderConfig, Role
from grace_rag.errors import ConfigError
from grace_rag.indexes.fusion import DEFAULT_MODE, FusionConfig, SearchMode, parse_mode
from grace_rag.indexes.retriever import Retriever
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


class GraceService:
    """Embeds and searches for many concurrent clients with one warm model."""

    def __init__(self, encoder: Any = None, index_dir: Path | None = None, limits: ServeLimits | None = None, *,
                 settings: EncoderConfig | None = None, device: str = "auto") -> None:
        """``encoder`` alone: embeddings only. With ``index_dir``: its Retriever, with ``encoder`` (checked
        against the index) or the index's own model and settings (``settings``' explicit fields over them)."""
        self.limits = limits or ServeLimits()
        self._index_thread = ThreadPoolExecutor(1, thread_name_prefix="grace-rag-index")
        self.retriever: Retriever | None = None
        if index_dir is not None:
            self.retriever = self._on_index_thread(Retriever.open, Path(index_dir), encoder=encoder,
                                                   settings=settings, device=device)
            encoder = self._on_index_thread(lambda: self.retriever.encoder)  # loaded and checked once, at start
        if encoder is None:
            raise ConfigError("GraceService needs an encoder or an index directory")
        self.encoder = encoder
        self.batcher = MicroBatcher(encoder, self.limits.batch_texts, self.limits.batch_wait_ms / 1000, self._count_tokens)
        self.calibration: ScoreCalibration | None = calibration_for(encoder)
        self.in_flight = 0

    @classmethod
    def for_index(cls, index_dir: Path, device: str = "auto", limits: ServeLimits | None = None,
                  settings: EncoderConfig | None = None) -> GraceService:
        """Serve ``index_dir`` with the model and settings it records (explicit ``settings`` must match them)."""
        return cls(None, index_dir, limits, settings=settings, device=device)

    def _on_index_thread(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``call`` where the index lives (its SQLite store belongs to the thread that opened it)."""
        return self._index_thread.submit(call, *args, **kwargs).result()

    def _count_tokens(self, texts: list[str]) -> list[int]:
        tokenizer = getattr(getattr(self.encoder, "backbone", None), "tokenizer", None)
        if tokenizer is None:
            return [0] * len(texts)
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    async def embed(self, texts: list[str], role: str) -> Encoded:
        """Vectors for ``texts``, batched with whatever other clients are asking for."""
        return await asyncio.wrap_future(self.batcher.submit(texts, role))

    async def search(self, query: str, k: int = 5, where: Any = None, explain: bool = False, *,
                     mode: str | SearchMode = DEFAULT_MODE, fusion: FusionConfig | None = None) -> dict[str, Any]:
        """What ``grace-rag query --json`` prints for the same arguments; each hit's ``relevance`` where calibrated.

        The query is encoded through the micro-batcher (concurrent searches share model calls);
        lexical search encodes nothing.
        """
        if self.retriever is None:
            raise RequestError("this server has no index (started with --embeddings-only); use /v1/embeddings")
        mode = parse_mode(mode)
        encoded = await self.embed([query], Role.QUERY.value) if mode is not SearchMode.LEXICAL else None
        search = functools.partial(self.retriever.search, query, k, where, mode=mode, fusion=fusion, encoded=encoded)
        result = await asyncio.get_running_loop().run_in_executor(self._index_thread, search)
        out = result.to_dict(explain)
        if self.calibration is not None:  # fitted on cosines: a fused or BM25 score is no cosine
            for hit, row in zip(result.hits, out["hits"]):
                cosine = hit.dense_score
                row["relevance"] = None if cosine is None else round(self.calibration.relevance(cosine), 4)
        return out

    def info(self) -> dict[str, Any]:
        """Model, settings, index, limits, batching so far and the score calibration."""
        index = self._on_index_thread(self.retriever.index.info) if self.retriever is not None else None
        return {
            "model": self.encoder.model_name, "fingerprint": self.encoder.fingerprint,
            "dimension": self.encoder.dimension, "settings": self.encoder.config.to_dict(),
            "index": index, "limits": self.limits.to_dict(), "batching": self.batcher.stats.to_dict(),
            "score_calibration": self.calibration.to_dict() if self.calibration else None,
        }

    def close(self) -> None:
        """Finish queued work, then release the model thread and the index."""
        self.batcher.close()
        if self.retriever is not None:
            self._on_index_thread(self.retriever.close)
        self._index_thread.shutdown(wait=True)
