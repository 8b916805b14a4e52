"""One writer per index directory: an advisory lock on ``write.lock`` (filelock, ``flock`` on POSIX).

Writers (``grace-rag index``, ``grace-rag delete``, a ``GraceIndex`` that adds or deletes) take
the lock before their first change and hold it until they close; a second writer waits up to
``wait`` seconds and then stops with one line. Readers never take it: SQLite transactions and
atomic renames keep what they read consistent. A reader that finds a derived file damaged
rewrites it only if the lock is free at that moment, else it repairs in memory. The lock is
released by the operating system when its process dies, so a killed writer never blocks the next.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from grace_rag.errors import GraceIndexError
from grace_rag.indexes.files import LOCK_FILE, apply_modes

logger = logging.getLogger(__name__)


class IndexBusyError(GraceIndexError):
    """Another process is writing to the index directory."""


class WriteLock:
    """The write lock of one index directory, held by this object between ``acquire`` and ``release``."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOCK_FILE
        self._lock = FileLock(str(self.path), thread_local=False)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, waiting up to ``wait`` seconds; IndexBusyError when another process keeps it."""
        if self.held:
            return
        try:
            self._lock.acquire(timeout=max(wait, 0.0))
        except Timeout:
            raise IndexBusyError(
                f"{self.path.parent} is being written by another grace-rag process (or another open GraceIndex) "
                f"that holds {self.path}; run this again when it has finished"
            ) from None
        except OSError as exc:
            raise GraceIndexError(f"cannot lock {self.path} for writing ({exc.strerror or exc})") from None
        apply_modes([self.path])  # filelock before 4.x created it 0o644 whatever the umask

    def try_acquire(self) -> bool:
        """Take the lock if it is free now (for repairs a reader may skip); False otherwise."""
        try:
            self.acquire(0.0)
        except GraceIndexError as exc:
            logger.info("not repairing files on disk: %s", exc)
            return False
        return True

    def release(self) -> None:
        if self.held:
            self._lock.release(force=True)


@contextmanager
def repairing(lock: WriteLock | None) -> Iterator[bool]:
    """Whether a repair may rewrite files now: this process holds the lock, or takes it for the repair."""
    if lock is None or lock.held:
        yield True
        return
    if not lock.try_acquire():
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
