"""SQLite chunk store: the source of truth of an index (texts, metadata, rationales, vectors)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from grace_rag.errors import GraceIndexError
from grace_rag.indexes.files import apply_modes
from grace_rag.indexes.filters import Filter, to_sql
from grace_rag.indexes.records import Chunk, Hit

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    fid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL DEFAULT '',
    position INTEGER NOT NULL DEFAULT 0,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    content_hash TEXT NOT NULL,
    rationale TEXT NOT NULL DEFAULT '',
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source);
CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(content_hash);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    indexed_at REAL NOT NULL
);
"""
HIT_COLUMNS = "fid, id, text, source, position, metadata, rationale"


def _vector_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


TABLES = {"meta", "chunks", "files"}
STORE_VERSION = 1  # meta "store_version"; a store without it is version 1
#: how long a connection waits for another process's transaction to let go of the file before
#: giving up (SQLite's busy timeout): a writer commits one batch at a time, so readers wait only
#: for a commit, but a busy disk can make a commit's fsync take seconds
BUSY_TIMEOUT_S = 60.0


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether a SQLite error means "another connection holds the file" (not damage)."""
    name = getattr(exc, "sqlite_errorname", "")
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in str(exc)


def busy_message(path: Path) -> str:
    return (f"{path} stayed locked by another process for {BUSY_TIMEOUT_S:g} s (a write being committed); "
            "nothing is damaged: run this again when that process has finished")


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode={mode}", uri=True, timeout=BUSY_TIMEOUT_S,
                           isolation_level=None)


def store_state(path: Path) -> str:
    """What the file at ``path`` is, read without writing: "missing", "unborn" (empty, or created by a
    run killed before it recorded its encoder), "store" (a chunk store), "interrupted" (unreadable
    without writing: a transaction cut short left its rollback journal, or one is being committed
    right now), "busy" (another process kept it locked past the busy timeout) or "foreign"."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if path.stat().st_size == 0:
        return "unborn"
    try:
        with closing(_connect(path, "ro")) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables - TABLES - {"sqlite_sequence"}:
                return "foreign"
            if not TABLES <= tables:  # a schema half written by a run killed before this was one transaction
                return "unborn"
            born = db.execute("SELECT 1 FROM meta WHERE key = 'encoder'").fetchone() is not None
            empty = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == 0
    except sqlite3.DatabaseError as exc:
        if is_busy(exc):
            return "busy"
        journal = path.with_name(f"{path.name}-journal")
        return "interrupted" if journal.is_file() and journal.stat().st_size else "foreign"
    return "store" if born or not empty else "unborn"


def roll_back_interrupted(path: Path) -> None:
    """Let SQLite roll back a transaction cut short by a killed process (opening read-write does it)."""
    with closing(_connect(path, "rw")) as db:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()


class ChunkStore:
    """One SQLite file holding every chunk; each write is one transaction and bumps ``revision``.

    ``create=True`` makes a new store; otherwise the file must already be a chunk store, and
    nothing is written into a file that is not one (an emptied or foreign file is an error).
    """

    def __init__(self, path: Path, dimension: int, *, create: bool = False) -> None:
        self.path = Path(path)
        self.dimension = dimension
        if not create and not self.path.is_file():
            raise GraceIndexError(f"{self.path} is missing; it holds the index's chunks and cannot be rebuilt from the "
                                  "other files: restore it, or index the files again into a new folder (--index NEW)")
        if not create and self.path.stat().st_size == 0:
            raise GraceIndexError(self._damaged("it is empty: 0 bytes"))
        try:
            self._db = _connect(self.path, "rwc" if create else "rw")
            if create:
                self._db.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")  # all tables or none, even if killed
            self._check_schema()
            self._db.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            if create:
                raise GraceIndexError(f"cannot create {self.path} ({exc}); choose an --index folder you can write") from None
            raise GraceIndexError(busy_message(self.path) if is_busy(exc) else self._damaged(str(exc))) from None
        if create:
            apply_modes([self.path])

    def _check_schema(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not TABLES <= tables:
            self._db.close()
            raise GraceIndexError(f"{self.path} is not a grace-rag chunk store (it has no {', '.join(sorted(TABLES - tables))} "
                                  "table); point --index at a grace-rag index directory")
        version = self._db.execute("SELECT value FROM meta WHERE key = 'store_version'").fetchone()
        if version is not None and str(version[0]) != str(STORE_VERSION):
            self._db.close()
            raise GraceIndexError(f"{self.path} has store version {version[0]}; this grace-rag reads version "
                                  f"{STORE_VERSION}: upgrade grace-rag (pip install -U grace-rag) to read it")

    def _damaged(self, why: str) -> str:
        return (f"{self.path} is damaged ({why}); it is the index's source of truth and cannot be rebuilt from the "
                "other files: restore it from a backup, or index the files again into a new folder (--index NEW)")

    # -- meta -------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._query("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, values: dict[str, str], *, bump: bool = True) -> None:
        """Record settings; ``bump=False`` for ones that change no chunk (the derived files stay current)."""
        with self._transaction():
            self._set_meta(values)
            if bump:
                self._bump()

    @property
    def revision(self) -> int:
        return int(self.get_meta("revision", "0") or 0)

    # -- writes -----------------------------------------------------------------------
    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray, *, replace: bool = True) -> tuple[list[int], list[int]]:
        """Insert or replace chunks by id; return (fids whose old vector is gone, fids written)."""
        replaced, written = [], []
        with self._transaction():
            for chunk, vector in zip(chunks, vectors, strict=True):
                old = self._db.execute("SELECT fid FROM chunks WHERE id = ?", (chunk.id,)).fetchone()
                if old and not replace:
                    raise GraceIndexError(f"chunk id {chunk.id!r} already exists; use upsert to replace it")
                row = (chunk.source, chunk.position, chunk.text, json.dumps(chunk.metadata, sort_keys=True),
                       chunk.content_hash, chunk.rationale, _vector_blob(vector))
                if old:
                    self._db.execute(
                        "UPDATE chunks SET source=?, position=?, text=?, metadata=?, content_hash=?, "
                        "rationale=?, vector=? WHERE fid=?", (*row, old[0]))
                    replaced.append(old[0])
                    written.append(old[0])
                else:
                    cur = self._db.execute(
                        "INSERT INTO chunks (source, position, text, metadata, content_hash, rationale, vector, id) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*row, chunk.id))
                    written.append(int(cur.lastrowid))
            self._bump()
        return replaced, written

    def delete(self, ids: Iterable[str]) -> list[int]:
        """Delete chunks by id; return the FAISS ids removed."""
        ids = list(ids)
        removed = []
        with self._transaction():
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                removed += [r[0] for r in self._db.execute(f"SELECT fid FROM chunks WHERE id IN ({marks})", part)]
                self._db.execute(f"DELETE FROM chunks WHERE id IN ({marks})", part)
            self._bump()
        return removed

    def finish_file(self, path: str, file_hash: str, keep_ids: Sequence[str]) -> list[int]:
        """Record a fully indexed file and drop its chunks that are no longer produced."""
        stale = [i for i in self.ids_for_source(path) if i not in set(keep_ids)]
        removed = self.delete(stale) if stale else []
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                             (path, file_hash, len(keep_ids), time.time()))
            self._bump()
        return removed

    def forget_file(self, path: str) -> list[int]:
        """Remove a deleted file and all its chunks; return the FAISS ids removed."""
        removed = self.delete(self.ids_for_source(path))
        with self._transaction():
            self._db.execute("DELETE FROM files WHERE path = ?", (path,))
            self._bump()
        return removed

    # -- reads ------------------------------------------------------------------------
    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def file_hashes(self) -> dict[str, str]:
        return dict(self._query("SELECT path, hash FROM files").fetchall())

    def ids_for_source(self, source: str) -> list[str]:
        return [r[0] for r in self._query("SELECT id FROM chunks WHERE source = ? ORDER BY position", (source,))]

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """id -> content hash for the given ids that exist."""
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            sql = f"SELECT id, content_hash FROM chunks WHERE id IN ({','.join('?' * len(part))})"
            out.update(self._query(sql, part).fetchall())
        return out

    def embedded(self, hashes: Sequence[str]) -> dict[str, tuple[np.ndarray, str]]:
        """content hash -> (vector, rationale) for texts already embedded under any id."""
        out: dict[str, tuple[np.ndarray, str]] = {}
        for start in range(0, len(hashes), 500):
            part = list(hashes[start : start + 500])
            sql = f"SELECT content_hash, vector, rationale FROM chunks WHERE content_hash IN ({','.join('?' * len(part))})"
            for h, blob, rationale in self._query(sql, part):
                out[h] = (self._vector(blob), rationale)
        return out

    def iter_vectors(self, block: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(fids, vectors) blocks in fid order, for rebuilding the FAISS index."""
        last = -1
        while True:
            rows = self._query("SELECT fid, vector FROM chunks WHERE fid > ? ORDER BY fid LIMIT ?", (last, block)).fetchall()
            if not rows:
                return
            fids = np.array([r[0] for r in rows], dtype=np.int64)
            yield fids, np.stack([self._vector(r[1]) for r in rows])
            last = int(fids[-1])

    def matching(self, where: Filter) -> tuple[np.ndarray, np.ndarray]:
        """(fids, vectors) of the chunks that match the filter ``where``."""
        clause, params = to_sql(where)
        rows = self._query(f"SELECT fid, vector FROM chunks WHERE {clause}", params).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dimension), dtype=np.float32)
        return np.array([r[0] for r in rows], dtype=np.int64), np.stack([self._vector(r[1]) for r in rows])

    def matching_fids(self, where: Filter) -> np.ndarray:
        clause, params = to_sql(where)
        return np.array([r[0] for r in self._query(f"SELECT fid FROM chunks WHERE {clause}", params)], dtype=np.int64)

    def sample_vectors(self, limit: int) -> np.ndarray:
        """About ``limit`` vectors spread evenly over the store (deterministic), for training."""
        step = max(1, self.count() // max(limit, 1))
        rows = self._query("SELECT vector FROM chunks WHERE fid % ? = 0 LIMIT ?", (step, limit)).fetchall()
        return np.stack([self._vector(r[0]) for r in rows]) if rows else np.zeros((0, self.dimension), np.float32)

    def sample_rows(self, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """(fids, vectors) of about ``limit`` chunks spread evenly over the store, deterministic and
        apart from :meth:`sample_vectors`'s (used as queries to measure an index's recall)."""
        step = max(1, self.count() // max(limit, 1))
        rows = self._query("SELECT fid, vector FROM chunks WHERE fid % ? = ? LIMIT ?",
                           (step, step // 2, limit)).fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, self.dimension), np.float32)
        return np.array([r[0] for r in rows], dtype=np.int64), np.stack([self._vector(r[1]) for r in rows])

    def count_matching(self, where: Filter) -> int:
        clause, params = to_sql(where)
        return int(self._query(f"SELECT COUNT(*) FROM chunks WHERE {clause}", params).fetchone()[0])

    def hit_map(self, fids: Sequence[int]) -> dict[int, Hit]:
        """fid -> stored chunk (score 0) for the fids that are still stored."""
        out: dict[int, Hit] = {}
        fids = [int(f) for f in fids]
        for start in range(0, len(fids), 500):
            part = fids[start : start + 500]
            sql = f"SELECT {HIT_COLUMNS} FROM chunks WHERE fid IN ({','.join('?' * len(part))})"
            for r in self._query(sql, part):
                out[r[0]] = Hit(id=r[1], score=0.0, text=r[2], source=r[3], position=r[4],
                                metadata=json.loads(r[5]), rationale=r[6])
        return out

    def hits(self, fids: Sequence[int], scores: Sequence[float]) -> list[Hit]:
        """The stored chunks for FAISS ids, in the given order (ids no longer stored are skipped)."""
        rows = self.hit_map(fids)
        return [replace(hit, score=float(s)) for f, s in zip(fids, scores) if (hit := rows.get(int(f))) is not None]

    def texts(self, with_rationales: bool = False) -> tuple[np.ndarray, list[str]]:
        """(fids, texts) of every chunk in fid order, for building the lexical index; ``with_rationales``
        appends each chunk's rationale to its text (on a new line)."""
        rows = self._query("SELECT fid, text, rationale FROM chunks ORDER BY fid").fetchall()
        texts = [f"{r[1]}\n{r[2]}" if with_rationales and r[2] else r[1] for r in rows]
        return np.array([r[0] for r in rows], dtype=np.int64), texts

    def metadata_keys(self) -> list[str]:
        """Every key used in any chunk's metadata, sorted."""
        sql = "SELECT DISTINCT j.key FROM chunks, json_each(chunks.metadata) AS j ORDER BY j.key"
        return [r[0] for r in self._query(sql)]

    def sources(self) -> list[str]:
        """Every distinct source of a chunk or an indexed file, sorted."""
        return [r[0] for r in self._query("SELECT source FROM chunks UNION SELECT path FROM files ORDER BY 1")]

    def sources_under(self, source: str) -> list[str]:
        """Sources (of chunks or indexed files) equal to ``source`` or inside it when it is a folder.

        The empty source (chunks added without one) is no folder: it matches only itself.
        """
        prefix = source.rstrip("/") + "/" if source else ""
        sql = ("SELECT source FROM chunks WHERE source = ?1 OR (?2 != '' AND substr(source, 1, length(?2)) = ?2) "
               "UNION SELECT path FROM files WHERE path = ?1 OR (?2 != '' AND substr(path, 1, length(?2)) = ?2) ORDER BY 1")
        return [r[0] for r in self._query(sql, (source, prefix))]

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored chunks by id (score 0), in the given order."""
        marks = ",".join("?" * len(ids))
        rows = self._query(f"SELECT fid FROM chunks WHERE id IN ({marks})", list(ids)).fetchall()
        by_id = {h.id: h for h in self.hits([r[0] for r in rows], [0.0] * len(rows))}
        return [by_id[i] for i in ids if i in by_id]

    def close(self) -> None:
        self._db.close()

    # -- internals --------------------------------------------------------------------
    def _vector(self, blob: bytes) -> np.ndarray:
        vector = np.frombuffer(blob, dtype=np.float32)
        if vector.shape[0] != self.dimension:
            raise GraceIndexError(self._damaged(f"it holds a vector of dimension {vector.shape[0]}, "
                                                f"the index's dimension is {self.dimension}"))
        return vector

    def _query(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.OperationalError as exc:  # locked, or a query this store cannot run: nothing is damaged
            if is_busy(exc):
                raise GraceIndexError(busy_message(self.path)) from None
            raise GraceIndexError(f"cannot read the chunk store {self.path} ({exc})") from None
        except sqlite3.DatabaseError as exc:  # malformed pages, not a database
            raise GraceIndexError(self._damaged(str(exc))) from None

    def _set_meta(self, values: dict[str, str]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))

    def _bump(self) -> None:
        self._db.execute(
            "INSERT INTO meta VALUES ('revision', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db, self.path)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error; SQLite errors become GraceIndexError."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db, self._path = db, path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise GraceIndexError(f"cannot write the chunk store {self._path} ({exc})") from None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.DatabaseError as err:
                raise GraceIndexError(f"cannot write the chunk store {self._path} ({err})") from None
            return False
        self._db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.DatabaseError):
            raise GraceIndexError(f"cannot write the chunk store {self._path} ({exc})") from None
        return False
