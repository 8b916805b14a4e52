"""`grace-rag eval`: the JSON shape, --out, the table, and options reaching the encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from grace_rag.cli.eval import register
from grace_rag.errors import DataError
from grace_rag.evaluation import adapters

METRICS = {"model", "ndcg@10", "recall@10", "recall@100", "mrr@10", "docs_per_s"}


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # keep "eval" a subcommand, as in the real app
    return app


def invoke(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, ["eval", *args])


def test_json_shape(app, beir_dir: Path):
    result = invoke(app, str(beir_dir), "--model", "bm25", "--model", "bm25", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert {"dataset", "subset", "results"} <= set(payload)
    assert payload["dataset"] == "toy" and payload["subset"] is None
    assert len(payload["results"]) == 2
    for row in payload["results"]:
        assert METRICS <= set(row)
        assert all(isinstance(row[key], float) for key in METRICS - {"model"})


def test_out_file_and_subset(app, beir_dir: Path, tmp_path: Path):
    out = tmp_path / "results.json"
    result = invoke(app, str(beir_dir), "-m", "bm25", "--subset", "4", "--corpus-size", "30",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "ndcg@10" in result.output and "bm25" in result.output  # the table
    payload = json.loads(out.read_text())
    assert payload["subset"]["queries"] == 4 and payload["subset"]["documents"] == 30
    assert payload["subset"]["distractors_per_query"] == 5


def test_distractors_option_reaches_the_subset(app, beir_dir: Path):
    result = invoke(app, str(beir_dir), "-m", "bm25", "--subset", "4", "--corpus-size", "30",
                    "--distractors", "1", "--json")
    assert result.exit_code == 0, result.output
    subset = json.loads(result.output)["subset"]
    assert subset["distractors_per_query"] == 1 and subset["bm25_distractors"] <= 4


def test_sts_folder(app, sts_file: Path, monkeypatch, bow):
    monkeypatch.setitem(adapters.BUILTIN_MODELS, "bow",
                        lambda settings: adapters.LoadedModel("bow", bow, {}))
    result = invoke(app, str(sts_file.parent), "--split", "dev", "-m", "bow", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["task"] == "sts" and set(payload["results"][0]) >= {"model", "spearman"}


def test_grace_options_reach_the_encoder_config(app, beir_dir: Path, monkeypatch):
    from grace_rag import encoder as encoder_module
    from grace_rag.testing import tiny_backbone

    real_encoder = encoder_module.GraceEncoder
    seen = {}

    class SpyEncoder(real_encoder):  # a GraceEncoder (the runner checks for one) on the tiny model
        def __init__(self, model="default", config=None, **kwargs):
            if not seen:  # the evaluated model (the rationale metrics build more encoders after it)
                seen.update(model=model, config=config)
            super().__init__(model, config, device="cpu", backbone=tiny_backbone())

    monkeypatch.setattr(encoder_module, "GraceEncoder", SpyEncoder)
    result = invoke(app, str(beir_dir), "-m", "some/model-dir", "--max-rationale-tokens", "2",
                    "--pooling", "max", "--layer", "penultimate", "--subset", "2", "--json")
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert seen["model"] == "some/model-dir"
    assert (config.max_rationale_tokens, config.pooling.value, config.layer.value) == (
        2, "max", "penultimate")
    row = json.loads(result.output)["results"][0]
    assert row["model"] == "some/model-dir[rt=2,pool=max,layer=penultimate]"
    assert row["settings"]["max_rationale_tokens"] == 2


def test_bad_split_is_a_grace_error(app, beir_dir: Path):
    result = invoke(app, str(beir_dir), "-m", "bm25", "--split", "dev")
    assert isinstance(result.exception, DataError)
    assert "available splits: test" in str(result.exception)


def test_missing_dataset_dir_is_a_usage_error(app, tmp_path: Path):
    result = invoke(app, str(tmp_path / "nope"), "-m", "bm25")
    assert result.exit_code == 2
