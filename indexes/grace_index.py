"""GraceIndex: a directory holding a FAISS index, its SQLite chunk store and a manifest.

It stores and searches vectors and texts; it never encodes (``Retriever`` pairs it with its model).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from grace_rag.config import parse_choice
from grace_rag.errors import GraceIndexError
from grace_rag.indexes.nprobe import CALIBRATION_QUERIES, calibrate_nprobe
from grace_rag.indexes.factory import (
    AUTO, EXACT_FALLBACK, SearchParams, apply_search_params, build_index, resolve_factory, supports_removal,
    train_index, training_minimum,
)
from grace_rag.indexes.files import (  # noqa: F401 (file names re-exported)
    INDEX_FILE, LOCK_FILE, MANIFEST_FILE, STORE_FILE, check_index_path, checksum,
)
from grace_rag.indexes.filters import Filter, check_keys, parse_filter
from grace_rag.indexes.fusion import FusionConfig, SearchMode, fuse, single_side
from grace_rag.indexes.lexical import LEXICAL_DIR, LexicalText, remove_leftovers
from grace_rag.indexes.lexical_sync import LexicalSide
from grace_rag.indexes.lock import WriteLock, repairing
from grace_rag.indexes.manifest import Manifest, atomic_write_bytes, write_manifest
from grace_rag.indexes.records import Chunk, EncoderInfo, Hit, check_chunks, check_fingerprint
from grace_rag.indexes.repair import (
    catch_up, check_is_index, load_manifest, read_faiss, recorded_encoder, remove_unborn_store, store_meta,
)
from grace_rag.indexes.search import choose_mode, dense_ranking, to_hits
from grace_rag.indexes.projected import PROJECTED_MIN, fill_hnsw_projected, hnsw_of
from grace_rag.indexes.sharded import SHARDED_MIN, fill_sharded, is_ivf
from grace_rag.indexes.store import ChunkStore
from grace_rag.textio import check_text

logger = logging.getLogger(__name__)


class IndexExistsError(GraceIndexError):
    """``create`` found an index already there (possibly made by another process a moment ago)."""


class GraceIndex:
    """Add, upsert, delete and search chunks; ``save`` makes the directory consistent on disk.

    chunks.sqlite is written transactionally on every change and is the source of truth;
    index.faiss, lexical/ and manifest.json are rewritten atomically by ``save`` and rebuilt
    from the store whenever they lag behind it.
    """

    def __init__(self, path: Path, store: ChunkStore, manifest: Manifest, index: faiss.Index,
                 lock: WriteLock | None = None) -> None:
        self.path = Path(path)
        self.store = store
        self.manifest = manifest
        self._index = index
        self._stale = False  # the in-memory FAISS index lags behind the store
        self._lock = lock or WriteLock(self.path)
        self.lexical = LexicalSide(self.path, store, manifest, self._lock)
        self._keys: tuple[int, list[str]] = (-1, [])  # (store revision, metadata keys) for filter checks
        self._untrainable: set[str] = set()  # forced factories whose training failed in this process

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, encoder: EncoderInfo, factory: str = AUTO,
               search: SearchParams | None = None, *, wait: float = 0.0, lock: WriteLock | None = None) -> "GraceIndex":
        """A new, empty index directory (an error if one is already there, or if the folder holds other files).

        The new index holds the write lock (see :meth:`lock`; ``lock`` when the caller took it first)
        until it is closed.
        """
        path = Path(path)
        if (path / MANIFEST_FILE).exists() or (path / STORE_FILE).exists():
            raise IndexExistsError(f"an index already exists at {path}; open it (GraceIndex.open) instead of creating it")
        check_index_path(path)
        build_index(resolve_factory(factory, 0), encoder.dimension)  # validate before writing anything
        path.mkdir(parents=True, exist_ok=True)
        lock = lock or WriteLock(path)
        lock.acquire(wait)
        try:
            if (path / STORE_FILE).exists():  # another process created it meanwhile
                raise IndexExistsError(f"another process created an index at {path} a moment ago; open it "
                                       "(GraceIndex.open) instead of creating it")
            store = ChunkStore(path / STORE_FILE, encoder.dimension, create=True)
            search = search or SearchParams()
            store.set_meta(store_meta(encoder, factory, search))
            manifest = Manifest(encoder=encoder, factory_request=factory, search=search)
            return cls._from_store(path, store, manifest, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(cls, path: Path, encoder: Any = None, *, lock: WriteLock | None = None) -> "GraceIndex":
        """Load an index, repairing what can be rebuilt from chunks.sqlite; with ``encoder``, refuse one
        built by a different model. ``lock``: the directory's write lock, when the caller took it first
        (a writer that must not wait for a large index to load before learning that another one runs)."""
        path = Path(path)
        check_is_index(path, lock)
        store = ChunkStore(path / STORE_FILE, 0)
        try:
            recorded = recorded_encoder(store)
            store.dimension = recorded.dimension
            lock = lock or WriteLock(path)
            manifest = load_manifest(path, store, recorded, lock)
            if encoder is not None:
                check_fingerprint(manifest.encoder, encoder if isinstance(encoder, EncoderInfo) else EncoderInfo.of(encoder), path)
            index = cls(path, store, manifest, build_index(EXACT_FALLBACK, recorded.dimension), lock)
            index._load_faiss()
        except BaseException:
            store.close()
            raise
        return index

    @classmethod
    def open_or_create(cls, path: Path, encoder: Any, factory: str | None = None) -> "GraceIndex":
        """Open ``path`` for writing (checking the encoder) or create it; recover a manifest lost in a crash."""
        info = encoder if isinstance(encoder, EncoderInfo) else EncoderInfo.of(encoder)
        index = cls.open_existing(path)
        if index is None:
            try:
                return cls.create(path, info, factory or AUTO)
            except IndexExistsError:  # another process created it meanwhile
                index = cls.open(path)
        try:
            check_fingerprint(index.manifest.encoder, info, index.path)
            index.set_factory(factory)
        except BaseException:
            index.close()
            raise
        return index

    @classmethod
    def open_existing(cls, path: Path, *, lock: WriteLock | None = None) -> "GraceIndex | None":
        """Open the index at ``path`` without an encoder check; None when there is none yet.

        A chunk store left empty by a run killed while creating it is removed (there is nothing in
        it), under the write lock so that a run creating it right now is never disturbed.
        """
        path = Path(path)
        remove_unborn_store(path, lock)
        if not (path / STORE_FILE).exists() and not (path / MANIFEST_FILE).exists():
            return None
        return cls.open(path, lock=lock)

    def lock(self, wait: float = 0.0) -> None:
        """Take the directory's write lock (done by every change; held until :meth:`close`).

        Another process holding it makes this wait up to ``wait`` seconds, then raise IndexBusyError.
        """
        self._lock.acquire(wait)

    def set_factory(self, factory: str | None) -> None:
        """Record a new FAISS factory request (``None`` keeps the current one); applied on the next refresh."""
        if factory is None or factory == self.manifest.factory_request:
            return
        build_index(resolve_factory(factory, 0), self.dimension)  # validate
        self.lock()
        self.manifest.factory_request = factory
        self.store.set_meta({"factory_request": factory}, bump=False)  # no chunk changed; refresh() rebuilds FAISS

    def set_nprobe(self, nprobe: int | None) -> None:
        """Record how many IVF lists a search visits (0: measured when the IVF index is built); ``None``
        keeps the current value. Other index types keep it for when they become IVF."""
        if nprobe is None or nprobe == self.manifest.search.nprobe:
            return
        if nprobe < 0:
            raise GraceIndexError(f"nprobe must be 0 (measured at build) or a positive number of lists, not {nprobe}")
        self.lock()
        self.manifest.search = replace(self.manifest.search, nprobe=nprobe)
        self.store.set_meta({"search": json.dumps(self.manifest.search.to_dict())}, bump=False)
        self._measure_nprobe(self._index)
        apply_search_params(self._index, self.manifest.search)

    def set_lexical_text(self, text: LexicalText | str | None) -> None:
        """Choose what BM25 indexes per chunk: ``"text"`` or ``"text+rationale"`` (the rationale each vector
        was built from); ``None`` keeps the current choice. Recorded, and the lexical side rebuilt and saved."""
        if text is None:
            return
        text = parse_choice(LexicalText, text, "lexical text")
        if text is self.manifest.lexical_text:
            return
        self.lock()
        self.manifest.lexical_text = text
        self.store.set_meta({"lexical_text": text.value}, bump=False)
        self.lexical.reset()
        self.save()

    @classmethod
    def _from_store(cls, path: Path, store: ChunkStore, manifest: Manifest, lock: WriteLock) -> "GraceIndex":
        index = cls(path, store, manifest, build_index(EXACT_FALLBACK, manifest.encoder.dimension), lock)
        index._stale = True
        index.lexical.mark_changed()  # a new index: nothing on disk to load
        index.save()
        return index

    # -- changes ----------------------------------------------------------------------
    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Add new chunks with their vectors; an id that already exists is an error."""
        self._write(chunks, vectors, replace=False)

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Add chunks, replacing any stored chunk with the same id."""
        self._write(chunks, vectors, replace=True)

    def delete(self, ids: Sequence[str]) -> int:
        """Delete chunks by id; return how many were stored."""
        self.lock()
        removed = self.store.delete(ids)
        self._remove_vectors(removed)
        return len(removed)

    def delete_source(self, source: str | Path) -> int:
        """Delete every chunk of ``source`` (a source as stored, or a folder: everything under it).

        Ingested files are stored by absolute path; the file is also forgotten, so indexing its
        folder again re-adds it if it still exists. Returns how many chunks were removed.
        """
        self.lock()
        removed: list[int] = []
        for found in self.store.sources_under(str(source)):
            removed += self.store.forget_file(found)
        self._remove_vectors(removed)
        return len(removed)

    def remove_vectors(self, fids: Sequence[int]) -> None:
        """Drop FAISS entries already deleted from the store (used by ingestion)."""
        self._remove_vectors(list(fids))

    def _write(self, chunks: Sequence[Chunk], vectors: np.ndarray, replace: bool) -> None:
        vectors = self._check_vectors(vectors, len(chunks))
        check_chunks(chunks)
        self.lock()
        replaced, written = self.store.upsert(chunks, vectors, replace=replace)
        self.lexical.mark_changed()
        self._remove_vectors(replaced)
        if self._stale or not self._index.is_trained:
            self._stale = True
        else:
            self._index.add_with_ids(vectors, np.asarray(written, dtype=np.int64))

    def _remove_vectors(self, fids: list[int]) -> None:
        if fids:
            self.lexical.mark_changed()
        if not fids or self._stale:
            return
        if supports_removal(self._index):
            self._index.remove_ids(np.asarray(fids, dtype=np.int64))
        else:
            self._stale = True  # HNSW graphs cannot forget a node: rebuild before the next search

    def _check_vectors(self, vectors: np.ndarray, n: int) -> np.ndarray:
        try:
            array = np.ascontiguousarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise GraceIndexError(f"expected {n} vector(s) of dimension {self.dimension} as float32 numbers ({exc})") from None
        if n and array.ndim == 2 and array.shape[0] != n:
            raise GraceIndexError(f"expected {n} vector(s) of dimension {self.dimension}, got an array of shape {array.shape}")
        vectors = array.reshape(n, -1) if n else np.zeros((0, self.dimension), np.float32)
        if vectors.shape[1] != self.dimension:
            raise GraceIndexError(f"vectors have dimension {vectors.shape[1]}, the index expects {self.dimension}")
        if not np.isfinite(vectors).all():
            raise GraceIndexError("vectors hold NaN or infinite values; embeddings must be finite numbers")
        return vectors

    # -- search -----------------------------------------------------------------------
    def search(self, vector: np.ndarray | None = None, k: int = 10, where: Any = None, *, text: str | None = None,
               mode: str | SearchMode | None = None, fusion: FusionConfig | None = None) -> list[Hit]:
        """The ``k`` best chunks for a query vector (dense), a query text (lexical), or both (hybrid).

        ``mode`` defaults to hybrid when both are given, else to the one side possible.
        ``where`` is a filter (a dict such as ``{"lang": "en"}`` or ``{"year": {"$gte": 2020}}``,
        see :mod:`grace_rag.indexes.filters`); it applies to both sides. Hybrid search fuses
        each side's best ``max(k, fusion.candidates)`` chunks as ``fusion`` says.
        """
        mode = choose_mode(mode, vector is not None, text is not None)
        if text is not None:
            check_text(text, "the query text")
        query = self._check_vectors(vector, 1) if vector is not None else None
        flt = self.resolve_filter(where)
        if k <= 0 or len(self) == 0:
            return []
        fusion = fusion or FusionConfig()
        depth = max(k, fusion.candidates) if mode is SearchMode.HYBRID else k
        dense = self._dense(query, depth, flt) if mode is not SearchMode.LEXICAL else []
        lexical = self._lexical(text or "", depth, flt) if mode is not SearchMode.DENSE else []
        if mode is SearchMode.HYBRID:
            fused = fuse(dense, lexical, fusion)
        else:
            fused = single_side(dense if mode is SearchMode.DENSE else lexical, mode)
        return to_hits(self.store, fused[:k])

    def _dense(self, query: np.ndarray, n: int, where: Filter | None) -> list[tuple[int, float]]:
        self.refresh()
        return dense_ranking(self._index, self.store, self.manifest.search, query, n, where)

    def _lexical(self, text: str, n: int, where: Filter | None) -> list[tuple[int, float]]:
        allowed = self.store.matching_fids(where) if where is not None else None
        return self.lexical.current().search(text, n, allowed)

    def resolve_filter(self, where: Any) -> Filter | None:
        """Parse ``where`` and check that its keys exist (a one-line ConfigError listing them otherwise)."""
        flt = parse_filter(where)
        if flt is not None:
            check_keys(flt, self.filter_keys())
        return flt

    def filter_keys(self) -> list[str]:
        """The metadata keys present in the index (columns such as ``source`` can be filtered too)."""
        revision = self.store.revision
        if self._keys[0] != revision:
            self._keys = (revision, self.store.metadata_keys())
        return self._keys[1]

    # -- persistence ------------------------------------------------------------------
    def wanted_factory(self) -> str:
        """The factory to build now: the request, or exact search while a forced one cannot be trained yet."""
        wanted = resolve_factory(self.manifest.factory_request, self.store.count(), self.dimension)
        return EXACT_FALLBACK if wanted in self._untrainable else wanted

    def refresh(self) -> None:
        """Rebuild the in-memory FAISS index from the store if it lags behind or has the wrong type."""
        wanted = self.wanted_factory()
        if self._stale or wanted != self.manifest.factory:
            self.rebuild(wanted)

    def rebuild(self, factory: str | None = None) -> None:
        """Build a fresh FAISS index from every vector in the chunk store.

        A forced factory that cannot be trained (too few vectors, or faiss refuses) gives exact
        search instead, with a warning; the directory stays usable.
        """
        factory = factory or self.wanted_factory()
        request = self.manifest.factory_request
        if factory == EXACT_FALLBACK and request not in (AUTO, EXACT_FALLBACK) and request not in self._untrainable:
            logger.warning("FAISS factory %r needs %s vectors to train and the index holds %s: search is exact (Flat) "
                           "until it holds enough", request, f"{training_minimum(request, self.dimension):,}",
                           f"{self.store.count():,}")
        index = train_index(factory, self.dimension, self.store.sample_vectors)
        if index is None:
            self._untrainable.add(factory)
            index = build_index(EXACT_FALLBACK, self.dimension)
        if index.is_trained and is_ivf(index) and self.store.count() >= SHARDED_MIN:
            index = fill_sharded(index, self.store.iter_vectors())  # parallel shards, merged into one
        elif hnsw_of(index) is not None and self.store.count() >= PROJECTED_MIN:
            index = fill_hnsw_projected(index, self.store.iter_vectors())  # graph built on a PCA projection
        else:
            for fids, vectors in self.store.iter_vectors() if index.is_trained else ():
                index.add_with_ids(vectors, fids)
        self._measure_nprobe(index, again=True)  # a new build: its nprobe "auto" is measured anew
        apply_search_params(index, self.manifest.search)
        self._index, self._stale = index, False
        self.manifest.factory = factory if factory not in self._untrainable else EXACT_FALLBACK
        logger.info("rebuilt %s FAISS index with %d vectors", self.manifest.factory, index.ntotal)

    def _measure_nprobe(self, index: faiss.Index, again: bool = False) -> None:
        """For a filled IVF index with nprobe "auto", set the manifest's measured nprobe (the smallest
        reaching TARGET_RECALL on stored vectors); unless ``again``, only when none is recorded yet."""
        search = self.manifest.search
        if not is_ivf(index) or not index.ntotal or search.nprobe or (search.tuned_nprobe and not again):
            return
        query_ids, queries = self.store.sample_rows(CALIBRATION_QUERIES)
        nprobe, recall = calibrate_nprobe(index, self.store.iter_vectors, query_ids, queries)
        self.manifest.search = replace(self.manifest.search, tuned_nprobe=nprobe, tuned_recall=recall)

    def save(self) -> None:
        """Write index.faiss and manifest.json atomically (the store is always up to date)."""
        self.lock()
        self.refresh()
        data = faiss.serialize_index(self._index).tobytes()
        self.manifest.faiss_revision = self.store.revision
        self.manifest.faiss_bytes = len(data)
        self.manifest.faiss_digest = checksum(data)
        self.manifest.counts = {"chunks": self.store.count(), "files": len(self.store.file_hashes())}
        atomic_write_bytes(self.path / INDEX_FILE, data)
        self.lexical.sync()
        write_manifest(self.path / MANIFEST_FILE, self.manifest)
        for leftover in self.path.glob(".*.tmp"):  # from a save killed half-way
            leftover.unlink(missing_ok=True)
        remove_leftovers(self.path)

    def _load_faiss(self) -> None:
        index, problem = read_faiss(self.path, self.manifest, self.store)
        if index is None and catch_up(self.path, self.manifest):  # a writer saved after the manifest was read
            index, problem = read_faiss(self.path, self.manifest, self.store)
        if index is None:
            return self._rebuild_and_save(problem)
        self._measure_nprobe(index)  # a manifest recreated from chunks.sqlite lost it (saved on next save)
        apply_search_params(index, self.manifest.search)
        self._index = index

    def _rebuild_and_save(self, problem: str) -> None:
        """index.faiss cannot be used as it is: search a copy rebuilt from the store, and write it back
        unless another process is writing (then the files are in flux, not damaged: it saves them itself)."""
        self._stale = True
        with repairing(self._lock) as may_write:
            if may_write and catch_up(self.path, self.manifest):  # a writer finished since: its files may do
                index, problem = read_faiss(self.path, self.manifest, self.store)
                if index is not None:
                    apply_search_params(index, self.manifest.search)
                    self._index, self._stale = index, False
                    return
            if not may_write:  # rebuilt in memory on first search
                logger.info("%s is %s while another process writes to %s; searching a copy rebuilt from %s",
                            self.path / INDEX_FILE, problem, self.path, STORE_FILE)
                return
            level = logging.INFO if self.manifest.recreated else logging.WARNING  # already said with the manifest
            logger.log(level, "%s is %s%s; rebuilding it from %s", self.path / INDEX_FILE, problem,
                       " (an interrupted run)" if problem.startswith("older") else "", STORE_FILE)
            try:
                self.save()
            except OSError as exc:  # a read-only directory still gets a usable in-memory index
                logger.warning("cannot write the rebuilt index to %s (%s)", self.path, exc)

    # -- facts ------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        return self.manifest.encoder.dimension

    def __len__(self) -> int:
        return self.store.count()

    def get(self, ids: Sequence[str]) -> list[Hit]:
        return self.store.get(list(ids))

    def info(self) -> dict[str, Any]:
        """Model, fingerprint, index type, counts and sizes on disk."""
        sizes = {p.name: p.stat().st_size for p in sorted(self.path.iterdir()) if p.is_file() and p.name != LOCK_FILE}
        if (self.path / LEXICAL_DIR).is_dir():
            sizes[LEXICAL_DIR + "/"] = sum(p.stat().st_size for p in (self.path / LEXICAL_DIR).iterdir() if p.is_file())
        return {
            "path": str(self.path),
            "model": self.manifest.encoder.model_name,
            "fingerprint": self.manifest.encoder.fingerprint,
            "dimension": self.dimension,
            "metric": self.manifest.metric,
            "factory": self.manifest.factory,
            "factory_request": self.manifest.factory_request,
            "search": self.manifest.search.to_dict(),
            "chunks": self.store.count(),
            "files": len(self.store.file_hashes()),
            "lexical_revision": self.manifest.lexical_revision,
            "lexical_text": self.manifest.lexical_text.value,
            "store_revision": self.store.revision,
            "encoder_settings": self.manifest.encoder.settings,
            "sizes_bytes": sizes,
            "total_bytes": sum(sizes.values()),
        }

    def close(self) -> None:
        """Close the store and release the write lock (if this index took it)."""
        self.store.close()
        self._lock.release()

    def __enter__(self) -> "GraceIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
