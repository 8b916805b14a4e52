"""Helpers of the bad-input suite: snapshots of folders (bytes and modes) and the one-line error check."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

HOME = "grace-home"  # the per-test GRACE_RAG_HOME inside tmp_path (tests/conftest.py): a cache, not user data


def snapshot(*roots: Path) -> dict[str, tuple[int, str]]:
    """{path: (mode, sha256)} of every file and folder under ``roots`` (the per-test home left out)."""
    out: dict[str, tuple[int, str]] = {}
    for root in roots:
        if not root.exists():
            continue
        for path in sorted([root, *root.rglob("*")]):
            if HOME in path.relative_to(root.parent).parts:
                continue
            mode = path.lstat().st_mode
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            out[str(path)] = (mode, digest)
    return out


def changes(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> list[str]:
    """What differs between two snapshots, as readable lines."""
    lines = [f"added {p}" for p in after.keys() - before.keys()]
    lines += [f"removed {p}" for p in before.keys() - after.keys()]
    lines += [f"changed {p}" for p in before.keys() & after.keys() if before[p] != after[p]]
    return sorted(lines)


def one_line(stderr: str) -> str:
    """The single ``error: ...`` line that must be all of stderr's last line, with no traceback above it."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert stderr.strip().endswith(errors[0]), stderr
    return errors[0]


def edit_json(path: Path, change: Any) -> None:
    """Apply ``change(data)`` to a JSON file in place."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def run_sql(path: Path, sql: str, params: tuple = ()) -> None:
    with sqlite3.connect(path) as db:
        db.execute(sql, params)
    db.close()


def flip(path: Path, start: int = 0, step: int = 7) -> None:
    """XOR every ``step``-th byte from ``start`` with 0x5A (the size stays the same)."""
    data = bytearray(path.read_bytes())
    for i in range(start, len(data), step):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def refused(args: list[str], code: int, fragment: str, *roots: Path) -> str:
    """Run ``grace-rag ARGS`` in-process: exit ``code``, one ``error:`` line holding ``fragment``, and
    nothing under ``roots`` changed (bytes and modes); returns the error line."""
    from typer.testing import CliRunner

    from grace_rag.cli.app import app

    before = snapshot(*roots)
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == code, result.output
    line = one_line(result.stderr)
    assert fragment in line, line
    assert not changes(before, snapshot(*roots))
    return line


MID_WRITE = """
import sys
import numpy as np
from grace_rag.indexes import Chunk, GraceIndex
index = GraceIndex.open(sys.argv[1])
index.lock()
vector = np.ones((1, index.dimension), np.float32) / np.sqrt(index.dimension)
index.upsert([Chunk(id="new#0", text="fresh lava chunk", source="/elsewhere/new.txt")], vector)
print("written", flush=True)  # chunks.sqlite is now ahead of index.faiss, lexical/ and manifest.json
sys.stdin.readline()
index.save()
index.close()
print("saved", flush=True)
"""


def start_mid_write(index_dir: Path) -> subprocess.Popen:
    """Another process that holds the write lock of ``index_dir`` and has committed a chunk it has not
    saved yet (the derived files look stale until :func:`finish_mid_write`)."""
    proc = subprocess.Popen([sys.executable, "-c", MID_WRITE, str(index_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "written", proc.stderr.read()
    return proc


def finish_mid_write(proc: subprocess.Popen) -> None:
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "saved", proc.stderr.read()
    proc.wait(60)
