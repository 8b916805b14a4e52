"""Checking an index directory as it is opened, and what is rebuilt from chunks.sqlite.

chunks.sqlite is the source of truth; everything else is derived from it and is repaired, never
reported as fatal: a missing, empty, truncated or malformed ``manifest.json`` is recreated from
the store (which records the encoder, the factory request and the search parameters); an
``index.faiss`` that is missing, older than the store, of the wrong size, or whose checksum does
not match the one in the manifest is rebuilt from the stored vectors (``lexical/`` is checked the
same way in :mod:`grace_rag.indexes.lexical_sync`). Each repair logs one warning naming the file.

What cannot be repaired is an error naming the damaged file and the smallest safe fix, never
advice to delete data that is intact: a damaged store (restore it, or index into a new folder),
a manifest edited to disagree with the store (delete only ``manifest.json``), a newer format.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import faiss

from grace_rag.errors import GraceIndexError
from grace_rag.indexes.factory import AUTO, SearchParams, faiss_reason
from grace_rag.indexes.files import INDEX_FILE, MANIFEST_FILE, STORE_FILE, file_checksum
from grace_rag.indexes.lexical import DEFAULT_LEXICAL_TEXT, LexicalText
from grace_rag.indexes.manifest import FORMAT, Manifest, ManifestDamage, read_manifest, write_manifest
from grace_rag.indexes.records import EncoderInfo
from grace_rag.indexes.lock import WriteLock, repairing
from grace_rag.indexes.store import STORE_VERSION, ChunkStore, roll_back_interrupted, store_state
from grace_rag.textio import shown

logger = logging.getLogger(__name__)


def store_meta(encoder: EncoderInfo, factory_request: str, search: SearchParams) -> dict[str, str]:
    """What a new chunk store records about its index (enough to recreate manifest.json)."""
    return {"format": FORMAT, "store_version": str(STORE_VERSION),
            "encoder": json.dumps(encoder.to_dict()), "factory_request": factory_request,
            "search": json.dumps(search.to_dict())}


def recorded_encoder(store: ChunkStore) -> EncoderInfo:
    """The encoder the store was created with (its meta table); a damaged record is an error naming the store."""
    raw = store.get_meta("encoder")
    if raw is None:
        raise GraceIndexError(f"{store.path} has no record of the encoder that made its chunks: the chunk store is "
                              "damaged; restore it from a backup, or index the files again into a new folder")
    try:
        return EncoderInfo.from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        raise GraceIndexError(f"{store.path}: its record of the encoder is damaged ({exc}); restore the file from a "
                              "backup, or index the files again into a new folder") from None


def manifest_from_store(store: ChunkStore, encoder: EncoderInfo) -> Manifest:
    """A manifest rebuilt from what the store records (index.faiss and lexical/ are then rebuilt too)."""
    try:
        search = SearchParams.from_dict(json.loads(store.get_meta("search", "{}") or "{}"))
    except (ValueError, TypeError, AttributeError):
        search = SearchParams()
    try:
        text = LexicalText(store.get_meta("lexical_text", DEFAULT_LEXICAL_TEXT.value))
    except ValueError:
        text = DEFAULT_LEXICAL_TEXT
    return Manifest(encoder=encoder, factory_request=store.get_meta("factory_request", AUTO) or AUTO, search=search,
                    lexical_text=text, recreated=True)


def load_manifest(path: Path, store: ChunkStore, encoder: EncoderInfo, lock: WriteLock) -> Manifest:
    """manifest.json, recreated from the store when it is missing or damaged (written if no one else is writing)."""
    try:
        manifest = read_manifest(path / MANIFEST_FILE)
    except ManifestDamage as damage:
        logger.warning("%s; recreating it (and index.faiss, lexical/) from %s", damage, STORE_FILE)
        manifest = manifest_from_store(store, encoder)
        with repairing(lock) as may_write:
            try:
                if may_write:
                    write_manifest(path / MANIFEST_FILE, manifest)
            except OSError as exc:
                logger.warning("cannot write %s (%s); using the recreated manifest in memory", path / MANIFEST_FILE, exc)
        return manifest
    check_belongs(manifest, encoder, path)
    return manifest


DERIVED_FIELDS = ("factory", "search", "faiss_revision", "faiss_bytes", "faiss_digest", "lexical_revision",
                  "lexical_digest", "counts")


def catch_up(path: Path, manifest: Manifest) -> bool:
    """Refresh ``manifest``'s record of the derived files from manifest.json on disk, in place; True when
    it changed (a writer saved after this process read it, so what looked stale may be current now)."""
    try:
        on_disk = read_manifest(path / MANIFEST_FILE)
    except GraceIndexError:
        return False
    if on_disk.encoder != manifest.encoder or manifest.recreated:
        return False
    changed = [name for name in DERIVED_FIELDS if getattr(on_disk, name) != getattr(manifest, name)]
    for name in changed:
        setattr(manifest, name, getattr(on_disk, name))
    return bool(changed)


def check_belongs(manifest: Manifest, encoder: EncoderInfo, path: Path) -> None:
    """The manifest must describe the encoder the store records; else name what differs and the safe fix."""
    mine, theirs = manifest.encoder.to_dict(), encoder.to_dict()
    differs = sorted(key for key in theirs if mine.get(key) != theirs.get(key))
    if not differs:
        return
    key = differs[0]
    shown = {k: (v[:12] if k == "fingerprint" else v) for k, v in (("manifest", mine.get(key)), ("store", theirs.get(key)))}
    if key == "settings":
        changed = sorted(k for k in set(mine["settings"]) | set(theirs["settings"])
                         if mine["settings"].get(k) != theirs["settings"].get(k))
        shown = {"manifest": {k: mine["settings"].get(k) for k in changed},
                 "store": {k: theirs["settings"].get(k) for k in changed}}
    raise GraceIndexError(
        f"{path / MANIFEST_FILE} does not belong to {path / STORE_FILE} ({key}: the manifest says {shown['manifest']!r}, "
        f"the chunk store {shown['store']!r}); it was edited or copied from another index: delete only "
        f"{path / MANIFEST_FILE} and it is recreated from {STORE_FILE}"
    )


def read_faiss(path: Path, manifest: Manifest, store: ChunkStore) -> tuple[faiss.Index | None, str]:
    """``(index, "")`` when index.faiss is intact and current, else ``(None, what is wrong with it)``."""
    file = path / INDEX_FILE
    if not file.exists():
        return None, "missing"
    if manifest.faiss_revision != store.revision:
        return None, f"older than {STORE_FILE}"
    size = file.stat().st_size
    if size != manifest.faiss_bytes:
        return None, f"damaged ({size} bytes, {MANIFEST_FILE} records {manifest.faiss_bytes})"
    if manifest.faiss_digest and file_checksum(file) != manifest.faiss_digest:
        return None, f"damaged (its checksum differs from the one in {MANIFEST_FILE})"
    try:
        index = faiss.read_index(str(file))
    except RuntimeError as exc:
        return None, f"unreadable ({faiss_reason(exc)})"
    if index.d != manifest.encoder.dimension or index.ntotal != store.count():
        return None, f"out of step with {STORE_FILE} ({index.ntotal} vectors of dimension {index.d})"
    return index, ""


def settled_state(path: Path, lock: WriteLock | None = None) -> str:
    """``store_state`` of the index folder's store, after rolling back a transaction that a killed
    process left half done (under the write lock, ``lock`` when this process holds it already; while
    another process holds it, that process is alive and mid-write, and the state stays "interrupted")."""
    state = store_state(path / STORE_FILE)
    if state != "interrupted":
        return state
    with repairing(lock or WriteLock(path)) as may_write:
        if not may_write:
            return state
        try:
            roll_back_interrupted(path / STORE_FILE)
        except sqlite3.DatabaseError:
            return "foreign"
    return store_state(path / STORE_FILE)


def check_is_index(path: Path, lock: WriteLock | None = None) -> None:
    """GraceIndexError unless ``path`` holds an index: a missing folder, a folder of other files, a lost store."""
    if not path.is_dir():
        raise GraceIndexError(f"no index at {shown(path)}; build one with `grace-rag index PATH --index {shown(path)}`")
    state = settled_state(path, lock)
    if state == "missing" and (path / MANIFEST_FILE).exists():
        ChunkStore(path / STORE_FILE, 0)  # raises: the source of truth is gone, and says how to recover
    if state in ("missing", "unborn") and not (path / MANIFEST_FILE).exists():
        why = f"no {STORE_FILE}" if state == "missing" else f"an empty {STORE_FILE}, no {MANIFEST_FILE}"
        raise GraceIndexError(f"{path} is not a grace-rag index ({why}); build one with "
                              "`grace-rag index PATH --index NEW_FOLDER`")


def remove_unborn_store(path: Path, lock: WriteLock | None = None) -> None:
    """Delete a chunk store left empty by a run killed while creating it (there is nothing in it),
    under the write lock (``lock`` when this process holds it already), so that a run creating it
    right now is never disturbed."""
    if settled_state(path, lock) != "unborn" or (path / MANIFEST_FILE).exists():
        return
    lock = lock or WriteLock(path)
    held = lock.held
    lock.acquire()
    try:
        if store_state(path / STORE_FILE) == "unborn" and not (path / MANIFEST_FILE).exists():
            (path / STORE_FILE).unlink()
    finally:
        if not held:
            lock.release()
