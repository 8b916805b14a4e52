"""Keeping an index directory's lexical part (``lexical/``) in step with its chunk store.

chunks.sqlite is the source of truth. The lexical index in memory is valid for one store
revision; ``manifest.json`` records which revision (and which file contents) ``lexical/``
reflects. Whatever is missing, older than the store or altered is rebuilt from the store, with
a one-line warning when it was found so on disk (an index written before hybrid search, a
crash between writes, a damaged file); it is never an error.
"""

from __future__ import annotations

import logging
from pathlib import Path

from grace_rag.errors import GraceIndexError
from grace_rag.indexes.files import MANIFEST_FILE
from grace_rag.indexes.lexical import (
    LEXICAL_DIR, LexicalDamage, LexicalIndex, LexicalOutdated, LexicalText, check_revision,
)
from grace_rag.indexes.lock import WriteLock, repairing
from grace_rag.indexes.manifest import Manifest, read_manifest, write_manifest
from grace_rag.indexes.repair import catch_up
from grace_rag.indexes.store import ChunkStore

logger = logging.getLogger(__name__)


class LexicalSide:
    """The lexical index of one directory: loaded on first use, rebuilt when the store moved on."""

    def __init__(self, path: Path, store: ChunkStore, manifest: Manifest, lock: WriteLock | None = None) -> None:
        self.path = Path(path)
        self.store = store
        self.manifest = manifest
        self.lock = lock  # repairs on disk only while this process may write (see indexes.lock)
        self._index: LexicalIndex | None = None
        self._changed = False  # this process changed the store since opening it

    def mark_changed(self) -> None:
        """Chunks were written or deleted: the next search rebuilds from the store."""
        self._changed = True

    def current(self, repair: bool = True) -> LexicalIndex:
        """The lexical index for the store as it is now (from memory, from disk, or rebuilt).

        With ``repair``, a lexical part found missing or damaged on disk is rewritten at once
        when the rest of the directory is up to date (a reader fixing it for the next reader).
        """
        revision = self.store.revision
        if self._index is not None and self._index.revision == revision:
            return self._index
        if self._index is None and not self._changed:
            try:
                self._index = self._load(revision)
                return self._index
            except LexicalDamage as damage:
                found = damage
            if catch_up(self.path, self.manifest):  # a writer saved after the manifest was read
                try:
                    self._index = self._load(revision)
                    return self._index
                except LexicalDamage as damage:
                    found = damage
            self._index = self._rebuild(revision)
            self._report(found, repair and self.manifest.faiss_revision == revision)
            return self._index
        self._index = self._rebuild(revision)
        return self._index

    def sync(self) -> None:
        """Make ``lexical/`` and the manifest's record of it match the store (called by ``GraceIndex.save``)."""
        revision = self.store.revision
        in_memory = self._index is None or self._index.revision == revision
        if self.manifest.lexical_revision == revision and in_memory and (self.path / LEXICAL_DIR).is_dir():
            return
        index = self.current(repair=False)
        self.manifest.lexical_digest = index.save(self.path)
        self.manifest.lexical_revision = index.revision

    def _load(self, revision: int) -> LexicalIndex:
        """lexical/ as saved, if it reflects ``revision`` of the store (else LexicalDamage)."""
        check_revision(self.manifest.lexical_revision, revision)
        return LexicalIndex.load(self.path, self.manifest.lexical_digest, revision, self.store.count(),
                                 self.manifest.lexical_text)

    def _rebuild(self, revision: int) -> LexicalIndex:
        text = self.manifest.lexical_text
        fids, texts = self.store.texts(with_rationales=text is LexicalText.TEXT_AND_RATIONALE)
        logger.info("building the lexical index of %s from %d chunks (%s)", self.path, len(texts), text.value)
        return LexicalIndex.build(fids, texts, revision, text=text)

    def reset(self) -> None:
        """What BM25 indexes changed: the next search and save rebuild lexical/ from the store."""
        self._index, self._changed = None, True
        self.manifest.lexical_revision = -1

    def _report(self, damage: LexicalDamage, repair: bool) -> None:
        """Say what was found (a warning, unless another process is writing: then the files are in flux),
        and with ``repair`` rewrite lexical/ while no other process writes."""
        with repairing(self.lock) as may_write:
            # another process is writing (it rewrites lexical/ itself), or finished since: search from memory
            if not may_write or catch_up(self.path, self.manifest):
                logger.info("lexical index of %s is %s while another process writes to it; searching a copy "
                            "built from chunks.sqlite", self.path, damage)
                return
            # said with the manifest, or an index of an older grace-rag brought up to date
            level = logging.INFO if self.manifest.recreated or isinstance(damage, LexicalOutdated) else logging.WARNING
            stale = " (an interrupted run)" if str(damage).startswith("older") else ""
            logger.log(level, "lexical index of %s is %s%s; building it from chunks.sqlite", self.path, damage, stale)
            if repair:
                self._repair_on_disk(self._index)

    def _repair_on_disk(self, index: LexicalIndex) -> None:
        """Write lexical/ and only the lexical fields of manifest.json (another process may own the rest);
        called while this process may write."""
        try:
            digest = index.save(self.path)
            on_disk = read_manifest(self.path / MANIFEST_FILE)
            on_disk.lexical_revision, on_disk.lexical_digest = index.revision, digest
            write_manifest(self.path / MANIFEST_FILE, on_disk)
        except (OSError, GraceIndexError) as exc:  # a read-only directory still searches from memory
            logger.warning("cannot write the rebuilt lexical index to %s (%s)", self.path, exc)
            return
        self.manifest.lexical_revision, self.manifest.lexical_digest = index.revision, digest

    def loaded_documents(self) -> int | None:
        """How many chunks the in-memory lexical index holds (None when not loaded)."""
        return None if self._index is None else len(self._index)
