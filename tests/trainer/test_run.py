"""Whole runs: exact resume, atomic output, data refused before any model loads, loadable result."""

import json

import pytest
from safetensors.torch import load_file

from grace_rag.config import EncoderConfig
from grace_rag.errors import ConfigError, DataError
from grace_rag.testing import tiny_backbone
from grace_rag.trainer import run as run_mod
from grace_rag.trainer.config import TrainConfig
from grace_rag.trainer.run import checkpoint_dir, train


TINY = dict(batch_size=2, rollouts=2, encoder=EncoderConfig(max_rationale_tokens=3, max_input_tokens=16), length_penalty=None,
            learning_rate=1e-2, steps=4, save_every=2)


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path, triplet_file, crash_at):
    straight = train(TrainConfig(**TINY, output_dir=str(tmp_path / "a")), triplet_file,
                     backbone=tiny_backbone(), progress=False)
    out_b = tmp_path / "b"
    out_b.mkdir()
    (out_b / "keep.txt").write_text("an earlier model")
    (out_b / "grace_train.json").write_text("{}")  # an earlier train output: replaced with overwrite=True

    crash_at(3)
    cfg = TrainConfig(**TINY, output_dir=str(out_b))
    with pytest.raises(crash_at.error):
        train(cfg, triplet_file, backbone=tiny_backbone(), progress=False, overwrite=True)
    assert (out_b / "keep.txt").read_text() == "an earlier model"  # a failed run never overwrites
    assert [p.name for p in checkpoint_dir(out_b).glob("step-*")] == ["step-00000002"]
    with pytest.raises(ConfigError, match="pass --resume"):
        train(cfg, triplet_file, backbone=tiny_backbone(), progress=False, overwrite=True)

    crash_at(None)
    resumed = train(cfg, triplet_file, backbone=tiny_backbone(), resume=True, progress=False, overwrite=True)
    a, b = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(out_b / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a), "resumed weights differ from the uninterrupted run"
    assert resumed.last_metrics["reward_total"] == pytest.approx(straight.last_metrics["reward_total"])
    steps = [json.loads(line)["step"] for line in (out_b / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert not (out_b / "keep.txt").exists() and not checkpoint_dir(out_b).exists()


def test_a_checkpoint_of_the_old_flat_config_resumes(tmp_path, triplet_file, crash_at):
    """Checkpoints written before TrainConfig nested its encoder settings record them at the top level."""
    cfg = TrainConfig(**TINY, output_dir=str(tmp_path / "out"))
    crash_at(3)
    with pytest.raises(crash_at.error):
        train(cfg, triplet_file, backbone=tiny_backbone(), progress=False)
    state_file = checkpoint_dir(tmp_path / "out") / "step-00000002" / "state.json"
    state = json.loads(state_file.read_text())
    flat = {k: v for k, v in state["config"].items() if k != "encoder"}
    flat.update(max_rationale_tokens=3, query_rationale_tokens=None, max_input_tokens=16, layer=None, pooling=None)
    state_file.write_text(json.dumps({**state, "config": flat}))
    crash_at(None)
    changed = TrainConfig(**{**TINY, "encoder": TINY["encoder"].with_changes(pooling="max")},
                          output_dir=str(tmp_path / "out"))
    with pytest.raises(ConfigError, match=r"settings differ from the checkpointed run \(encoder.pooling\)"):
        train(changed, triplet_file, backbone=tiny_backbone(), resume=True, progress=False)
    assert train(cfg, triplet_file, backbone=tiny_backbone(), resume=True, progress=False).steps == 4


def test_output_directory_loads_as_an_encoder(tmp_path, triplet_file, model_dir):
    from grace_rag.models import load_backbone

    out = tmp_path / "model"
    encoder = TINY["encoder"].with_changes(layer="penultimate")
    cfg = TrainConfig(**{**TINY, "steps": 1, "encoder": encoder}, lora=True, output_dir=str(out))
    train(cfg, triplet_file, backbone=load_backbone(model_dir), progress=False,
          evaluator=lambda encoder: {"ndcg@10": float(encoder.encode_documents(["x"]).shape[1])})
    summary = json.loads((out / "grace_train.json").read_text())
    assert summary["config"]["lora"] is True and [e["step"] for e in summary["evals"]] == [0, 1]
    assert summary["evals"][-1]["published"] is True  # the last evaluation scored the published directory
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[1])
    for key in ("reward_total", "reward_primary", "reward_consistency", "reward_hard", "adv_std", "policy_loss",
                "kl", "rationale_len", "grad_norm", "s_per_step"):
        assert key in record
    from grace_rag.encoder import GraceEncoder

    encoder = GraceEncoder(model=str(out), config=EncoderConfig(cache=False), device="cpu")
    assert encoder.encode_documents(["a cat"]).shape == (1, 32)
    # the settings it was trained for travel with it; explicit arguments override them
    assert encoder.config.layer.value == "penultimate" and encoder.config.max_rationale_tokens == 3
    explicit = GraceEncoder(model=str(out), config=EncoderConfig(layer="last", cache=False), device="cpu")
    assert explicit.config.layer.value == "last" and explicit.config.max_rationale_tokens == 3


def test_malformed_data_is_refused_before_any_model_loads(tmp_path, monkeypatch):
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"query": "q", "positive": "p", "negative": "n"}\n{"query": "q", "negative": "p"}\n')
    monkeypatch.setattr(run_mod, "GraceTrainer", None)  # would fail loudly if reached
    with pytest.raises(DataError, match=r"t.jsonl:2: missing field 'positive'"):
        train(TrainConfig(**TINY, output_dir=str(tmp_path / "o")), bad)
    with pytest.raises(DataError, match="batch_size is 8"):
        train(TrainConfig(**{**TINY, "batch_size": 8}, output_dir=str(tmp_path / "o")), _one_line(tmp_path))
    with pytest.raises(ConfigError, match="no output directory"):
        train(TrainConfig(**TINY), bad)


def _one_line(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text('{"query": "q", "positive": "p", "negative": "n"}\n')
    return path


def test_max_minutes_stops_at_a_step_boundary_and_publishes(tmp_path, triplet_file, monkeypatch):
    import time

    clock = iter(range(0, 10_000, 30))  # every reading of the clock is 30 s after the previous one
    monkeypatch.setattr(time, "monotonic", lambda: float(next(clock)))
    out = tmp_path / "m"
    # deadline = first reading + 60 s; the check after step 1 reads +30 s, after step 2 +60 s: stop there
    result = train(TrainConfig(**{**TINY, "steps": 10}, max_minutes=1.0, output_dir=str(out)), triplet_file,
                   backbone=tiny_backbone(), progress=False,
                   evaluator=lambda encoder: {"ndcg@10": 0.0})
    assert result.steps == 2
    assert [e["step"] for e in result.evals] == [0, 2]
    steps = [json.loads(line).get("step") for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 2]
    assert json.loads((out / "grace_train.json").read_text())["steps"] == 2
