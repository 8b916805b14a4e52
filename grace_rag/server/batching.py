"""Micro-batching: encode requests from many clients are run together, in model calls shared fairly.

One worker thread owns the encoder (and its SQLite cache). It takes every request waiting (plus
whatever arrives within ``max_wait_s``; 0 = no waiting: batches form from the requests queued
during the previous call) and makes one ``encoder.encode`` call at a time, for one role. A call
holds at most ``max_texts`` texts and ``max_tokens`` tokens (one model batch of the encoder), taken
one text at a time from each waiting request in turn (:func:`plan_call`): a request of a hundred
long texts is split over many calls, and a one-text query that arrives meanwhile rides in the
next call instead of waiting for all of them. Roles take turns, so queries never wait behind more
than one call of documents.
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
    tokens: list[int] = field(default_factory=list)  # tokens per text (what the client is told it used)
    costs: list[int] = field(default_factory=list)  # tokens per text in a model batch (truncated ones cut)
    parts: list[Encoded] = field(default_factory=list)  # what the calls so far returned, in order
    done: int = 0  # texts encoded so far

    @property
    def finished(self) -> bool:
        return self.future.done()


@dataclass
class BatchStats:
    """How requests were grouped: model calls, texts, requests and the largest batch (in requests)."""

    calls: int = 0
    texts: int = 0
    requests: int = 0
    largest: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "texts": self.texts, "requests": self.requests, "largest_batch_requests": self.largest}


def plan_call(waiting: Sequence[Sequence[int]], max_texts: int, max_tokens: int | None) -> list[int]:
    """How many of its next texts each waiting request puts into the next model call.

    ``waiting[j]`` holds the token costs of request j's texts not encoded yet, oldest request
    first. Texts are taken one per request in turn until ``max_texts`` texts or ``max_tokens``
    tokens are reached (the first text always goes, however long), so every request gets an
    equal share of the call and a short request is never held back by a long one.
    """
    taken, texts, tokens = [0] * len(waiting), 0, 0
    for turn in range(max((len(costs) for costs in waiting), default=0)):
        for j, costs in enumerate(waiting):
            if turn >= len(costs):
                continue
            if texts >= max_texts or (texts and max_tokens is not None and tokens + costs[turn] > max_tokens):
                return taken
            taken[j] += 1
            texts, tokens = texts + 1, tokens + costs[turn]
    return taken


class MicroBatcher:
    """Collects ``encode`` requests from any thread and runs them in fair shares of model calls on one thread."""

    def __init__(self, encoder: Any, max_texts: int = 64, max_wait_s: float = 0.0,
                 count_tokens: Callable[[list[str]], list[int]] | None = None, max_tokens: int | None = None) -> None:
        self.encoder = encoder
        self.max_texts = max_texts
        self.max_wait_s = max_wait_s
        config = getattr(encoder, "config", None)
        self.max_tokens = max_tokens if max_tokens is not None else getattr(config, "max_batch_tokens", None)
        self._input_tokens = getattr(config, "max_input_tokens", None)  # longer texts are truncated to this
        self.stats = BatchStats()
        self._count_tokens = count_tokens or (lambda texts: [0] * len(texts))
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._last_role: str | None = None
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

    # -- the worker thread ------------------------------------------------------------------
    def _run(self) -> None:
        active: list[_Job] = []
        stopping = False
        while True:
            if not active and stopping:
                return
            stopping = self._gather(active) or stopping
            if active:
                self._call(active)
                active[:] = [job for job in active if not job.finished]

    def _gather(self, active: list[_Job]) -> bool:
        """Add the requests waiting (blocking for one when there is no work, then up to ``max_wait_s``
        for company); True once the stop signal was seen."""
        deadline, waiting = None, sum(len(job.texts) - job.done for job in active)
        while True:
            try:
                if not active:
                    job = self._queue.get()
                    deadline = time.monotonic() + self.max_wait_s
                elif deadline is not None and waiting < self.max_texts:
                    job = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
                else:
                    job = self._queue.get_nowait()
            except queue.Empty:
                return False
            if job is None:
                return True
            self._start(job)
            if not job.finished:
                active.append(job)
                waiting += len(job.texts)

    def _start(self, job: _Job) -> None:
        """Count a new request's tokens (what limits a model call); an empty one is answered at once."""
        if not job.texts:
            job.future.set_result(Encoded(np.zeros((0, getattr(self.encoder, "dimension", 0)), np.float32), [], []))
            return
        try:
            counts = self._count_tokens(job.texts)
        except Exception:  # texts the tokenizer refuses: the encoder will say why
            counts = [0] * len(job.texts)
        limit = self._input_tokens
        job.tokens, job.costs = list(counts), [min(c, limit) if limit else c for c in counts]

    def _call(self, active: list[_Job]) -> None:
        """One model call for one role (roles take turns), each request contributing its fair share."""
        roles = list(dict.fromkeys(job.role for job in active))
        role = next((r for r in roles if r != self._last_role), roles[0])
        self._last_role = role
        group = [job for job in active if job.role == role]
        shares = plan_call([job.costs[job.done:] for job in group], self.max_texts, self.max_tokens)
        pieces = [(job, job.texts[job.done:job.done + n], job.tokens[job.done:job.done + n])
                  for job, n in zip(group, shares) if n]
        texts = [text for _, part, _ in pieces for text in part]
        try:
            encoding = self.encoder.encode(texts, role=role)
        except Exception as exc:  # every request in the call gets the error, the worker keeps running
            if not isinstance(exc, GraceError):
                logger.exception("encoding a batch of %d texts failed", len(texts))
            for job, _, _ in pieces:
                job.future.set_exception(exc)
            return
        start = 0
        for job, part, tokens in pieces:
            end = start + len(part)
            job.parts.append(Encoded(encoding.vectors[start:end], encoding.rationales[start:end], list(tokens)))
            job.done += len(part)
            start = end
            if job.done == len(job.texts):
                job.future.set_result(_joined(job.parts))
        self._record(len(pieces), len(texts), sum(job.finished for job, _, _ in pieces))

    def _record(self, requests: int, texts: int, finished: int) -> None:
        """Count a call: ``requests`` shared it, ``finished`` of them are now complete."""
        self.stats.calls += 1
        self.stats.texts += texts
        self.stats.requests += finished
        self.stats.largest = max(self.stats.largest, requests)


def _joined(parts: list[Encoded]) -> Encoded:
    """One request's pieces from several calls, in order."""
    if len(parts) == 1:
        return parts[0]
    return Encoded(np.concatenate([p.vectors for p in parts]), [r for p in parts for r in p.rationales],
                   [t for p in parts for t in p.tokens])
