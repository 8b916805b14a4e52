"""TrainConfig: paper defaults, cross-field checks, TOML/YAML loading."""

import pytest

from grace_rag.errors import ConfigError
from grace_rag.trainer.config import Estimator, Mode, Objective, TrainConfig, load_config


def test_defaults_follow_the_authors_code():
    c = TrainConfig()
    assert (c.rollouts, c.batch_size, c.tau, c.lambda_consistency, c.lambda_hard) == (8, 64, 0.1, 0.2, 0.2)
    assert (c.rollout_temperature, c.single_temperature, c.length_penalty) == (1.0, 0.5, -1.0)
    assert (c.clip_eps, c.dual_clip, c.kl_coef, c.learning_rate, c.weight_decay, c.grad_clip) == (
        0.2, 3.0, 0.0, 1e-6, 0.01, 1.0)
    assert c.estimator == Estimator.GRPO and c.upper_clip == 0.2
    assert TrainConfig(estimator="dapo").upper_clip == 0.28


@pytest.mark.parametrize("bad, words", [
    ({"rollouts": 1}, "rollouts must be >= 2"),
    ({"tau": 0}, "tau must be > 0"),
    ({"estimator": "ppo"}, "valid values are: grpo"),
    ({"estimator": "dapo", "kl_coef": 0.1}, "dapo estimator uses no KL"),
    ({"batch_size": 4, "grad_accum": 3}, "must be divisible by ppo_minibatches x grad_accum"),
    ({"rollout_temperature": 0}, "rollouts are sampled"),
    ({"mixed_precision": "fp8"}, "valid values are: auto"),
])
def test_cross_field_checks(bad, words):
    with pytest.raises(ConfigError, match=words):
        TrainConfig(**bad)


def test_contrastive_objective_accepts_one_rollout():
    assert TrainConfig(objective="contrastive", rollouts=1).objective == Objective.CONTRASTIVE


def test_toml_and_yaml(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[train]\nmode = "unsupervised"\nrollouts = 4\nlora = true\nlora_target_modules = ["q_proj"]\n')
    c = load_config(toml)
    assert c.mode == Mode.UNSUPERVISED and c.rollouts == 4 and c.lora and c.lora_target_modules == ["q_proj"]
    yml = tmp_path / "c.yaml"
    yml.write_text("estimator: dr_grpo\nbatch_size: 8\n")
    assert load_config(yml).estimator == Estimator.DR_GRPO


def test_bad_files(tmp_path):
    unknown = tmp_path / "u.toml"
    unknown.write_text("rollout = 4\n")
    with pytest.raises(ConfigError, match="unknown setting.*rollout.*valid settings"):
        load_config(unknown)
    broken = tmp_path / "b.toml"
    broken.write_text("rollouts = = 4\n")
    with pytest.raises(ConfigError, match="cannot be parsed"):
        load_config(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_round_trip_and_replace():
    c = TrainConfig(estimator="remax", rollouts=4)
    assert TrainConfig.from_dict(c.to_dict()) == c
    assert c.replace(rollouts=None, batch_size=8).batch_size == 8
    assert c.replace(rollouts=None).rollouts == 4
