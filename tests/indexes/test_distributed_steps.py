"""Distributed ingestion without starting Ray: the batch plan, the actor's work, settings and bad input."""

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from grace_rag.config import EncoderConfig
from grace_rag.cli.app import app
from grace_rag.errors import ConfigError, GraceIndexError
from grace_rag.indexes import EncoderInfo
from grace_rag.indexes.distributed import (
    EmbedWorker, EncoderSpec, RayConfig, check_fits, default_workers, gcs_endpoint, grace_error_in, plan_groups,
)
from grace_rag.indexes.records import Chunk, content_hash
from grace_rag.indexes.service import load_encoder

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "docs"


def chunks(*texts: str) -> list[Chunk]:
    return [Chunk(id=f"doc#{i}", text=t) for i, t in enumerate(texts)]


def test_plan_groups_batches_like_the_single_process_indexer():
    todo = chunks("a", "b", "a", "c", "d", "b", "e")
    # batches of 3: [a b a] [c d b] [e]; "d" is stored already; "b" was embedded by the first batch
    assert plan_groups(todo, {content_hash("d")}, 3) == [["a", "b"], ["c"], ["e"]]
    assert plan_groups(todo, {content_hash(t) for t in "abcde"}, 3) == []
    assert plan_groups([], set(), 3) == []


@pytest.mark.parametrize(("address", "endpoint"), [
    ("10.0.0.5:6379", ("10.0.0.5", 6379)), ("ray://head:10001", ("head", 10001)),
    ("[::1]:6379", ("::1", 6379)), ("auto", None), ("local", None),
])
def test_gcs_endpoint(address, endpoint):
    assert gcs_endpoint(address) == endpoint


@pytest.mark.parametrize("address", ["head", "head:port", ":6379"])
def test_gcs_endpoint_refuses_what_is_not_an_address(address):
    with pytest.raises(ConfigError, match="host:port"):
        gcs_endpoint(address)


def test_default_workers_fill_the_cluster():
    assert default_workers({"CPU": 8.0}, RayConfig()) == 8
    assert default_workers({"CPU": 8.0}, RayConfig(cpus_per_worker=3)) == 2
    assert default_workers({"CPU": 64.0, "GPU": 4.0}, RayConfig(gpus_per_worker=0.5)) == 8
    assert default_workers({"CPU": 1.0}, RayConfig(cpus_per_worker=2)) == 1


def test_a_pool_larger_than_the_cluster_is_refused():
    check_fits({"CPU": 2.0}, RayConfig(), 2)
    with pytest.raises(ConfigError, match="need 4 CPUs but the cluster has 2"):
        check_fits({"CPU": 2.0}, RayConfig(), 4)
    with pytest.raises(ConfigError, match="GPUs but the cluster has 0"):
        check_fits({"CPU": 8.0}, RayConfig(gpus_per_worker=1), 1)


@pytest.mark.parametrize("kwargs", [{"workers": 0}, {"gpus_per_worker": -1}, {"cpus_per_worker": 0},
                                    {"max_retries": -1}, {"connect_timeout_s": 0}])
def test_ray_config_refuses_impossible_values(kwargs):
    with pytest.raises(ConfigError):
        RayConfig(**kwargs)


@pytest.fixture(scope="module")
def encoder(model_dir):
    return load_encoder(str(model_dir), EncoderConfig(cache=False, max_rationale_tokens=4), "cpu")


def test_worker_rebuilds_the_encoder_and_embeds_like_it(encoder):
    spec = EncoderSpec.of(encoder, EncoderInfo.of(encoder), "cpu", threads=1)
    worker = EmbedWorker(spec)
    texts = ["Lava cools into basalt.", "Bees dance.", "Yeast makes dough rise."]
    out = worker({"texts": np.array([np.array(texts[:2], dtype=object), np.array(texts[2:], dtype=object)],
                                    dtype=object)})
    assert list(out["hash"]) == [content_hash(t) for t in texts]
    want = [encoder.encode(texts[:2]), encoder.encode(texts[2:])]  # one model call per group, as the actor does
    np.testing.assert_allclose(out["vector"], np.concatenate([w.vectors for w in want]), atol=1e-6)
    assert list(out["rationale"]) == want[0].rationales + want[1].rationales


def test_worker_with_another_model_refuses_the_index(encoder):
    other = EncoderInfo(model_name="other-model", fingerprint="0" * 32, dimension=encoder.dimension)
    with pytest.raises(GraceIndexError, match="other-model.*fingerprint 000000000000"):
        EncoderSpec.of(encoder, other, "cpu", threads=1).load()


def test_grace_error_found_inside_ray_wrappers():
    try:
        try:
            raise GraceIndexError("the real reason")
        except GraceIndexError as inner:
            raise RuntimeError("wrapped by Ray") from inner
    except RuntimeError as outer:
        assert str(grace_error_in(outer)) == "the real reason"
    assert grace_error_in(RuntimeError("plain")) is None


# -- bad input on the command line ------------------------------------------------------
def red_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def docs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "volcanoes.txt").write_text((EXAMPLES / "volcanoes.txt").read_text())
    return folder


def index(docs, model_dir, *extra):
    return CliRunner().invoke(app, ["index", str(docs), "--model", str(model_dir), "--max-rationale-tokens", "4",
                                    "--device", "cpu", "--quiet", *extra])


def test_ray_missing_is_one_line_naming_the_extra(docs, model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    line = red_line(index(docs, model_dir, "--ray"))
    assert "pip install 'grace-rag[ray]'" in line
    assert not (docs.parent / ".grace-index").exists()  # refused before any model loaded or index was made


def test_ray_options_without_ray_are_refused(docs, model_dir):
    assert "add --ray" in red_line(index(docs, model_dir, "--workers", "2"))


def test_unreachable_address_is_one_line(docs, model_dir):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    line = red_line(index(docs, model_dir, "--ray", "--address", f"127.0.0.1:{port}"))
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in line and "--address" in line
    assert not (docs.parent / ".grace-index").exists()  # checked before any model loaded or index was made


def test_a_port_that_is_not_ray_times_out_with_one_line():
    """An open port that never answers: Ray would wait minutes; the session gives up after its timeout."""
    pytest.importorskip("ray")
    script = textwrap.dedent("""
        import socket
        from grace_rag.errors import ClusterError
        from grace_rag.indexes.distributed import RayConfig, ray_session
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        try:
            with ray_session(RayConfig(address=f"127.0.0.1:{silent.getsockname()[1]}", connect_timeout_s=2)):
                print("connected")
        except ClusterError as exc:
            print(exc)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "did not answer within 2 s" in done.stdout, done.stdout + done.stderr[-2000:]


def test_ray_indexer_without_ray_names_the_extra(monkeypatch, encoder, tmp_path):
    from grace_rag.indexes import GraceIndex
    from grace_rag.indexes.distributed import RayIndexer

    monkeypatch.setitem(sys.modules, "ray", None)
    with GraceIndex.create(tmp_path / "index", EncoderInfo.of(encoder)) as index:
        with pytest.raises(ImportError, match=r"grace-rag\[ray\]"):
            RayIndexer(index, encoder)

