"""A forced FAISS factory that cannot be trained yet never leaves an index unusable; it is trained later."""

from __future__ import annotations

import json
import logging

import numpy as np
from robustness_support import edit_json
from typer.testing import CliRunner

from grace_rag.cli.app import app
from grace_rag.indexes import Chunk, EncoderInfo, GraceIndex

runner = CliRunner()


def test_ivf4096_on_a_small_folder_then_info_query_and_auto_all_work(work, model_dir, caplog):
    caplog.set_level(logging.WARNING)
    built = runner.invoke(app, ["index", "docs", "--index", "ivf", "--model", str(model_dir), "--device", "cpu",
                                "--max-rationale-tokens", "2", "--factory", "IVF4096,Flat", "-q"])
    assert built.exit_code == 0, built.output
    assert any("'IVF4096,Flat' needs 159,744 vectors to train" in m for m in caplog.messages)
    info = json.loads(runner.invoke(app, ["info", "--index", "ivf", "--json"]).stdout)
    assert (info["factory"], info["factory_request"]) == ("Flat", "IVF4096,Flat") and info["chunks"] > 0
    query = runner.invoke(app, ["query", "lava", "--index", "ivf", "--json", "--device", "cpu"])
    assert query.exit_code == 0 and json.loads(query.stdout)["hits"], query.output
    auto = runner.invoke(app, ["index", "docs", "--index", "ivf", "--factory", "auto", "-q"])
    assert auto.exit_code == 0, auto.output
    assert json.loads(runner.invoke(app, ["info", "--index", "ivf", "--json"]).stdout)["factory_request"] == "auto"


def test_a_directory_left_by_a_failed_ivf_build_loads(work, model_dir):
    """What grace-rag wrote before this fix: a manifest naming an untrained IVF index older than the store."""
    edit_json(work / "ix" / "manifest.json", lambda m: m.update(factory="IVF4096,Flat", factory_request="IVF4096,Flat",
                                                               faiss_revision=-1))
    for args in (["info", "--index", "ix"], ["query", "lava", "--index", "ix", "--device", "cpu"],
                 ["index", "docs", "--index", "ix", "--factory", "auto", "-q"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)


def test_a_forced_ivf_index_is_trained_once_enough_vectors_exist(tmp_path):
    vectors = np.random.default_rng(0).standard_normal((400, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [Chunk(id=f"c{i}", text=f"text {i}") for i in range(400)]
    with GraceIndex.create(tmp_path / "ix", EncoderInfo("m", "f" * 32, 16), factory="IVF4,Flat") as index:
        index.add(chunks[:100], vectors[:100])  # IVF4 trains on 4 x 39 = 156 vectors or more
        index.save()
        assert index.manifest.factory == "Flat" and index.search(vectors[7], k=1)[0].id == "c7"
        index.add(chunks[100:], vectors[100:])
        index.save()
        assert index.manifest.factory == "IVF4,Flat"
    with GraceIndex.open(tmp_path / "ix") as index:
        assert index.manifest.factory == "IVF4,Flat" and index.search(vectors[300], k=1)[0].id == "c300"


def test_nprobe_is_set_from_the_cli_kept_and_given_back_to_auto(work, model_dir):
    def search() -> dict:
        return json.loads(runner.invoke(app, ["info", "--index", "np", "--json"]).stdout)["search"]

    built = runner.invoke(app, ["index", "docs", "--index", "np", "--model", str(model_dir), "--device", "cpu",
                                "--max-rationale-tokens", "2", "--nprobe", "7", "-q"])
    assert built.exit_code == 0, built.output
    assert search()["nprobe"] == 7
    assert runner.invoke(app, ["index", "docs", "--index", "np", "-q"]).exit_code == 0
    assert search()["nprobe"] == 7  # not given: kept
    assert runner.invoke(app, ["index", "docs", "--index", "np", "--nprobe", "0", "-q"]).exit_code == 0
    assert search()["nprobe"] == 0
    refused = runner.invoke(app, ["index", "docs", "--index", "np", "--nprobe", "-1", "-q"])
    assert refused.exit_code == 2 and "nprobe" in refused.output and "Traceback" not in refused.output


def test_set_nprobe_on_a_built_ivf_index_applies_at_once_and_auto_measures(tmp_path):
    import faiss

    vectors = np.random.default_rng(1).standard_normal((600, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [Chunk(id=f"c{i}", text=f"text {i}") for i in range(600)]
    with GraceIndex.create(tmp_path / "ix", EncoderInfo("m", "f" * 32, 16), factory="IVF4,Flat") as index:
        index.add(chunks, vectors)
        index.save()
        index.set_nprobe(2)
        assert faiss.extract_index_ivf(index._index).nprobe == 2
        index.save()
    with GraceIndex.open(tmp_path / "ix") as index:
        assert index.manifest.search.nprobe == 2 and faiss.extract_index_ivf(index._index).nprobe == 2
        index.set_nprobe(0)
        assert faiss.extract_index_ivf(index._index).nprobe == index.manifest.search.tuned_nprobe >= 1
