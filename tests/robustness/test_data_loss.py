"""Nothing is deleted that the user did not ask to delete (issue 21, items 1-4).

`delete` refuses an empty path and paths that cover the whole index (unless --all); `train --out`
never replaces a folder of other files or the data (an earlier model only with --overwrite);
readers never call a store that another process is writing "damaged" or "interrupted"; a model
whose weights were swapped for others of the same size and mtime gets another weights id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from robustness_support import changes, finish_mid_write, refused, snapshot, start_mid_write
from typer.testing import CliRunner

from grace_rag.cli.app import app
from grace_rag.config import EncoderConfig
from grace_rag.indexes import Chunk, GraceIndex

runner = CliRunner()
bad_input = pytest.mark.bad_input
TINY_TRAIN = ("--steps", "1", "--batch-size", "2", "--rollouts", "2", "--max-rationale-tokens", "2",
              "--max-input-tokens", "16", "--length-penalty", "off", "-q")


def sources(index_dir: Path) -> list[str]:
    with GraceIndex.open(index_dir) as index:
        return sorted(index.store.file_hashes())


# -- 1. delete ------------------------------------------------------------------------------------
@pytest.fixture
def lx(work, model_dir) -> Path:
    """``work/lx``: an index of ``work/docs`` itself (the shared ``ix`` holds the paths it was built at)."""
    from grace_rag.indexes.ingest import IngestConfig
    from grace_rag.indexes.service import IndexRequest, index_folder, load_encoder

    encoder = load_encoder(str(model_dir), EncoderConfig(cache=False, max_rationale_tokens=2), "cpu")
    index_folder(IndexRequest(path=work / "docs", index_dir=work / "lx", ingest=IngestConfig(chunk_size=64)),
                 encoder=encoder)
    return work / "lx"


@bad_input
@pytest.mark.parametrize("path", ["", " ", "\t"])
def test_delete_of_an_empty_path_from_a_subfolder_deletes_nothing(work, lx, path, monkeypatch):
    monkeypatch.chdir(work / "docs")  # the case: the empty path resolved to "/" and matched everything
    refused(["delete", path, "--index", "../lx"], 1, "an empty path names no file or folder", work)


@bad_input
@pytest.mark.parametrize("args", [["docs"], ["docs/"], ["."], ["/"], ["docs/bridges.md", "docs/volcanoes.txt"]])
def test_paths_that_cover_the_whole_index_are_refused_without_all(work, lx, args):
    refused(["delete", *args, "--index", "lx"], 1, "would remove every file of lx (2 in all)", work)


@bad_input
def test_one_path_that_matches_nothing_stops_the_others_too(work, lx):
    """Every path is checked before anything is deleted (before, bridges.md was gone when nope.md failed)."""
    refused(["delete", "docs/bridges.md", "docs/nope.md", "--index", "lx"], 1, "comes from docs/nope.md", work)


def test_all_empties_the_index_when_asked(work, lx):
    result = runner.invoke(app, ["delete", "docs", "--index", "lx", "--all"])
    assert result.exit_code == 0, result.output
    assert sources(lx) == []
    with GraceIndex.open(lx) as index:
        assert len(index) == 0


def test_a_file_is_still_deleted_without_all(work, lx):
    result = runner.invoke(app, ["delete", "docs/volcanoes.txt", "--index", "lx"])
    assert result.exit_code == 0, result.output
    assert [Path(s).name for s in sources(lx)] == ["bridges.md"]


def test_the_empty_source_in_python_matches_only_chunks_without_a_source(work):
    with GraceIndex.open(work / "ix") as index:
        vector = np.ones((1, index.dimension), np.float32) / np.sqrt(index.dimension)
        index.add([Chunk(id="loose", text="a chunk added without a source")], vector)
        files = sorted(index.store.file_hashes())
        assert index.delete_source("") == 1
        assert sorted(index.store.file_hashes()) == files and len(index) > 0


# -- 2. train --out ---------------------------------------------------------------------------------
def _plant(name: str, content: str = "my notes") -> callable:
    def setup(work: Path) -> None:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(content)
    return setup


OUT_CASES = [
    ("out-holds-user-files", ["--out", "mine"], "mine holds other files (notes.txt)", _plant("mine/notes.txt")),
    ("out-is-the-data-file", ["--out", "good.jsonl"], "is the training data", None),
    ("out-holds-the-data", ["--out", "."], "is the training data good.jsonl or holds it", None),
    ("out-is-the-data-folder", ["--out", "docs"], "--out docs is the training data docs;", None),
    ("out-is-a-parent-of-the-data", ["--out", "docs/.."], "or holds it", None),
    ("out-is-another-file", ["--out", "docs/volcanoes.txt"], "is a file, not a folder", None),
    ("out-earlier-model-without-overwrite", ["--out", "model"], "pass --overwrite to replace it",
     _plant("model/grace_train.json", "{}")),
    ("out-user-folder-with-overwrite", ["--out", "mine", "--overwrite"], "is not the output of grace-rag train",
     _plant("mine/notes.txt")),
    ("out-data-with-overwrite", ["--out", "good.jsonl", "--overwrite"], "is the training data", None),
    ("out-holds-a-mixed-in-source", ["--out", "extra", "--data", "extra/more.jsonl:0.5"], "is the training data extra",
     _plant("extra/more.jsonl", '{"query": "a", "positive": "b", "negative": "c"}\n')),
]


@bad_input
@pytest.mark.parametrize("case", OUT_CASES, ids=[c[0] for c in OUT_CASES])
def test_train_out_never_replaces_what_is_not_an_earlier_model(case, work, model_dir):
    _, args, fragment, setup = case
    if setup is not None:
        setup(work)
    data = "docs" if "docs" == args[1] else "good.jsonl"
    refused(["train", data, *args, "--model", model_dir, *TINY_TRAIN], 1, fragment, work)


def test_overwrite_replaces_an_earlier_model_and_the_new_one_follows_the_umask(work, model_dir):
    first = runner.invoke(app, ["train", "good.jsonl", "--out", "model", "--model", str(model_dir), *TINY_TRAIN])
    assert first.exit_code == 0, first.output
    assert stat.S_IMODE((work / "model").stat().st_mode) == 0o777 & ~_umask()  # not mkdtemp's 0700
    for name in ("adapter_model.safetensors", "model.safetensors", "grace_encoder.json"):  # not safetensors' 0600
        if (work / "model" / name).exists():
            assert stat.S_IMODE((work / "model" / name).stat().st_mode) == 0o666 & ~_umask(), name
    (work / "model" / "marker").write_text("from the first run")
    again = runner.invoke(app, ["train", "good.jsonl", "--out", "model", "--model", str(model_dir), *TINY_TRAIN,
                                "--overwrite"])
    assert again.exit_code == 0, again.output
    assert not (work / "model" / "marker").exists() and (work / "model" / "grace_train.json").is_file()
    assert (work / "good.jsonl").is_file() and not list(work.glob(".model.*"))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# -- 3. readers during a write -----------------------------------------------------------------------
@pytest.fixture
def mid_write(work):
    """Another process that has committed chunks and not yet saved the derived files (it holds the lock)."""
    proc = start_mid_write(work / "ix")
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@bad_input
@pytest.mark.slow
@pytest.mark.parametrize("args", [["query", "lava", "--mode", "lexical"], ["query", "lava", "--mode", "dense"],
                                  ["query", "lava"], ["info"]])
def test_a_reader_during_a_write_sees_no_damage_and_writes_nothing(work, mid_write, args):
    before = snapshot(work / "ix")
    result = runner.invoke(app, [*args, "--index", "ix"] + (["--device", "cpu"] if args[0] == "query" else []))
    assert result.exit_code == 0, result.output
    assert result.stderr == "", result.stderr  # neither "interrupted" nor "damaged": the writer is alive
    assert not changes(before, snapshot(work / "ix"))
    finish_mid_write(mid_write)


@bad_input
def test_a_store_locked_past_the_busy_timeout_is_busy_not_damaged(work, monkeypatch):
    from grace_rag.indexes import store

    monkeypatch.setattr(store, "BUSY_TIMEOUT_S", 0.3)
    holder = sqlite3.connect(work / "ix" / "chunks.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        line = refused(["query", "lava", "--index", "ix", "--mode", "lexical"], 1,
                       "stayed locked by another process", work / "docs")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "is damaged (" not in line and "backup" not in line


def test_a_reader_waits_for_a_commit_instead_of_failing(work):
    holder = sqlite3.connect(work / "ix" / "chunks.sqlite", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(1.0, lambda: (holder.execute("ROLLBACK"), holder.close())).start()
    started = time.monotonic()
    result = runner.invoke(app, ["query", "lava", "--index", "ix", "--mode", "lexical", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hits"] and time.monotonic() - started >= 0.5


WRITER_LOOP = """
import sys, time
import numpy as np
from grace_rag.indexes import Chunk, GraceIndex
end = time.monotonic() + float(sys.argv[2])
i = 0
while time.monotonic() < end:
    with GraceIndex.open(sys.argv[1]) as index:
        index.lock(wait=10)  # a reader may hold the lock for an instant (to check for a writer) or a repair
        vector = np.random.default_rng(i).standard_normal((1, index.dimension)).astype(np.float32)
        index.upsert([Chunk(id=f"w{i % 5}", text=f"lava flows again {i}", source=f"/w/{i % 5}.txt")],
                     vector / np.linalg.norm(vector))
        time.sleep(0.02)
        index.save()
    i += 1
print(i, flush=True)
"""


@pytest.mark.slow
def test_readers_beside_a_writer_in_a_loop_never_fail_nor_warn(work, caplog):
    from grace_rag.errors import GraceError
    from grace_rag.indexes.service import query_index

    writer = subprocess.Popen([sys.executable, "-c", WRITER_LOOP, str(work / "ix"), "6"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    failures, reads = [], 0
    with caplog.at_level(logging.WARNING, logger="grace_rag"):
        while writer.poll() is None:
            try:
                query_index(work / "ix", "lava", mode="lexical")
            except GraceError as exc:
                failures.append(str(exc))
            reads += 1
    out, err = writer.communicate()
    assert writer.returncode == 0, err
    assert int(out) > 5 and reads > 5
    assert failures == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# -- 4. weights swapped under the same size and mtime -------------------------------------------------
def _swap_weights(folder: Path, other: Path) -> None:
    """Replace folder's weights by ``other``'s (same architecture, so the same size), keeping the mtime."""
    target = folder / "model.safetensors"
    st = target.stat()
    assert (other / "model.safetensors").stat().st_size == st.st_size
    shutil.copyfile(other / "model.safetensors", target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_weights_id_is_the_content_hash_of_the_weight_files(tmp_path):
    from grace_rag.models import weights_id

    (tmp_path / "sub").mkdir()
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "sub" / "extra.bin").write_bytes(b"more")
    (tmp_path / "config.json").write_text("{}")  # not a weight file
    expected = hashlib.sha256()
    for name, data in (("model.safetensors", b"weights"), ("sub/extra.bin", b"more")):
        expected.update(name.encode() + hashlib.sha256(data).hexdigest().encode())
    assert weights_id(tmp_path) == expected.hexdigest()[:32]  # the formula ids were made with: old indexes load


def test_weights_id_is_hashed_once_per_file_and_again_when_swapped(tmp_path, model_dir, other_model_dir, monkeypatch):
    from grace_rag import models

    folder = shutil.copytree(model_dir, tmp_path / "m")
    calls = []
    real = models.file_digest  # grace_rag.hashing's, as models uses it
    monkeypatch.setattr(models, "file_digest", lambda path: calls.append(path) or real(path))
    first = models.weights_id(folder)
    assert models.weights_id(folder) == first and len(calls) == 1  # memoised
    _swap_weights(folder, other_model_dir)
    assert models.weights_id(folder) != first and len(calls) == 2
    assert models.weights_id(folder) == models.weights_id(other_model_dir)  # a content hash


@bad_input
@pytest.mark.parametrize("args", [["query", "lava", "--mode", "dense", "--device", "cpu"],
                                  ["index", "docs", "--device", "cpu", "-q"]])
def test_an_index_refuses_a_model_whose_weights_were_swapped(work, model_dir, other_model_dir, args):
    from grace_rag.indexes.ingest import IngestConfig
    from grace_rag.indexes.service import IndexRequest, index_folder, load_encoder

    folder = shutil.copytree(model_dir, work / "m")
    encoder = load_encoder(str(folder), EncoderConfig(cache=False, max_rationale_tokens=2), "cpu")
    index_folder(IndexRequest(path=work / "docs", index_dir=work / "ix2", ingest=IngestConfig(chunk_size=64)),
                 encoder=encoder)
    _swap_weights(folder, other_model_dir)
    (work / "docs" / "new.txt").write_text("Glaciers carve valleys.")  # something to embed with the swapped model
    refused([*args, "--index", "ix2"], 1, "the model's weights changed", work / "ix2", work / "docs")
