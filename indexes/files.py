"""The files of an index directory: which names belong to it, their modes, their checksums.

Every file and folder an index writes gets the permissions the user's umask gives a new file
(``0o666 & ~umask``, folders ``0o777 & ~umask``), whether it was made by SQLite, numpy or a
temporary file renamed into place. An index is only ever created in a new or empty folder, or
one that already holds only index files, never among a user's other files.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grace_rag.errors import GraceIndexError
from grace_rag.hashing import feed_file, file_digest
from grace_rag.textio import file_name, shown

DEFAULT_INDEX_DIR = Path(".grace-index")  # where the CLI and the framework retrievers look by default
STORE_FILE = "chunks.sqlite"
INDEX_FILE = "index.faiss"
MANIFEST_FILE = "manifest.json"
LEXICAL_DIR = "lexical"
LOCK_FILE = "write.lock"
#: names an index directory may hold (SQLite's journals; temporary names of interrupted saves)
INDEX_NAMES = {STORE_FILE, f"{STORE_FILE}-journal", f"{STORE_FILE}-wal", f"{STORE_FILE}-shm", INDEX_FILE,
               MANIFEST_FILE, LEXICAL_DIR, LOCK_FILE}
TEMPORARY_PREFIXES = (f".{INDEX_FILE}.", f".{MANIFEST_FILE}.", ".lexical-")

_umask_lock = threading.Lock()


def umask() -> int:
    """The process's umask (read by setting and restoring it; guarded against other threads here)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets under the user's umask."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode a new folder gets under the user's umask."""
    return 0o777 & ~umask()


def apply_modes(paths: Iterable[Path]) -> None:
    """Give files and folders the umask's modes (mkstemp/mkdtemp and SQLite choose their own)."""
    files, dirs = file_mode(), dir_mode()
    for path in paths:
        try:
            os.chmod(path, dirs if path.is_dir() else files)
        except OSError:  # not ours to change (another user's file): leave it
            pass


def foreign_entries(path: Path) -> list[str]:
    """Names in folder ``path`` that are not index files (empty when it can hold an index)."""
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir()
                  if p.name not in INDEX_NAMES and not p.name.startswith(TEMPORARY_PREFIXES))


def check_index_path(path: Path) -> None:
    """GraceIndexError when ``path`` cannot hold a new index: a file, a name that is not UTF-8, other files,
    a place where nothing can be written (a read-only mount: found before any model loads)."""
    if file_name(path) is None:
        raise GraceIndexError(f"the index path {shown(path)} is not valid UTF-8; choose another --index")
    if path.exists() and not path.is_dir():
        raise GraceIndexError(f"{shown(path)} is a file, not an index directory; choose another --index")
    others = foreign_entries(path)
    if others:
        listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise GraceIndexError(
            f"{shown(path)} holds other files ({shown(listed)}) and is not a grace-rag index; an index is only "
            "created in a new or empty folder: choose another --index (e.g. a new folder)"
        )
    check_writable(path)


def check_writable(path: Path) -> None:
    """GraceIndexError unless files can be created at ``path`` (or, while it does not exist, in the folder
    that would hold it): probed with a temporary file, removed at once."""
    folder = next(p for p in (Path(path), *Path(path).absolute().parents) if p.exists())
    try:
        fd, probe = tempfile.mkstemp(prefix=".grace-rag-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise GraceIndexError(f"cannot create an index at {shown(path)}: nothing can be written in {shown(folder)} "
                              f"({exc.strerror or exc}); choose another --index") from None


def _checksum_hasher() -> Any:
    return hashlib.blake2b(digest_size=16)


def checksum(data: bytes | memoryview) -> str:
    """The checksum recorded for a file of an index (blake2b, 128 bits, hex)."""
    hasher = _checksum_hasher()
    hasher.update(data)
    return hasher.hexdigest()


def file_checksum(path: Path) -> str:
    """:func:`checksum` of a file, read in blocks."""
    return file_digest(path, _checksum_hasher)


def directory_digest(folder: Path) -> str:
    """A content hash of every file in ``folder`` (names and bytes, in name order)."""
    digest = _checksum_hasher()
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0")
        feed_file(digest, path)
    return digest.hexdigest()
