"""One writer per index, checked with real processes: a second writer stops with one line, readers go on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grace_rag.cli.app import app
from grace_rag.indexes import GraceIndex

RUN_CLI = Path(__file__).resolve().parents[1] / "indexes" / "run_cli.py"
HOLDER = """
import sys
from grace_rag.indexes import GraceIndex
index = GraceIndex.open(sys.argv[1])
index.lock()
print("locked", flush=True)
sys.stdin.readline()  # hold the lock until told to stop
index.close()
print("released", flush=True)
"""
pytestmark = pytest.mark.slow
runner = CliRunner()


def stored(work: Path, name: str) -> str:
    """The source path under which ``name`` is indexed in ``work/ix`` (it was built elsewhere, then copied)."""
    with GraceIndex.open(work / "ix") as index:
        return next(path for path in index.store.file_hashes() if path.endswith("/" + name))


def cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRACE_RAG_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(RUN_CLI), *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def holder(work: Path):
    """Another process holding the write lock of ``work/ix`` (released when the test writes a line)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(work / "ix")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_second_writer_stops_with_one_line_and_readers_go_on(work, model_dir, holder, tmp_path):
    (work / "docs" / "new.txt").write_text("Glaciers carve valleys over thousands of years.")
    busy = cli("index", "docs", "--index", "ix", "-q", home=tmp_path / "h")  # a real second process
    assert busy.returncode == 1 and "Traceback" not in busy.stderr
    assert busy.stderr.strip().splitlines() == [busy.stderr.strip()]
    assert "is being written by another grace-rag process" in busy.stderr and "run this again" in busy.stderr
    reading = runner.invoke(app, ["query", "lava", "--index", "ix", "--mode", "lexical", "--json"])
    assert reading.exit_code == 0 and json.loads(reading.stdout)["hits"], reading.stderr

    holder.stdin.write("stop\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "released"
    done = runner.invoke(app, ["index", "docs", "--index", "ix", "--json", "--device", "cpu"])
    assert done.exit_code == 0, done.stderr
    with GraceIndex.open(work / "ix") as index:
        assert (work / "docs" / "new.txt").resolve().as_posix() in index.store.file_hashes()


def test_a_killed_writer_never_blocks_the_next(work, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with GraceIndex.open(work / "ix") as index:
        index.lock()  # the operating system released the dead process's lock
        assert index.delete_source(stored(work, "bridges.md")) > 0


def test_a_writer_that_may_wait_gets_the_lock_when_it_is_released(work, holder):
    threading.Timer(1.0, lambda: (holder.stdin.write("stop\n"), holder.stdin.flush())).start()
    started = time.monotonic()
    with GraceIndex.open(work / "ix") as index:
        index.lock(wait=60)
        assert time.monotonic() - started >= 0.5
        assert index.delete_source(stored(work, "bridges.md")) > 0
        index.save()
    with GraceIndex.open(work / "ix") as index:
        assert all("bridges" not in source for source in index.store.file_hashes())
