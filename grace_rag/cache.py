"""Rationale cache: SQLite keyed by (fingerprint, role, text hash) -> rationale + vector.

WAL journal mode and a busy timeout make it safe for several processes at once. A cache object
pickles as its path: each process opens its own connection on first use (a forked or unpickled
copy never shares a connection with its parent).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from grace_rag.errors import CacheError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rationales (
    fingerprint TEXT NOT NULL,
    role TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    rationale TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (fingerprint, role, text_hash)
)
"""


def text_key(text: str) -> str:
    """Stable hash of a text (the cache key's text part)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RationaleCache:
    """A SQLite file of rationales and vectors; one connection per instance and process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._connect()  # fail here, not at the first lookup, when the file is unusable

    def _connect(self) -> sqlite3.Connection:
        existed = self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            conn.commit()
        except (sqlite3.DatabaseError, OSError) as exc:
            if not existed:  # it could not be created: the folder is not writable, nothing is damaged
                raise CacheError(f"cannot create the rationale cache {self.path} ({exc}); point GRACE_RAG_HOME at a "
                                 "folder you can write, or turn the cache off (cache=False)") from None
            raise CacheError(f"the rationale cache {self.path} cannot be opened ({exc}); if its folder is read-only, "
                             "point GRACE_RAG_HOME at a folder you can write or turn the cache off (cache=False); "
                             "if the file is damaged, delete it: it only holds a cache, rebuilt on demand") from None
        self._conn, self._pid = conn, os.getpid()
        return conn

    @property
    def _db(self) -> sqlite3.Connection:
        """This process's connection (opened on first use in a new process)."""
        if self._conn is None or self._pid != os.getpid():
            return self._connect()
        return self._conn

    def __getstate__(self) -> dict[str, object]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.path = Path(state["path"])  # type: ignore[arg-type]
        self._conn, self._pid = None, -1

    def get_many(self, fingerprint: str, role: str, keys: Sequence[str]) -> dict[str, tuple[str, np.ndarray]]:
        """Cached (rationale, vector) for whichever of ``keys`` are present."""
        found: dict[str, tuple[str, np.ndarray]] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT text_hash, rationale, vector FROM rationales WHERE fingerprint=? AND role=? AND text_hash IN ({marks})",
                [fingerprint, role, *chunk],
            )
            for key, rationale, blob in rows:
                found[key] = (rationale, np.frombuffer(blob, dtype=np.float32))
        return found

    def put_many(self, fingerprint: str, role: str, rows: Iterable[tuple[str, str, np.ndarray]]) -> None:
        """Store (text_hash, rationale, vector) rows, replacing existing ones."""
        data = [(fingerprint, role, key, rat, np.asarray(vec, dtype=np.float32).tobytes()) for key, rat, vec in rows]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO rationales VALUES (?, ?, ?, ?, ?)", data)

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM rationales").fetchone()[0])

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None
