"""The one boundary where outside bytes become text: CLI arguments, file names and file contents.

Policy, the same everywhere:

- **Text** (a query, a text to explain, a filter value, a text passed to the Python API) must be
  valid Unicode that encodes to UTF-8. Python decodes command-line arguments that are not valid
  UTF-8 into lone surrogates (``surrogateescape``); :func:`check_text` refuses them with one
  line naming the argument and the offending bytes.
- **File names** that are not valid UTF-8 cannot be stored or printed as text: :func:`file_name`
  returns ``None`` for them, and callers skip such files and list them (as they list unreadable
  files), shown with :func:`shown`, which writes undecodable bytes as ``\\xNN`` and control and
  text-direction characters (a newline or U+202E in a file name) as escapes, so a printed line is
  one line and reads in the order it is stored.
- **File contents** are UTF-8 (a BOM is dropped). :func:`decode` reports undecodable bytes as
  ``file:line:column``, and a file holding NUL bytes as binary (:class:`BinaryFileError`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from grace_rag.errors import DataError

BOM = "\ufeff"
_NOT_UTF8 = "not valid UTF-8 (byte 0x{byte:02x}); save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"


class TextError(DataError):
    """A file's bytes are not UTF-8 text: the message is ``path:line:column: detail``."""

    def __init__(self, path: str | os.PathLike[str], detail: str, line: int | None = None, column: int | None = None) -> None:
        where = "".join(f":{n}" for n in (line, column) if n is not None)
        super().__init__(f"{shown(path)}{where}: {detail}")
        self.path = shown(path)
        self.detail = detail if line is None else f"line {line}{f', column {column}' if column else ''}: {detail}"


class BinaryFileError(TextError):
    """A file that should hold text holds binary data (NUL bytes)."""


def _bad_bytes(value: str) -> str:
    """The undecodable bytes of ``value`` (lone surrogates) written as ``\\xNN``, for messages."""
    raw = value.encode("utf-8", "surrogateescape") if _only_escapes(value) else value.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def _only_escapes(value: str) -> bool:
    """Whether every lone surrogate in ``value`` stands for one undecodable byte (0xDC80-0xDCFF)."""
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in value)


def is_text(value: str) -> bool:
    """Whether ``value`` encodes to UTF-8 (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(value: str, what: str) -> str:
    """``value`` unchanged, or DataError naming ``what`` when it is not valid UTF-8 text."""
    if is_text(value):
        return value
    position = next(i for i, c in enumerate(value) if 0xD800 <= ord(c) <= 0xDFFF)
    raise DataError(
        f"{what} is not valid UTF-8 text (undecodable byte or lone surrogate at character {position}: "
        f"\"{_bad_bytes(value)[:80]}\"); pass UTF-8 text (check the terminal's or the file's encoding)"
    )


#: C0 and C1 control characters (newlines, tabs, escape sequences) and the invisible characters that
#: reorder or hide text on a terminal (bidirectional marks, overrides and isolates, line separators)
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with control and text-direction characters written as escapes (``\\n``, ``\\u202e``)."""
    return _HIDDEN.sub(lambda m: _ESCAPES.get(m.group(), f"\\u{ord(m.group()):04x}"), text)


def shown(value: str | os.PathLike[str]) -> str:
    """A printable form of a path or text, on one line: undecodable bytes as ``\\xNN``, control and
    text-direction characters as escapes (a plain string is unchanged)."""
    text = os.fspath(value)
    return printable(text if is_text(text) else _bad_bytes(text))


def file_name(path: str | os.PathLike[str]) -> str | None:
    """The path as a POSIX string when its name is valid UTF-8, else None (callers skip and list it)."""
    text = Path(path).as_posix()
    return text if is_text(text) else None


def decode(data: bytes, source: str | os.PathLike[str]) -> str:
    """UTF-8 ``data`` read from ``source`` as text; undecodable bytes are a DataError at file:line:column."""
    if b"\x00" in data:
        raise BinaryFileError(source, "binary file (holds NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise TextError(source, _NOT_UTF8.format(byte=data[exc.start]), line, column) from None
    return text[1:] if text.startswith(BOM) else text


def read_text(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of a file (see :func:`decode`); OSError when it cannot be read."""
    return decode(Path(path).read_bytes(), path)


def read_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """``(line number, line without its end)`` for every line of a UTF-8 text file; DataError at file:line."""
    try:
        handle = Path(path).open("rb")
    except OSError as exc:
        raise DataError(f"{shown(path)}: cannot be read ({exc.strerror})") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if b"\x00" in raw:
                raise BinaryFileError(path, "binary data (NUL bytes), not text", number)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TextError(path, _NOT_UTF8.format(byte=raw[exc.start]), number, exc.start + 1) from None
            if number == 1 and line.startswith(BOM):
                line = line[1:]
            yield number, line.rstrip("\r\n")
