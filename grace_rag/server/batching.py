"""Micro-batching: encode requests from many clients are run together, one encoder call per role.

One worker thread owns the encoder (and its SQLite cache). It takes the first waiting request,
then everything that arrived while the model was busy, plus whatever arrives within
``max_wait_s`` (0 = no waiting: batches form from the requests queued during the previous
call), up to ``max_texts`` texts, and runs each role's texts as one ``encoder.encode`` call.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grace_rag.errors import GraceError

logger = logging.getLogger(__name__)


class ShuttingDown(GraceError):
    """The server stopped accepting work (it is shutting down)."""


@dataclass
class Encoded:
    """One request's share of a batch: vectors (n, d), rationales and token counts."""

    vectors: np.ndarray
    rationales: list[str]
    tokens: list[int]


@dataclass
class _Job:
    texts: list[str]
    role: str
    future: Future = field(default_factory=Future)


@dataclass
class BatchStats:
    """How requests were grouped: model calls, texts, requests and the largest batch (in requests)."""

    calls: int = 0
    texts: int = 0
    requests: int = 0
    largest: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "texts": self.texts, "requests": self.requests, "largest_batch_requests": self.largest}


class MicroBatcher:
    """Collects ``encode`` requests from any thread and runs them in batches on one worker thread."""

    def __init__(self, encoder: Any, max_texts: int = 64, max_wait_s: float = 0.0,
                 count_tokens: Callable[[list[str]], list[int]] | None = None) -> None:
        self.encoder = encoder
        self.max_texts = max_texts
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._count_tokens = count_tokens or (lambda texts: [0] * len(texts))
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="grace-rag-batcher", daemon=True)
        self._thread.start()

    def submit(self, texts: Sequence[str], role: str) -> Future:
        """A future of :class:`Encoded` for ``texts``; after :meth:`close` a ShuttingDown error."""
        job = _Job(list(texts), role)
        with self._lock:
            if self._closed:
                raise ShuttingDown("the server is shutting down; retry on another instance")
            self._queue.put(job)
        return job.future

    def encode(self, texts: Sequence[str], role: str) -> Encoded:
        """Blocking :meth:`submit` (for worker threads)."""
        return self.submit(texts, role).result()

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting requests, finish the queued ones, stop the worker thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, stop = self._gather(job)
            self._execute(jobs)
            if stop:
                return

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` plus the requests already waiting or arriving within ``max_wait_s``; (jobs, stop seen)."""
        jobs, size = [first], len(first.texts)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_texts:
            try:
                job = self._queue.get(timeout=max(deadline - time.monotonic(), 0)) if self.max_wait_s else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            size += len(job.texts)
        return jobs, False

    def _execute(self, jobs: list[_Job]) -> None:
        for role in dict.fromkeys(job.role for job in jobs):
            group = [job for job in jobs if job.role == role]
            texts = [text for job in group for text in job.texts]
            try:
                encoding = self.encoder.encode(texts, role=role)
                tokens = self._count_tokens(texts)
            except Exception as exc:  # every waiting client gets the error, the worker keeps running
                if not isinstance(exc, GraceError):
                    logger.exception("encoding a batch of %d texts failed", len(texts))
                for job in group:
                    job.future.set_exception(exc)
                continue
            self._record(len(group), len(texts))
            start = 0
            for job in group:
                end = start + len(job.texts)
                job.future.set_result(Encoded(encoding.vectors[start:end], encoding.rationales[start:end], tokens[start:end]))
                start = end

    def _record(self, requests: int, texts: int) -> None:
        self.stats.calls += 1
        self.stats.texts += texts
        self.stats.requests += requests
        self.stats.largest = max(self.stats.largest, requests)
