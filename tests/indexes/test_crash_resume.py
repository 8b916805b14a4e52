"""Killing a real `index` process at any moment leaves a loadable index; re-running completes it."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from grace_rag.config import EncoderConfig
from grace_rag.indexes import GraceIndex
from grace_rag.indexes.grace_index import STORE_FILE
from grace_rag.indexes.ingest import IngestConfig
from grace_rag.indexes.service import IndexRequest, index_folder, load_encoder

RUN_CLI = Path(__file__).with_name("run_cli.py")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "docs"
DOCS = ["black_holes.md", "volcanoes.txt"]
OPTIONS = ["--max-rationale-tokens", "4", "--batch-size", "1", "--chunk-size", "64", "--device", "cpu"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, model_dir):
    """An uninterrupted run (in-process, same model and settings)."""
    root = tmp_path_factory.mktemp("crash")
    docs = root / "docs"
    docs.mkdir()
    for name in DOCS:
        shutil.copy(EXAMPLES / name, docs / name)
    encoder = load_encoder(str(model_dir), EncoderConfig(cache=False, max_rationale_tokens=4), "cpu")
    request = IndexRequest(path=docs, index_dir=root / "reference", ingest=IngestConfig(chunk_size=64, batch_size=1))
    report = index_folder(request, encoder=encoder)
    assert report.chunks_added > 10
    return docs, root / "reference", report.chunks_added


def stored_count(index_dir: Path) -> int:
    try:
        with sqlite3.connect(f"file:{index_dir / STORE_FILE}?mode=ro", uri=True, timeout=0.1) as db:
            return db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    except sqlite3.Error:
        return -1  # not created yet, or locked by the writer


def snapshot(index_dir: Path) -> dict:
    with sqlite3.connect(index_dir / STORE_FILE) as db:
        rows = db.execute("SELECT id, text, content_hash, rationale, vector, metadata FROM chunks ORDER BY id").fetchall()
        files = db.execute("SELECT path, hash, chunks FROM files ORDER BY path").fetchall()
    return {"rows": rows, "files": files}


def start(docs: Path, index_dir: Path, model_dir: Path, home: Path) -> subprocess.Popen:
    env = {**os.environ, "GRACE_RAG_HOME": str(home)}
    cmd = [sys.executable, str(RUN_CLI), "index", str(docs), "--index", str(index_dir), "--model", str(model_dir),
           *OPTIONS, "--json"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when(proc: subprocess.Popen, ready, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"indexing finished before it could be killed: {proc.stderr.read()[-500:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("indexing never reached the kill point")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


#: ``GRACE_CRASH_TRIALS=N pytest tests/indexes/test_crash_resume.py`` adds N kills after a seeded
#: random number of stored chunks (1-12) or a random delay after start (0-3 s), for crash trials
TRIALS = int(os.environ.get("GRACE_CRASH_TRIALS", "0"))
MOMENTS = ["at creation", "mid-run"] + [f"trial {i}" for i in range(TRIALS)]


def kill_point(moment: str, index_dir: Path):
    if moment == "at creation":
        return lambda: (index_dir / STORE_FILE).exists()
    if moment == "mid-run":
        return lambda: stored_count(index_dir) >= 3
    rng = np.random.default_rng(int(moment.split()[1]))
    if rng.random() < 0.5:
        after = time.monotonic() + float(rng.uniform(0, 3))
        return lambda: time.monotonic() >= after
    chunks = int(rng.integers(1, 13))
    return lambda: stored_count(index_dir) >= chunks


@pytest.mark.parametrize("moment", MOMENTS)
def test_killed_run_loads_resumes_and_equals_an_uninterrupted_run(tmp_path, model_dir, reference, moment):
    docs, reference_dir, total = reference
    index_dir = tmp_path / "killed"
    ready = kill_point(moment, index_dir)
    kill_when(start(docs, index_dir, model_dir, tmp_path / "home"), ready)

    stored = max(stored_count(index_dir), 0)
    assert stored < total
    if stored:  # whatever was committed loads and is searchable
        with GraceIndex.open(index_dir) as index:
            assert len(index) == stored
            _, vectors = next(index.store.iter_vectors())
            assert index.search(vectors[-1], k=1)[0].score == pytest.approx(1.0, abs=1e-5)
            _, texts = index.store.texts()  # the lexical part is rebuilt from whatever was committed
            assert index.search(text=texts[-1], k=1, mode="lexical")[0].lexical_rank == 1

    resumed = start(docs, index_dir, model_dir, tmp_path / "home")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    report = json.loads(out)
    assert report["chunks_embedded"] == total - stored  # only what was missing went through the model

    got, want = snapshot(index_dir), snapshot(reference_dir)
    assert got["files"] == want["files"]
    assert [r[:4] + r[5:] for r in got["rows"]] == [r[:4] + r[5:] for r in want["rows"]]
    got_vectors = np.stack([np.frombuffer(r[4], np.float32) for r in got["rows"]])
    want_vectors = np.stack([np.frombuffer(r[4], np.float32) for r in want["rows"]])
    np.testing.assert_allclose(got_vectors, want_vectors, atol=1e-5)
    with GraceIndex.open(index_dir) as a, GraceIndex.open(reference_dir) as b:
        for vector in want_vectors[::7]:
            assert [h.id for h in a.search(vector, k=5)] == [h.id for h in b.search(vector, k=5)]
        for index in (a, b):  # each lexical part on disk reflects its store as it is now, chunk for chunk
            assert index.manifest.lexical_revision == index.store.revision
            fids = index.lexical.current().fids.tolist()
            assert sorted(hit.id for hit in index.store.hit_map(fids).values()) == [r[0] for r in want["rows"]]
        for row, vector in list(zip(want["rows"], want_vectors))[::5]:
            query = " ".join(row[1].split()[:12])
            assert lexical(a, query) == lexical(b, query)
            assert [(h.id, h.dense_rank, h.lexical_rank) for h in a.search(vector, text=query, k=5)] == [
                (h.id, h.dense_rank, h.lexical_rank) for h in b.search(vector, text=query, k=5)]


def lexical(index: GraceIndex, query: str) -> list[tuple[str, float]]:
    return [(h.id, round(h.score, 4)) for h in index.search(text=query, k=8, mode="lexical")]
