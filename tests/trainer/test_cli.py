"""`grace-rag train` parses, delegates, writes a model, and turns data errors into one line."""

import json

import pytest
from typer.testing import CliRunner

from grace_rag.cli import train as train_cli
from grace_rag.cli.app import app
from grace_rag.testing import tiny_backbone

if not any(c.name == "train" for c in app.registered_commands):
    train_cli.register(app)


@pytest.fixture
def tiny_model_dir(tmp_path):
    backbone = tiny_backbone()
    path = tmp_path / "tiny"
    backbone.model.save_pretrained(str(path))
    backbone.tokenizer.save_pretrained(str(path))
    return path


def test_train_command_writes_a_model(tmp_path, triplet_file, tiny_model_dir):
    cfg = tmp_path / "train.toml"
    cfg.write_text("[train]\nlength_penalty = -1.0\ntrack_kl = false\n[train.encoder]\nmax_input_tokens = 16\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "train", str(triplet_file), "--out", str(out), "--model", str(tiny_model_dir), "--steps", "1",
        "--batch-size", "2", "--rollouts", "2", "--max-rationale-tokens", "2", "--estimator", "dr_grpo",
        "--lora", "--config", str(cfg), "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[result.output.index("{"):])
    assert payload["steps"] == 1 and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()  # --lora publishes the adapter alone
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_model_dir.resolve())
    assert json.loads((out / "grace_encoder.json").read_text())["settings"]["max_rationale_tokens"] == 2
    saved = json.loads((out / "grace_train.json").read_text())["config"]
    assert saved["estimator"] == "dr_grpo" and saved["lora"] is True and saved["encoder"]["max_input_tokens"] == 16


def test_merge_and_length_penalty_off(tmp_path, triplet_file, tiny_model_dir):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "train", str(triplet_file), "--out", str(out), "--model", str(tiny_model_dir), "--steps", "1",
        "--batch-size", "2", "--rollouts", "2", "--max-rationale-tokens", "2", "--max-input-tokens", "16",
        "--lora", "--merge", "--length-penalty", "off", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    assert json.loads((out / "grace_train.json").read_text())["config"]["length_penalty"] is None


def test_length_penalty_must_be_a_number_or_off(tmp_path, triplet_file):
    result = CliRunner().invoke(app, ["train", str(triplet_file), "--out", str(tmp_path / "o"),
                                      "--length-penalty", "sometimes"])
    assert result.exit_code != 0 and "expected a number or 'off'" in result.output


def test_bad_data_is_one_red_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    result = CliRunner().invoke(app, ["train", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "bad.jsonl:1: invalid JSON" in result.output and "Traceback" not in result.output
