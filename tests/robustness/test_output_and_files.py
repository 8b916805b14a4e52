"""What reaches stderr (library chatter only with --verbose) and how index files are created (umask modes)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grace_rag.cli import output
from grace_rag.cli.app import app

RUN_CLI = Path(__file__).resolve().parents[1] / "indexes" / "run_cli.py"
runner = CliRunner()


@pytest.fixture
def console_handler(capsys):
    """The console script's stderr handler, installed as ``main()`` does, removed afterwards."""
    output.install_log_handler()
    yield output._handler
    logging.getLogger().removeHandler(output._handler)
    output._handler = None
    output.configure_output(verbose=False)


@pytest.mark.parametrize("verbose", [False, True])
def test_library_bars_and_debug_records_appear_only_with_verbose(verbose, console_handler, model_dir, capsys):
    from grace_rag.models import load_backbone

    output.configure_output(verbose)
    capsys.readouterr()
    load_backbone(str(model_dir), device="cpu")  # transformers draws "Loading weights" unless told not to
    logging.getLogger("bm25s").setLevel(logging.DEBUG)  # what bm25s does to itself on import
    logging.getLogger("bm25s").debug("Building index from tokens")
    logging.getLogger("grace_rag.indexes").info("rebuilt Flat FAISS index with 7 vectors")
    logging.getLogger("grace_rag.indexes").warning("a repair worth knowing about")
    err = capsys.readouterr().err
    assert ("Loading weights" in err) is verbose
    assert ("rebuilt Flat FAISS index" in err) is verbose
    assert "Building index from tokens" not in err
    assert "a repair worth knowing about" in err  # warnings always reach the user


@pytest.mark.slow
def test_the_console_script_keeps_stderr_quiet(model_dir, tmp_path):
    env = {**os.environ, "GRACE_RAG_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(RUN_CLI), "explain", "Bees dance.", "--model", str(model_dir),
                             "--device", "cpu", "--max-rationale-tokens", "2"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "Bees dance." in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_every_index_file_gets_the_users_umask(mask, work, model_dir):
    old = os.umask(mask)
    try:
        result = runner.invoke(app, ["index", "docs", "--index", "fresh", "--model", str(model_dir), "--device", "cpu",
                                     "--max-rationale-tokens", "2", "-q"])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    paths = [work / "fresh", *(work / "fresh").rglob("*")]
    modes = {p.relative_to(work).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in paths}
    want = {name: (0o777 if (work / name).is_dir() else 0o666) & ~mask for name in modes}
    assert modes == want
    assert {"fresh/chunks.sqlite", "fresh/index.faiss", "fresh/manifest.json", "fresh/write.lock",
            "fresh/lexical/fids.npy"} <= set(modes)


def test_loading_a_model_writes_nothing_into_its_folder(model_dir, tmp_path):
    """An index's manifest names its model; loading it (twice: the weights id is memoised) must not write there."""
    import shutil

    from grace_rag.models import load_backbone

    folder = shutil.copytree(model_dir, tmp_path / "someone-elses-model")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())
    first = load_backbone(str(folder), device="cpu").weights_id
    assert load_backbone(str(folder), device="cpu").weights_id == first
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()) == before


def test_reading_an_intact_index_writes_nothing(work):
    from robustness_support import changes, snapshot

    (work / "ix" / "write.lock").unlink()  # as an index written before the lock existed
    before = snapshot(work / "ix")
    for args in (["info", "--index", "ix"], ["query", "lava", "--index", "ix", "--mode", "lexical"]):
        assert runner.invoke(app, args).exit_code == 0
    assert not changes(before, snapshot(work / "ix"))
