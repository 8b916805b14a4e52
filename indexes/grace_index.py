"""GraceIndex: a directory holding a FAISS index, its SQLite chunk store and a manifest."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from grace_rag.errors import GraceIndexError
from grace_rag.indexes.factory import (
    SearchParams, apply_search_params, build_index, choose_factory, search_parameters,
    supports_removal, training_size,
)
from grace_rag.indexes.manifest import AUTO, FORMAT, Manifest, atomic_write_bytes, read_manifest, write_manifest
from grace_rag.indexes.records import Chunk, EncoderInfo, Hit
from grace_rag.indexes.store import ChunkStore

logger = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
STORE_FILE = "chunks.sqlite"
MANIFEST_FILE = "manifest.json"
FILTER_EXACT_MAX = 4096  # a filter matching at most this many chunks is searched exactly


def resolve_factory(request: str, n_vectors: int) -> str:
    """The factory string to build: the forced one, or the automatic choice for the size."""
    return choose_factory(n_vectors) if request == AUTO else request


def check_fingerprint(built_with: EncoderInfo, encoder: EncoderInfo, where: Path) -> None:
    """Refuse to mix vectors of two different encoders, naming both and what differs."""
    if built_with.fingerprint == encoder.fingerprint:
        return
    ignored = {"batch_size", "cache", "show_progress"}
    changed = sorted(k for k in set(built_with.settings) | set(encoder.settings)
                     if k not in ignored and built_with.settings.get(k) != encoder.settings.get(k))
    if built_with.model_name != encoder.model_name:
        fix = f"use --model {built_with.model_name} or a new --index directory"
    elif changed:
        was = ", ".join(f"{k}={built_with.settings.get(k)!r}" for k in changed)
        fix = f"the settings differ (the index used {was}); use the same settings or a new --index directory"
    else:
        fix = "the model's weights changed; re-index into a new --index directory"
    raise GraceIndexError(
        f"index {where} was built with model {built_with.model_name!r} (fingerprint {built_with.fingerprint[:12]}) "
        f"but the encoder is {encoder.model_name!r} (fingerprint {encoder.fingerprint[:12]}); {fix}"
    )


class GraceIndex:
    """Add, upsert, delete and search chunks; ``save`` makes the directory consistent on disk.

    chunks.sqlite is written transactionally on every change and is the source of truth;
    index.faiss and manifest.json are rewritten atomically by ``save`` and rebuilt from the
    store whenever they lag behind it.
    """

    def __init__(self, path: Path, store: ChunkStore, manifest: Manifest, index: faiss.Index) -> None:
        self.path = Path(path)
        self.store = store
        self.manifest = manifest
        self._index = index
        self._stale = False  # the in-memory FAISS index lags behind the store

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, encoder: EncoderInfo, factory: str = AUTO,
               search: SearchParams | None = None) -> "GraceIndex":
        """A new, empty index directory (an error if one is already there)."""
        path = Path(path)
        if (path / MANIFEST_FILE).exists() or (path / STORE_FILE).exists():
            raise GraceIndexError(f"an index already exists at {path}; open it instead")
        if path.exists() and not path.is_dir():
            raise GraceIndexError(f"{path} is a file, not an index directory")
        build_index(resolve_factory(factory, 0), encoder.dimension)  # validate before writing anything
        path.mkdir(parents=True, exist_ok=True)
        store = ChunkStore(path / STORE_FILE, encoder.dimension)
        store.set_meta({"format": FORMAT, "encoder": json.dumps(encoder.to_dict()), "factory_request": factory})
        manifest = Manifest(encoder=encoder, factory_request=factory, search=search or SearchParams())
        return cls._from_store(path, store, manifest)

    @classmethod
    def open(cls, path: Path, encoder: Any = None) -> "GraceIndex":
        """Load an index; with ``encoder``, refuse one built by a different model."""
        path = Path(path)
        if not path.is_dir():
            raise GraceIndexError(f"no index at {path}; build one with `grace-rag index PATH --index {path}`")
        if not (path / STORE_FILE).exists():
            raise GraceIndexError(f"{path} is not a grace-rag index (no {STORE_FILE})")
        if not (path / MANIFEST_FILE).exists() and not cls._recover_manifest(path):
            raise GraceIndexError(f"{path} is not a grace-rag index (an empty {STORE_FILE}, no {MANIFEST_FILE})")
        manifest = read_manifest(path / MANIFEST_FILE)
        store = ChunkStore(path / STORE_FILE, manifest.encoder.dimension)
        try:
            cls._check_owner(path, store, manifest, encoder)
            index = cls(path, store, manifest, build_index(manifest.factory, manifest.encoder.dimension))
            index._load_faiss()
        except BaseException:
            store.close()
            raise
        return index

    @staticmethod
    def _check_owner(path: Path, store: ChunkStore, manifest: Manifest, encoder: Any) -> None:
        """The manifest must describe this store, and ``encoder`` (if any) must be the one that built it."""
        owner = json.loads(store.get_meta("encoder", "{}") or "{}").get("fingerprint")
        if owner != manifest.encoder.fingerprint:
            raise GraceIndexError(
                f"{path / MANIFEST_FILE} does not belong to {path / STORE_FILE} (encoder fingerprints differ); "
                "the directory mixes two indexes: delete it and re-index"
            )
        if encoder is not None:
            info = encoder if isinstance(encoder, EncoderInfo) else EncoderInfo.of(encoder)
            check_fingerprint(manifest.encoder, info, path)

    @classmethod
    def open_or_create(cls, path: Path, encoder: Any, factory: str | None = None) -> "GraceIndex":
        """Open ``path`` (checking the encoder) or create it; recover a manifest lost in a crash."""
        path = Path(path)
        info = encoder if isinstance(encoder, EncoderInfo) else EncoderInfo.of(encoder)
        if (path / STORE_FILE).exists() and not (path / MANIFEST_FILE).exists() and not cls._recover_manifest(path):
            (path / STORE_FILE).unlink()  # killed before the store was initialised: start again
        if not (path / STORE_FILE).exists():
            return cls.create(path, info, factory or AUTO)
        index = cls.open(path, encoder=info)
        if factory is not None and factory != index.manifest.factory_request:
            build_index(resolve_factory(factory, 0), info.dimension)  # validate
            index.manifest.factory_request = factory
            index.store.set_meta({"factory_request": factory})
        return index

    @classmethod
    def _recover_manifest(cls, path: Path) -> bool:
        """Recreate manifest.json from the store after a crash during creation; False if the store is empty."""
        store = ChunkStore(path / STORE_FILE, 0)
        raw = store.get_meta("encoder")
        request = store.get_meta("factory_request", AUTO) or AUTO
        empty = store.count() == 0
        store.close()
        if raw is None:
            if empty:
                return False
            raise GraceIndexError(f"{path / STORE_FILE} is not a grace-rag chunk store; delete {path} and re-index")
        logger.warning("manifest.json missing in %s (interrupted creation); recreating it", path)
        manifest = Manifest(encoder=EncoderInfo.from_dict(json.loads(raw)), factory_request=request)
        write_manifest(path / MANIFEST_FILE, manifest)
        return True

    @classmethod
    def _from_store(cls, path: Path, store: ChunkStore, manifest: Manifest) -> "GraceIndex":
        manifest.factory = resolve_factory(manifest.factory_request, store.count())
        index = cls(path, store, manifest, build_index(manifest.factory, manifest.encoder.dimension))
        index._stale = True
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
        removed = self.store.delete(ids)
        self._remove_vectors(removed)
        return len(removed)

    def remove_vectors(self, fids: Sequence[int]) -> None:
        """Drop FAISS entries already deleted from the store (used by ingestion)."""
        self._remove_vectors(list(fids))

    def _write(self, chunks: Sequence[Chunk], vectors: np.ndarray, replace: bool) -> None:
        vectors = self._check_vectors(vectors, len(chunks))
        replaced, written = self.store.upsert(chunks, vectors, replace=replace)
        self._remove_vectors(replaced)
        if self._stale or not self._index.is_trained:
            self._stale = True
        else:
            self._index.add_with_ids(vectors, np.asarray(written, dtype=np.int64))

    def _remove_vectors(self, fids: list[int]) -> None:
        if not fids or self._stale:
            return
        if supports_removal(self._index):
            self._index.remove_ids(np.asarray(fids, dtype=np.int64))
        else:
            self._stale = True  # HNSW graphs cannot forget a node: rebuild before the next search

    def _check_vectors(self, vectors: np.ndarray, n: int) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(n, -1) if n else np.zeros(
            (0, self.dimension), np.float32)
        if vectors.shape[1] != self.dimension:
            raise GraceIndexError(f"vectors have dimension {vectors.shape[1]}, the index expects {self.dimension}")
        return vectors

    # -- search -----------------------------------------------------------------------
    def search(self, vector: np.ndarray, k: int = 10, where: dict[str, Any] | None = None) -> list[Hit]:
        """The ``k`` most similar chunks (cosine), optionally only those whose metadata match ``where``."""
        query = self._check_vectors(np.asarray(vector), 1)
        if k <= 0 or len(self) == 0:
            return []
        self.refresh()
        if where:
            return self._search_filtered(query, k, where)
        scores, fids = self._index.search(query, min(k, self._index.ntotal))
        keep = fids[0] >= 0
        return self.store.hits(fids[0][keep].tolist(), scores[0][keep].tolist())

    def _search_filtered(self, query: np.ndarray, k: int, where: dict[str, Any]) -> list[Hit]:
        if self.store.count_matching(where) <= FILTER_EXACT_MAX:
            fids, vectors = self.store.matching(where)
            scores = vectors @ query[0]
            order = np.argsort(-scores, kind="stable")[:k]
            return self.store.hits(fids[order].tolist(), scores[order].tolist())
        selector = faiss.IDSelectorBatch(self.store.matching_fids(where))
        params = search_parameters(self._index, self.manifest.search, selector)
        scores, fids = self._index.search(query, k, params=params)
        keep = fids[0] >= 0
        return self.store.hits(fids[0][keep].tolist(), scores[0][keep].tolist())

    def query(self, encoder: Any, text: str, k: int = 10,
              where: dict[str, Any] | None = None) -> tuple[list[Hit], str]:
        """Encode ``text`` as a query with ``encoder`` and search; return (hits, query rationale)."""
        check_fingerprint(self.manifest.encoder, EncoderInfo.of(encoder), self.path)
        encoding = encoder.encode([text], role="query")
        return self.search(encoding.vectors[0], k=k, where=where), encoding.rationales[0]

    # -- persistence ------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild the in-memory FAISS index from the store if it lags behind or has the wrong type."""
        wanted = resolve_factory(self.manifest.factory_request, self.store.count())
        if self._stale or wanted != self.manifest.factory:
            self.rebuild(wanted)

    def rebuild(self, factory: str | None = None) -> None:
        """Build a fresh FAISS index from every vector in the chunk store."""
        factory = factory or resolve_factory(self.manifest.factory_request, self.store.count())
        index = build_index(factory, self.dimension)
        sample = self.store.sample_vectors(training_size(index)) if not index.is_trained else None
        if sample is not None and len(sample):
            try:
                index.train(sample)
            except RuntimeError as exc:
                raise GraceIndexError(
                    f"cannot train FAISS index {factory!r} on {len(sample)} vectors ({str(exc).splitlines()[-1]}); "
                    "use a smaller IVF or --factory auto"
                ) from None
        for fids, vectors in self.store.iter_vectors() if index.is_trained else ():
            index.add_with_ids(vectors, fids)
        apply_search_params(index, self.manifest.search)
        logger.info("rebuilt %s FAISS index with %d vectors", factory, index.ntotal)
        self._index, self.manifest.factory, self._stale = index, factory, False

    def save(self) -> None:
        """Write index.faiss and manifest.json atomically (the store is always up to date)."""
        self.refresh()
        data = faiss.serialize_index(self._index).tobytes()
        self.manifest.faiss_revision = self.store.revision
        self.manifest.faiss_bytes = len(data)
        self.manifest.counts = {"chunks": self.store.count(), "files": len(self.store.file_hashes())}
        atomic_write_bytes(self.path / INDEX_FILE, data)
        write_manifest(self.path / MANIFEST_FILE, self.manifest)
        for leftover in self.path.glob(".*.tmp"):  # from a save killed half-way
            leftover.unlink(missing_ok=True)

    def _load_faiss(self) -> None:
        path = self.path / INDEX_FILE
        if not path.exists():
            logger.warning("%s is missing; rebuilding it from %s", path, STORE_FILE)
            return self._rebuild_and_save()
        if self.manifest.faiss_revision != self.store.revision:
            logger.warning("%s is older than %s (interrupted run); rebuilding it", path, STORE_FILE)
            return self._rebuild_and_save()
        try:
            if path.stat().st_size != self.manifest.faiss_bytes:
                raise RuntimeError(f"size {path.stat().st_size} bytes, manifest says {self.manifest.faiss_bytes}")
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise GraceIndexError(
                f"{path} is corrupted ({str(exc).strip().splitlines()[-1][:120]}); delete it and it will be "
                f"rebuilt from {STORE_FILE} on the next load"
            ) from None
        if index.d != self.dimension or index.ntotal != self.store.count():
            logger.warning("%s does not match %s; rebuilding it", path, STORE_FILE)
            return self._rebuild_and_save()
        apply_search_params(index, self.manifest.search)
        self._index = index

    def _rebuild_and_save(self) -> None:
        self._stale = True
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
        sizes = {p.name: p.stat().st_size for p in sorted(self.path.iterdir()) if p.is_file()}
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
            "encoder_settings": self.manifest.encoder.settings,
            "sizes_bytes": sizes,
            "total_bytes": sum(sizes.values()),
        }

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "GraceIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
