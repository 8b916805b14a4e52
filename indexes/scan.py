"""Which files under a folder are indexed, and which are skipped and why.

Files whose names start with "." (and everything in such folders) and files of other types are
left out silently, as before. Everything else that is not indexed is listed as skipped, with the
reason, and the rest of the folder is indexed: symbolic links, which are never followed (a link
to a file outside the folder was indexed under the link's name, a link to a folder was ignored),
broken links and link loops, FIFOs, sockets and devices, and folders or paths that cannot be read
(no permission, longer than the system's path limit).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device"}


@dataclass
class FolderScan:
    """The files to index, sorted, and the paths skipped with why (paths as they are, not yet for printing)."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def scan(root: Path, extensions: Sequence[str]) -> FolderScan:
    """Walk ``root`` (not following links) for files with one of ``extensions``."""
    root = Path(root)
    wanted = {e.lower() for e in extensions}
    found = FolderScan()

    def unreadable(exc: OSError) -> None:
        found.skipped.append((str(exc.filename or root), f"cannot be read ({exc.strerror or exc})"))

    for folder, dirs, names in os.walk(root, onerror=unreadable):
        here = Path(folder)
        dirs[:] = [name for name in dirs if not name.startswith(".") and _walked_into(here / name, root, found)]
        for name in names:
            if name.startswith(".") or Path(name).suffix.lower() not in wanted:
                continue
            reason = why_not_a_file(here / name, root)
            if reason is None:
                found.files.append(here / name)
            else:
                found.skipped.append((str(here / name), reason))
    found.files.sort()
    found.skipped.sort()
    return found


def _walked_into(path: Path, root: Path, found: FolderScan) -> bool:
    """Whether the folder entry ``path`` is walked into: not a link, and its path can be read (else it
    is listed as skipped)."""
    try:
        link = stat.S_ISLNK(path.lstat().st_mode)
    except OSError as exc:  # e.g. a path longer than the system allows
        found.skipped.append((str(path), f"cannot be read ({exc.strerror or exc})"))
        return False
    if link:
        found.skipped.append((str(path), link_reason(path, root, "folder")))
    return not link


def why_not_a_file(path: Path, root: Path) -> str | None:
    """None for a regular file that can be read; else why it is skipped."""
    try:
        mode = path.lstat().st_mode
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISLNK(mode):
        return link_reason(path, root, "file")
    if not stat.S_ISREG(mode):
        return f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'a special file')})"
    return None


def link_reason(path: Path, root: Path, what: str) -> str:
    """Why a symbolic link is skipped, naming where it points."""
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return f"a broken symbolic link (to {os.readlink(path)})"
    except (RuntimeError, OSError) as exc:  # RuntimeError: a loop (Python < 3.13); OSError ELOOP
        if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
            return "a symbolic link loop"
        return f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    where = "" if target.is_relative_to(Path(root).resolve()) else f", outside {root}"
    return (f"a symbolic link to the {what} {target}{where}; links are not followed "
            f"(index the {what} where it lies)")
