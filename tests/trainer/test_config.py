"""TrainConfig: paper defaults, cross-field checks, TOML/YAML loading."""

import pytest

from grace_rag.config import EncoderConfig, Pooling
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


def test_encoder_settings_nest_in_toml_and_yaml(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[train]\nrollouts = 4\n[train.encoder]\npooling = "balanced"\nmax_rationale_tokens = 48\n')
    c = load_config(toml)
    assert c.rollouts == 4 and c.encoder.pooling is Pooling.BALANCED and c.encoder.max_rationale_tokens == 48
    assert c.encoder.max_input_tokens == 512  # the training default, kept explicit
    assert c.encoder.explicit == {"pooling", "max_rationale_tokens", "query_rationale_tokens", "max_input_tokens"}
    top = tmp_path / "top.toml"  # an [encoder] table beside [train] is the same thing
    top.write_text('[train]\nrollouts = 4\n[encoder]\npooling = "balanced"\nmax_rationale_tokens = 48\n')
    assert load_config(top) == c
    yml = tmp_path / "c.yaml"
    yml.write_text("rollouts: 4\nencoder:\n  pooling: balanced\n  max_rationale_tokens: 48\n")
    assert load_config(yml) == c
    assert TrainConfig.from_dict(c.to_dict()) == c


def test_old_flat_file_is_migrated_with_one_warning(tmp_path, caplog):
    old = tmp_path / "old.yaml"
    old.write_text("rollouts: 4\nmax_rationale_tokens: 48\npooling: balanced\nlayer: null\n")
    with caplog.at_level("WARNING"):
        c = load_config(old)
    assert c.encoder.max_rationale_tokens == 48 and c.encoder.pooling is Pooling.BALANCED
    assert "layer" not in c.encoder.explicit  # None meant "the model's layer"
    [record] = [r for r in caplog.records if "deprecated" in r.getMessage()]
    message = record.getMessage()
    assert "\n" not in message and "max_rationale_tokens, layer, pooling at the top level" in message
    assert "[encoder]" in message
    both = tmp_path / "both.toml"
    both.write_text("max_input_tokens = 16\n[encoder]\nmax_input_tokens = 32\n")
    with pytest.raises(ConfigError, match="max_input_tokens given both at the top level and under encoder"):
        load_config(both)


def test_bad_encoder_tables(tmp_path):
    unknown = tmp_path / "u.toml"
    unknown.write_text("[encoder]\npoling = 'mean'\n")
    with pytest.raises(ConfigError, match=r"unknown encoder setting\(s\) poling; valid encoder settings are: max_rat"):
        load_config(unknown)
    bad = tmp_path / "b.toml"
    bad.write_text("[encoder]\npooling = 'median'\n")
    with pytest.raises(ConfigError, match="unknown pooling 'median'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="encoder.max_rationale_tokens must be >= 1 for training"):
        TrainConfig(encoder=EncoderConfig(max_rationale_tokens=0))
    with pytest.raises(ConfigError, match="encoder must be an EncoderConfig"):
        TrainConfig(encoder={"pooling": "mean"})
