"""Files that cannot be indexed are skipped and listed (like unreadable files); the run goes on.

Each case plants one bad file beside a good one and runs `grace-rag index` in-process. It passes
when the run succeeds, the good file is indexed, the bad one is listed under ``skipped`` with the
expected reason, nothing of it reaches the index, and the documents folder is unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from robustness_support import changes, snapshot
from typer.testing import CliRunner

from grace_rag.cli.app import app
from grace_rag.indexes import GraceIndex

pytestmark = pytest.mark.bad_input
runner = CliRunner()

CASES = {  # id: (file name as bytes, content, fragment of the reason)
    "name-not-utf8": (b"caf\xe9.txt", b"a file whose name is Latin-1", "the file name is not valid UTF-8"),
    "name-not-utf8-in-subfolder": (b"sub\xff/notes.md", b"# Notes\n\nhello", "the file name is not valid UTF-8"),
    "nul-bytes-txt": (b"zeros.txt", b"\x00" * 500, "binary file (holds NUL bytes)"),
    "binary-md": (b"image.md", bytes(range(256)) * 4, "binary file"),
    "utf16-txt": (b"wide.txt", "hello world".encode("utf-16"), "binary file"),
    "latin1-txt": (b"latin.txt", "first line\nsecond caf\u00e9 line\n".encode("latin-1"),
                   "line 2, column 11: not valid UTF-8 (byte 0xe9)"),
    "latin1-markdown": (b"latin.md", "# Cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1"), "line 1, column 5"),
    "latin1-rst": (b"latin.rst", "na\u00efve\n=====\n".encode("latin-1"), "not valid UTF-8"),
    "latin1-html": (b"page.html", "<p>caf\u00e9</p>".encode("latin-1"), "not valid UTF-8"),
    "cp1252-quotes": (b"quotes.txt", b"he said \x93hi\x94\n", "byte 0x93"),
    "truncated-utf8": (b"cut.txt", "cut here: \u00e9".encode()[:-1], "not valid UTF-8"),
    "broken-pdf": (b"broken.pdf", b"%PDF-1.4 this is not really a pdf", "PdfStreamError"),
    "text-as-pdf": (b"notes.pdf", b"just some text", "Pdf"),
    "broken-docx": (b"broken.docx", b"PK\x03\x04 not a zip archive", "BadZipFile"),
}


def _plant(folder: Path, name: bytes, content: bytes) -> Path:
    path = Path(os.fsdecode(os.fsencode(folder) + b"/" + name))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_file_is_skipped_listed_and_kept_out(case: str, work: Path, model_dir: Path):
    name, content, reason = CASES[case]
    folder = work / "mixed"
    folder.mkdir()
    (folder / "good.txt").write_text("Bees find flowers by the waggle dance.")
    bad = _plant(folder, name, content)
    before = snapshot(folder, model_dir)
    result = runner.invoke(app, ["index", "mixed", "--index", "new", "--model", str(model_dir), "--device", "cpu",
                                 "--max-rationale-tokens", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["files_indexed"] == 1 and report["files_seen"] == 2
    [skipped] = report["skipped"]
    assert reason in skipped["reason"], skipped
    assert skipped["path"].endswith(os.fsdecode(name).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
    with GraceIndex.open(work / "new") as index:
        assert [Path(s).name for s in index.store.file_hashes()] == ["good.txt"]
    assert bad.exists() and not changes(before, snapshot(folder, model_dir))


def test_the_human_summary_lists_an_undecodable_name_printably(work: Path, model_dir: Path):
    _plant(work / "docs", b"caf\xe9.txt", b"x")
    result = runner.invoke(app, ["index", "docs", "--index", "ix", "-q"])
    assert result.exit_code == 0, result.output
    assert "skipped docs/caf\\xe9.txt: the file name is not valid UTF-8" in result.stdout
