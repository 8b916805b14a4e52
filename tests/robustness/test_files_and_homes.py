"""Files the folder walk meets, and where grace-rag may write (issue 21, items 9, 11, 14).

Links are never followed and, like FIFOs, broken links, loops and paths too long to read, are
listed as skipped while the rest is indexed; files over --max-file-mb are skipped at once; names
and rationales are printed on one line with control and text-direction characters escaped; a new
index where nothing can be written, and a GRACE_RAG_HOME that is a file or cannot be written, are
one line before any model loads.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from robustness_support import changes, refused, snapshot
from typer.testing import CliRunner

from grace_rag.cli.app import app
from grace_rag.indexes import GraceIndex

runner = CliRunner()
bad_input = pytest.mark.bad_input
TINY = ("--device", "cpu", "--max-rationale-tokens", "2")


def index_json(work: Path, model: Path, folder: str = "mixed", *extra: str) -> dict:
    result = runner.invoke(app, ["index", folder, "--index", "new", "--model", str(model), *TINY, "--json", *extra])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def indexed(work: Path) -> list[str]:
    with GraceIndex.open(work / "new") as index:
        return sorted(Path(s).name for s in index.store.file_hashes())


@pytest.fixture
def mixed(work: Path) -> Path:
    folder = work / "mixed"
    folder.mkdir()
    (folder / "good.txt").write_text("Bees find flowers by the waggle dance.")
    return folder


# -- 14. links, FIFOs, loops ----------------------------------------------------------------------------
def _outside_file(work: Path, mixed: Path) -> None:
    (work / "secret.txt").write_text("a file outside the indexed folder")
    (mixed / "link.txt").symlink_to(work / "secret.txt")


def _folder_link(work: Path, mixed: Path) -> None:
    (work / "elsewhere").mkdir()
    (work / "elsewhere" / "far.txt").write_text("far away")
    (mixed / "linked").symlink_to(work / "elsewhere", target_is_directory=True)


def _inside_link(work: Path, mixed: Path) -> None:
    (mixed / "again.txt").symlink_to(mixed / "good.txt")


LINK_CASES = {
    "link-to-a-file-outside": (_outside_file, "link.txt", "a symbolic link to the file", "outside"),
    "link-to-a-folder": (_folder_link, "linked", "a symbolic link to the folder", "links are not followed"),
    "link-to-a-file-inside": (_inside_link, "again.txt", "a symbolic link to the file", "index the file where it lies"),
    "broken-link": (lambda work, mixed: (mixed / "gone.txt").symlink_to(work / "nowhere.txt"), "gone.txt",
                    "a broken symbolic link", "nowhere.txt"),
    "link-loop": (lambda work, mixed: ((mixed / "a.txt").symlink_to(mixed / "b.txt"),
                                       (mixed / "b.txt").symlink_to(mixed / "a.txt")), "a.txt",
                  "a symbolic link loop", ""),
    "fifo": (lambda work, mixed: os.mkfifo(mixed / "pipe.txt"), "pipe.txt", "not a regular file (a FIFO)", ""),
}


@bad_input
@pytest.mark.parametrize("case", list(LINK_CASES))
def test_links_and_special_files_are_skipped_and_listed(case, work, mixed, model_dir):
    plant, name, reason, detail = LINK_CASES[case]
    plant(work, mixed)
    before = snapshot(mixed)
    report = index_json(work, model_dir)
    listed = [s for s in report["skipped"] if s["path"].endswith("/" + name)]
    assert listed and reason in listed[0]["reason"] and detail in listed[0]["reason"], report["skipped"]
    assert indexed(work) == ["good.txt"]
    assert not changes(before, snapshot(mixed))


@bad_input
def test_a_link_indexed_before_is_kept_not_deleted(work, mixed, model_dir):
    """An index made before links were skipped holds the link's chunks: a later run lists it, keeps them."""

    from grace_rag.indexes import Chunk

    _outside_file(work, mixed)
    link = (mixed / "link.txt").as_posix()
    encoder = _tiny(model_dir)
    with GraceIndex.open_or_create(work / "new", encoder) as index:  # what the old walk stored: the link's name
        vector = encoder.encode(["a file outside the indexed folder"]).vectors
        index.add([Chunk(id=f"{link}#0", text="a file outside the indexed folder", source=link)], vector)
        index.store.finish_file(link, "hash-of-then", [f"{link}#0"])
        index.save()
    report = index_json(work, model_dir)
    assert report["files_removed"] == 0 and report["chunks_removed"] == 0
    assert any(s["path"] == link for s in report["skipped"])
    with GraceIndex.open(work / "new") as index:
        assert link in index.store.file_hashes() and index.get([f"{link}#0"])


def _tiny(model_dir: Path):
    from grace_rag.config import EncoderConfig
    from grace_rag.indexes.service import load_encoder

    return load_encoder(str(model_dir), EncoderConfig(cache=False, max_rationale_tokens=2), "cpu")


@bad_input
def test_indexing_a_fifo_itself_is_one_line(work, model_dir):
    os.mkfifo(work / "pipe.txt")
    refused(["index", "pipe.txt", "--index", "new", "--model", model_dir, *TINY], 1,
            "pipe.txt: not a regular file (a FIFO); pass a folder or a regular file", work / "docs")


@bad_input
def test_a_path_longer_than_path_max_is_skipped_not_a_traceback(work, mixed, model_dir):
    """The issue's case: a path over PATH_MAX inside the folder aborted the whole run in scan_folder."""
    fd = os.open(mixed, os.O_RDONLY)
    try:
        for _ in range(24):  # 24 levels of 200 characters: over 4,096
            os.mkdir("d" * 200, dir_fd=fd)
            inner = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open(os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as handle:
            handle.write("too deep to be read by its path")
    finally:
        os.close(fd)
    report = index_json(work, model_dir)
    assert indexed(work) == ["good.txt"]
    assert any("File name too long" in s["reason"] for s in report["skipped"]), report["skipped"]


# -- 11. files too large, lines that cannot be split -----------------------------------------------------
@bad_input
def test_a_file_over_the_size_limit_is_skipped_at_once(work, mixed, model_dir):
    with (mixed / "huge.txt").open("wb") as handle:  # the 50 MB on one line (sparse: no disk used)
        handle.truncate(50 * 1024 * 1024)
        handle.seek(0)
        handle.write(b"lava " * 1000)
    report = index_json(work, model_dir)
    [skipped] = [s for s in report["skipped"] if s["path"].endswith("huge.txt")]
    assert skipped["reason"] == "50.0 MB of bytes, over the 10 MB limit for one file (--max-file-mb)"
    assert indexed(work) == ["good.txt"]


@bad_input
def test_a_document_whose_text_is_over_the_limit_is_skipped(work, mixed, model_dir):
    (mixed / "long.md").write_text("word " * 60_000)  # 300 kB of text
    report = index_json(work, model_dir, "mixed", "--max-file-mb", "0.1")
    [skipped] = [s for s in report["skipped"] if s["path"].endswith("long.md")]
    assert "over the 0.1 MB limit for one file (--max-file-mb)" in skipped["reason"]


@bad_input
@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_a_max_file_mb_that_is_not_positive_is_one_line(work, model_dir, value):
    refused(["index", "docs", "--index", "new", "--model", model_dir, *TINY, "--max-file-mb", value], 1,
            "max_file_mb must be a positive number", work)


@bad_input
def test_a_line_the_splitter_cannot_break_is_cut_not_split_into_characters(model_dir):
    from grace_rag.indexes.ingest import IngestConfig, build_splitter, split_text

    splitter = build_splitter(_tiny(model_dir), IngestConfig(chunk_size=64, chunk_overlap=0))
    blob = "QUJD" * 50_000  # 200,000 characters of base64: no space, no punctuation
    pieces = split_text(f"A sentence before. {blob} And one after.", splitter)
    assert "".join(pieces).replace(" ", "") == f"Asentencebefore.{blob}Andoneafter.".replace(" ", "")
    cut = [p for p in pieces if set(p) <= set("QUJD")]
    assert len(cut) == 200_000 // 64 and {len(p) for p in cut} == {64}  # never split into characters


def test_a_skip_reason_is_one_short_line():
    from grace_rag.indexes.ingest import _reason

    reason = _reason(ValueError("pattern\n" + "(?:[a-z]+)" * 500 + "\nand more lines"))
    assert "\n" not in reason and len(reason) <= 200 and reason.startswith("ValueError: pattern")


# -- 14. names and rationales printed on one line --------------------------------------------------------
ODD_NAMES = {"newline": "two\nlines.txt", "right-to-left-override": "invoice\u202etxt.exe.txt",
             "escape-sequence": "red\x1b[31m.txt", "carriage-return": "over\rwritten.txt"}


@bad_input
@pytest.mark.parametrize("case", list(ODD_NAMES))
def test_odd_file_names_print_on_one_line_escaped(case, work, model_dir):
    name = ODD_NAMES[case]
    folder = work / "odd"
    folder.mkdir()
    (folder / name).write_text("Glaciers carve valleys over thousands of years.")
    args = ["--index", "new"]
    summary = runner.invoke(app, ["index", "odd", *args, "--model", str(model_dir), *TINY, "-q",
                                  "--max-file-mb", "0.0000001"])  # skipped: the name is printed in the summary
    assert summary.exit_code == 0, summary.output
    escaped = name.encode("unicode_escape").decode().replace("\\x1b", "\\u001b").replace("\\u202e", "\\u202e")
    skipped = [line for line in summary.stdout.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and escaped in skipped[0], summary.stdout
    done = runner.invoke(app, ["index", "odd", *args, "-q"])
    assert done.exit_code == 0, done.output
    hits = runner.invoke(app, ["query", "glaciers valleys", *args, "--mode", "lexical"])
    assert hits.exit_code == 0 and escaped in hits.stdout and name not in hits.stdout, hits.stdout
    removed = runner.invoke(app, ["delete", f"odd/{name}", *args, "--all"])
    assert removed.exit_code == 0 and escaped in removed.stdout and name not in removed.stdout, removed.stdout


@bad_input
def test_a_multi_line_rationale_prints_on_one_line(work):
    from robustness_support import run_sql

    run_sql(work / "ix" / "chunks.sqlite", "UPDATE chunks SET rationale = ?", ("first line\nsecond\u202eline",))
    result = runner.invoke(app, ["query", "lava", "--index", "ix", "--mode", "lexical", "--explain"])
    assert result.exit_code == 0, result.output
    why = [line for line in result.stdout.splitlines() if "why:" in line]
    assert why and all("first line second\\u202eline" in line for line in why), result.stdout


# -- 9. where grace-rag may write -------------------------------------------------------------------------
def _read_only_folder(tmp_path: Path) -> Path:
    """A read-only mount (tmpfs, where this process may mount), else sysfs (no file can be created there)."""
    target = tmp_path / "ro"
    target.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)],
                             capture_output=True).returncode == 0
    if mounted:
        return target
    if Path("/sys/fs").is_dir():
        return Path("/sys/fs")
    pytest.skip("no read-only folder to test with")


@pytest.fixture
def read_only(tmp_path):
    folder = _read_only_folder(tmp_path)
    yield folder
    if folder.is_relative_to(tmp_path):
        subprocess.run(["umount", str(folder)], capture_output=True)


@bad_input
def test_a_new_index_where_nothing_can_be_written_is_one_line_before_the_model(work, read_only):
    line = refused(["index", "docs", "--index", str(read_only / "ix"), "--model", "/nowhere/model", *TINY], 1,
                   "cannot create an index at", work)
    assert "nothing can be written in" in line  # the model (which does not exist) was never loaded


@bad_input
@pytest.mark.parametrize("home", ["file", "under-a-file", "read-only"])
def test_a_grace_rag_home_that_cannot_be_a_folder_is_one_line(home, work, model_dir, monkeypatch, request):
    (work / "afile").write_text("not a folder")
    if home == "read-only":
        read_only = request.getfixturevalue("read_only")
        value, fragment = (read_only, "cannot create the rationale cache") if read_only == Path("/sys/fs") \
            else (read_only / "home", "cannot be created")
    else:
        value, fragment = {"file": (work / "afile", "is a file, not a folder"),
                           "under-a-file": (work / "afile" / "home", "cannot be created")}[home]
    monkeypatch.setenv("GRACE_RAG_HOME", str(value))
    refused(["explain", "lava", "--model", model_dir, *TINY], 1, fragment, work)


def test_an_empty_grace_rag_home_counts_as_unset(work, model_dir, monkeypatch, tmp_path_factory):
    """Before, GRACE_RAG_HOME= put cache.sqlite and weights-ids/ into whatever folder the command ran in."""
    user = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("GRACE_RAG_HOME", "")
    monkeypatch.setenv("HOME", str(user))
    before = snapshot(work)
    result = runner.invoke(app, ["explain", "lava", "--model", str(model_dir), *TINY])
    assert result.exit_code == 0, result.output
    assert not changes(before, snapshot(work))
    assert (user / ".cache" / "grace-rag" / "cache.sqlite").is_file()
