"""Generation-preserving InfoNCE: the memo is written by the base weights, the LM term keeps the model writing."""

import pytest
import torch

from grace_rag.config import EncoderConfig
from grace_rag.config import Role
from grace_rag.errors import ConfigError
from grace_rag.generation import GenerationSettings
from grace_rag.testing import tiny_backbone
from grace_rag.trainer.config import TrainConfig
from grace_rag.trainer.loop import GraceTrainer
from grace_rag.trainer.rollout import memo_rollout

CL = dict(objective="contrastive", batch_size=3, rollouts=1,
          encoder=EncoderConfig(max_rationale_tokens=4, query_rationale_tokens=0, max_input_tokens=16),
          learning_rate=5e-2, lora=True, track_kl=False)


def _base_rationale_ids(trainer, texts, tokens):
    """Greedy rationale token ids of ``texts`` under the initial weights (adapter off)."""
    prompts = [trainer.builders[Role.DOCUMENT].build(t) for t in texts]
    trainer.generator.forget_prefixes()  # its prefix cache holds the adapter's keys and values
    with trainer.policy.disable_adapter(), torch.no_grad():
        rationales = trainer.generator.generate(prompts, GenerationSettings(max_new_tokens=tokens))
    trainer.generator.forget_prefixes()  # its prefix cache saw the base weights
    return [r.token_ids for r in rationales]


def test_lm_term_is_zero_while_the_adapter_equals_the_base(triplets):
    trainer = GraceTrainer(TrainConfig(**CL, lm_weight=1.0), tiny_backbone(seed=4))
    metrics = trainer.step(triplets[:3], 0)  # LoRA starts as the identity: policy == writer
    assert metrics["lm_term"] == pytest.approx(0.0, abs=1e-5)
    later = trainer.step(triplets[:3], 1)  # the same texts after one update: the policy has moved
    assert abs(later["lm_term"]) > 1e-6


def test_memo_rationales_are_the_base_models_even_after_the_adapter_moved(triplets):
    trainer = GraceTrainer(TrainConfig(**CL), tiny_backbone(seed=4))
    for step in range(3):
        trainer.step(triplets[:3], step)
    fresh = triplets[3:]  # first seen now, after three updates
    ro = memo_rollout(trainer.memo, trainer.builders[Role.QUERY].build, trainer.builders[Role.DOCUMENT].build,
                      fresh, 0, 4, 1)
    assert ro.group.token_ids == _base_rationale_ids(trainer, [t.positive for t in fresh], 4)
    assert all(r.logprobs is not None and len(r.logprobs) == len(r.token_ids) for r in ro.group.rationales)


def test_a_strong_lm_term_keeps_the_greedy_rationales_closer_to_the_base(triplets):
    def drift(lm_weight):
        trainer = GraceTrainer(TrainConfig(**CL, lm_weight=lm_weight), tiny_backbone(seed=4))
        for step in range(8):
            trainer.step(triplets[(step % 2) * 3:(step % 2) * 3 + 3], step)
        prompts = [trainer.builders[Role.DOCUMENT].build(t.positive) for t in triplets]
        trainer.policy.eval()
        with torch.no_grad():
            now = [r.token_ids for r in trainer.generator.generate(prompts, GenerationSettings(max_new_tokens=4))]
        base = _base_rationale_ids(trainer, [t.positive for t in triplets], 4)
        return sum(a != b for x, y in zip(now, base) for a, b in zip(x, y))

    assert drift(20.0) < drift(0.0)


@pytest.mark.bad_input
def test_lm_weight_with_a_policy_objective_is_refused():
    with pytest.raises(ConfigError, match="lm_weight applies to the contrastive objective"):
        TrainConfig(objective="grace", lm_weight=1.0)
    with pytest.raises(ConfigError, match="lm_weight must be >= 0"):
        TrainConfig(objective="contrastive", lm_weight=-1.0)


def test_flat_negatives_equal_to_a_rows_own_positive_are_not_pushed_away(triplets):
    from grace_rag.trainer.data import Triplet

    trainer = GraceTrainer(TrainConfig(**CL), tiny_backbone(seed=4))
    a, b = triplets[0], triplets[1]
    batch = [Triplet(a.query, a.positive, ()), Triplet(b.query, b.positive, (a.positive,)),
             Triplet(triplets[2].query, triplets[2].positive, ())]
    captured = {}
    import grace_rag.trainer.loop as loop

    real = loop.info_nce

    def spy(q, pos, neg, tau, same=None, blocked=None):
        captured["neg"], captured["blocked"] = neg, blocked
        return real(q, pos, neg, tau, same, blocked)

    loop.info_nce = spy
    try:
        trainer.step(batch, 0)
    finally:
        loop.info_nce = real
    assert captured["neg"].shape[0] == 1  # one negative in all: rows 0 and 2 have none
    assert captured["blocked"].tolist() == [[True], [False], [False]]  # it is row 0's own positive


@pytest.mark.bad_input
@pytest.mark.parametrize("settings, message", [
    (dict(objective="contrastive", lora=False, reference_copy=False, lm_weight=1.0), "keeps no copy"),
    (dict(objective="grace", lora=False, reference_copy=False, kl_coef=0.1), "keeps no copy"),
    (dict(objective="contrastive", lora=False, encoder={"writer": "base"}), "writer = base serves"),
    (dict(objective="contrastive", lora=True, merge=True, encoder={"writer": "base"}), "writer = base serves"),
    (dict(objective="grace", lora=True, encoder={"writer": "base"}), "nothing to train"),
])
def test_recipe_options_that_cannot_apply_are_refused_before_any_model_loads(settings, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(settings)


def test_full_fine_tuning_without_a_copy_writes_with_the_policy(triplets):
    trainer = GraceTrainer(TrainConfig(**{**CL, "lora": False, "learning_rate": 1e-3}, reference_copy=False),
                           tiny_backbone(seed=4))
    assert trainer.reference is None and trainer.memo.sampler is trainer.sampler
    assert trainer.step(triplets[:3], 0)["contrastive_loss"] > 0


def test_gradient_checkpointing_gives_the_same_update(triplets):
    def first_step(checkpointing):
        trainer = GraceTrainer(TrainConfig(**CL, lm_weight=1.0, gradient_checkpointing=checkpointing),
                               tiny_backbone(seed=4))
        metrics = trainer.step(triplets[:3], 0)
        return metrics, {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}

    plain, a = first_step(False)
    checkpointed, b = first_step(True)
    assert checkpointed["contrastive_loss"] == pytest.approx(plain["contrastive_loss"], rel=1e-5)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_run_decides_its_own_writer_whatever_the_starting_model_is_served_with():
    from grace_rag.config import Writer
    from grace_rag.trainer.loop import training_encoder_config

    served = {"writer": "base", "writer_input_tokens": 128, "layer": "penultimate"}
    plain = training_encoder_config(TrainConfig(**CL), served)
    assert plain.writer is Writer.MODEL and plain.writer_input_tokens is None  # not inherited
    assert plain.layer.value == "penultimate"  # what the model is, is inherited
    frozen = training_encoder_config(TrainConfig(**{**CL, "encoder": CL["encoder"].with_changes(writer="base")}), served)
    assert frozen.writer is Writer.BASE


def test_a_frozen_writer_model_is_published_with_the_input_its_writer_read(tmp_path, triplet_file, model_dir):
    import json

    from grace_rag.trainer.run import train

    config = TrainConfig(**{**CL, "encoder": CL["encoder"].with_changes(writer="base")}, steps=1,
                         output_dir=str(tmp_path / "out"), model=str(model_dir), save_every=0)
    train(config, triplet_file, progress=False)
    settings = json.loads((tmp_path / "out" / "grace_encoder.json").read_text())["settings"]
    assert settings["writer"] == "base" and settings["writer_input_tokens"] == 16  # the run's max_input_tokens


@pytest.mark.bad_input
def test_a_frozen_writer_cannot_start_from_an_adapter(tmp_path, triplet_file, model_dir):
    from peft import LoraConfig, get_peft_model

    from grace_rag.models import load_backbone
    from grace_rag.trainer.run import train

    adapter = tmp_path / "adapter"
    get_peft_model(load_backbone(model_dir).model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(adapter)
    config = TrainConfig(**{**CL, "encoder": CL["encoder"].with_changes(writer="base")}, steps=1,
                         output_dir=str(tmp_path / "out"), model=str(adapter))
    with pytest.raises(ConfigError, match="writer = base starts from the untrained base model.*LoRA adapter"):
        train(config, triplet_file, progress=False)
    assert not (tmp_path / "out").exists()
