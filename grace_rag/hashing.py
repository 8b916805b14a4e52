"""Digests of files: one streaming implementation for every file hash grace-rag records.

Each use keeps its own algorithm, since its digests are stored (indexed files' content hashes
and weights ids: SHA-256; checksums of an index's own files: BLAKE2b, 128 bits).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

BLOCK = 1 << 22  # bytes read at a time


def feed_file(hasher: Any, path: str | Path) -> Any:
    """``hasher`` (a hashlib object) updated with the bytes of the file at ``path``, read in blocks."""
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            hasher.update(block)
    return hasher


def file_digest(path: str | Path, new: Callable[[], Any] = hashlib.sha256) -> str:
    """The hex digest of a file's bytes (SHA-256 unless ``new`` makes another hashlib object)."""
    return feed_file(new(), path).hexdigest()
