"""Distributed ingestion on a local 2-CPU Ray cluster (started once for this module).

Every run is compared with single-process ingestion of the same folder, same model and settings:
same chunk ids, texts, rationales, metadata and store order, vectors within 1e-5.
"""

import dataclasses
import os
import shutil
import signal
import sqlite3
from pathlib import Path

import numpy as np
import psutil
import pytest
from typer.testing import CliRunner

from grace_rag.config import EncoderConfig
from grace_rag.cli.app import app
from grace_rag.errors import ClusterError, GraceIndexError
from grace_rag.indexes import GraceIndex
from grace_rag.indexes.distributed import EncoderSpec, RayConfig, RayIndexer
from grace_rag.indexes.grace_index import STORE_FILE
from grace_rag.indexes.ingest import IngestConfig
from grace_rag.indexes.service import IndexRequest, index_folder, load_encoder

ray = pytest.importorskip("ray")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "docs"
DOCS = ["black_holes.md", "volcanoes.txt", "photosynthesis.md"]
INGEST = IngestConfig(chunk_size=64, batch_size=1)


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """One local Ray cluster with 2 CPUs for every test here (startup takes seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray-docs") / "docs"
    folder.mkdir()
    for name in DOCS:
        shutil.copy(EXAMPLES / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def encoder(model_dir):
    return load_encoder(str(model_dir), EncoderConfig(cache=False, max_rationale_tokens=4), "cpu")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, docs, encoder) -> Path:
    """The folder indexed in this process, as `grace-rag index` does without --ray."""
    path = tmp_path_factory.mktemp("reference") / "index"
    report = index_folder(IndexRequest(path=docs, index_dir=path, ingest=INGEST), encoder=encoder)
    assert report.chunks_embedded > 20  # enough batches for a worker to die in the middle
    return path


def snapshot(index_dir: Path) -> tuple[list[tuple], np.ndarray, list[tuple]]:
    """(rows in store order without vectors, vectors, files) of an index's chunk store."""
    with sqlite3.connect(index_dir / STORE_FILE) as db:
        rows = db.execute("SELECT fid, id, source, position, text, metadata, content_hash, rationale, vector "
                          "FROM chunks ORDER BY fid").fetchall()
        files = db.execute("SELECT path, hash, chunks FROM files ORDER BY path").fetchall()
    return [r[:-1] for r in rows], np.stack([np.frombuffer(r[-1], np.float32) for r in rows]), files


def assert_same_index(got: Path, want: Path) -> None:
    got_rows, got_vectors, got_files = snapshot(got)
    want_rows, want_vectors, want_files = snapshot(want)
    assert got_rows == want_rows and got_files == want_files
    np.testing.assert_allclose(got_vectors, want_vectors, atol=1e-5)
    with GraceIndex.open(got) as a, GraceIndex.open(want) as b:
        for vector, row in list(zip(want_vectors, want_rows))[::6]:
            query = " ".join(row[4].split()[:10])
            assert [h.id for h in a.search(vector, text=query, k=5)] == [h.id for h in b.search(vector, text=query, k=5)]


class KillWorkers:
    """Ingestion progress that SIGKILLs this test's embedding actors once the first batch is stored."""

    def __init__(self) -> None:
        self.killed: list[int] = []

    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, phase: str, n: int = 1) -> None:
        if phase != "embedding" or self.killed:
            return
        ours = psutil.Process(os.getpid()).children(recursive=True)  # the Ray cluster this module started
        for proc in ours:
            try:
                if any("EmbedWorker" in part for part in proc.cmdline()):
                    os.kill(proc.pid, signal.SIGKILL)
                    self.killed.append(proc.pid)
            except psutil.Error:
                continue
        assert self.killed, "no embedding actor found to kill"


def test_ray_cli_equals_single_process_and_reruns_without_ray_work(docs, model_dir, reference, tmp_path):
    index_dir = tmp_path / "index"
    args = ["index", str(docs), "--index", str(index_dir), "--model", str(model_dir), "--max-rationale-tokens", "4",
            "--chunk-size", "64", "--batch-size", "1", "--device", "cpu", "--ray", "--workers", "2", "--quiet"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert_same_index(index_dir, reference)

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "(0 embedded)" in again.stdout, again.output


def test_a_worker_killed_mid_job_is_restarted_and_its_batch_retried(docs, encoder, reference, tmp_path):
    killer = KillWorkers()
    with GraceIndex.create(tmp_path / "index", encoder_info(encoder)) as index:
        report = RayIndexer(index, encoder, INGEST, killer, cluster=RayConfig(workers=2, max_retries=2)).run(docs)
    assert killer.killed and report.chunks_embedded == report.chunks_added
    assert_same_index(tmp_path / "index", reference)


def test_a_job_out_of_retries_stops_with_a_resumable_index(docs, encoder, reference, tmp_path):
    path = tmp_path / "index"
    killer = KillWorkers()
    with GraceIndex.create(path, encoder_info(encoder)) as index:
        with pytest.raises(ClusterError, match="re-run the same command to resume"):
            RayIndexer(index, encoder, INGEST, killer, cluster=RayConfig(workers=2, max_retries=0)).run(docs)
    assert killer.killed
    with GraceIndex.open(path) as index:  # intact: loads, searchable, FAISS in step with the store
        stored = len(index)
        assert 0 < stored < len(snapshot(reference)[0])
        assert index.manifest.faiss_revision == index.store.revision

    with GraceIndex.open(path) as index:
        report = RayIndexer(index, encoder, INGEST, cluster=RayConfig(workers=2)).run(docs)
    assert report.chunks_embedded == len(snapshot(reference)[0]) - stored  # nothing stored is embedded again
    assert_same_index(path, reference)


def test_a_worker_whose_model_differs_from_the_index_is_one_clear_error(docs, encoder, tmp_path, monkeypatch):
    """As if a node held other weights under the model's path: the actor's own check fails, the message arrives."""
    real = EncoderSpec.of

    def other_weights(*args, **kwargs):
        spec = real(*args, **kwargs)
        return dataclasses.replace(spec, info={**spec.info, "fingerprint": "0" * 32})

    monkeypatch.setattr(EncoderSpec, "of", other_weights)
    with GraceIndex.create(tmp_path / "index", encoder_info(encoder)) as index:
        with pytest.raises(GraceIndexError, match=r"checked on Ray worker.*fingerprint 000000000000"):
            RayIndexer(index, encoder, INGEST, cluster=RayConfig(workers=1, max_retries=0)).run(docs)


@pytest.mark.integration
def test_real_model_on_ray_equals_single_process(real_encoder, tmp_path, monkeypatch):
    model_home = os.environ.get("GRACE_RAG_TEST_HOME", str(Path(__file__).resolve().parents[2] / ".test-home"))
    monkeypatch.setenv("GRACE_RAG_HOME", model_home)  # as tests/conftest.py's real_backbone: the converted model
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("coral_reefs.txt", "sourdough.md"):
        shutil.copy(EXAMPLES / name, folder / name)
    ingest = IngestConfig(chunk_size=128, batch_size=2)
    single = index_folder(IndexRequest(path=folder, index_dir=tmp_path / "single", ingest=ingest), encoder=real_encoder)
    distributed = index_folder(IndexRequest(path=folder, index_dir=tmp_path / "ray", ingest=ingest,
                                            cluster=RayConfig(workers=2)), encoder=real_encoder)
    assert distributed.chunks_embedded == single.chunks_embedded > 2
    assert_same_index(tmp_path / "ray", tmp_path / "single")


def encoder_info(encoder):
    from grace_rag.indexes import EncoderInfo

    return EncoderInfo.of(encoder)
