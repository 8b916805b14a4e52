"""Scoring (advantages, dynamic sampling, diagnosis, ReMax baseline) and real PPO updates."""

import json

import pytest

from grace_rag.config import EncoderConfig
import torch
from safetensors.torch import load_file

from grace_rag.generation import Rationale
from grace_rag.testing import tiny_backbone
from grace_rag.trainer.config import TrainConfig
from grace_rag.trainer.contrastive import info_nce
from grace_rag.trainer.loop import GraceTrainer
from grace_rag.trainer.rollout import Rollout, Sampled
from grace_rag.trainer.run import train
from grace_rag.trainer.scoring import score

TINY = dict(batch_size=4, rollouts=2, encoder=EncoderConfig(max_rationale_tokens=3, max_input_tokens=16), track_kl=False)


def _sampled(vectors, finished=None, tokens=2):
    n = vectors.shape[0]
    finished = finished if finished is not None else [True] * n
    rats = [Rationale(text="r", token_ids=[5] * tokens, finished=f) for f in finished]
    return Sampled([None] * n, rats, torch.nn.functional.normalize(vectors, dim=-1))


def _rollout(group, greedy=None, finished=None, seed=0):
    """B=3 groups of K=3 rollouts with given group vectors (9, D), one query and negative per group."""
    g = torch.Generator().manual_seed(seed)
    q = _sampled(torch.randn(3, 4, generator=g))
    neg = _sampled(torch.randn(3, 4, generator=g))
    return Rollout(context=q, group=_sampled(group, finished), negatives=neg,
                   greedy=_sampled(greedy) if greedy is not None else None, k=3)


def test_dynamic_sampling_drops_exactly_the_groups_whose_rewards_do_not_vary():
    g = torch.Generator().manual_seed(1)
    group = torch.randn(9, 4, generator=g)
    group[3:6] = group[3]  # group 1: three identical rollouts -> identical rewards
    cfg = TrainConfig(**{**TINY, "batch_size": 3, "rollouts": 3}, dynamic_sampling=True, length_penalty=None)
    scored = score(cfg, _rollout(group), None)
    assert scored.keep.tolist() == [True, False, True]
    assert scored.metrics["groups_skipped"] == 1.0
    off = score(TrainConfig(**{**TINY, "batch_size": 3, "rollouts": 3}, length_penalty=None), _rollout(group), None)
    assert off.keep.all()


def test_most_groups_cut_at_the_limit_is_diagnosed_with_the_fix():
    group = torch.randn(9, 4, generator=torch.Generator().manual_seed(2))
    cfg = TrainConfig(**{**TINY, "batch_size": 3, "rollouts": 3}, length_penalty=-1.0)
    scored = score(cfg, _rollout(group, finished=[False] * 9), None)
    assert scored.metrics["zero_adv_frac"] == 1.0 and scored.metrics["reward_total"] == -1.0
    assert "length penalty" in scored.warning and "--length-penalty off" in scored.warning
    fine = score(cfg, _rollout(group), None)
    assert fine.warning is None


def test_remax_baseline_comes_from_the_greedy_rationale_alone():
    g = torch.Generator().manual_seed(3)
    group, greedy = torch.randn(9, 4, generator=g), torch.randn(3, 4, generator=g)
    cfg = TrainConfig(**{**TINY, "batch_size": 3, "rollouts": 3}, estimator="remax", length_penalty=None)
    a = score(cfg, _rollout(group, greedy), None)
    changed = group.clone()
    changed[0] = -changed[0]  # change one rollout of group 0
    b = score(cfg, _rollout(changed, greedy), None)
    baseline_a = a.breakdown.total - a.advantages  # (B, K): the baseline, repeated
    baseline_b = b.breakdown.total - b.advantages
    torch.testing.assert_close(baseline_a, baseline_b)  # the baseline did not move


def test_remax_accepts_one_rollout_but_group_estimators_refuse_it():
    TrainConfig(**{**TINY, "rollouts": 1}, estimator="remax")
    with pytest.raises(Exception, match="rollouts must be >= 2"):
        TrainConfig(**{**TINY, "rollouts": 1}, estimator="grpo")


def test_info_nce_does_not_push_away_a_document_of_the_same_query():
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # two rows of the same query
    pos = torch.tensor([[1.0, 0.0], [0.9, 0.1]])
    same = torch.tensor([[False, True], [True, False]])
    masked = info_nce(q, pos, None, 0.05, same)
    assert float(masked) == pytest.approx(0.0, abs=1e-6)  # nothing left to compete with
    assert float(info_nce(q, pos, None, 0.05)) > 0.1


def test_first_ppo_pass_has_ratio_one_and_later_passes_clip(triplets):
    cfg = TrainConfig(**TINY, learning_rate=0.5, length_penalty=None, weight_decay=0.0, grad_clip=0.0,
                      ppo_epochs=1, rollout_temperature=1.0)
    one = GraceTrainer(cfg, tiny_backbone()).step(triplets[:4], 0)
    assert one["ratio_dev"] < 1e-3 and one["clip_frac"] == 0.0 and one["updates"] == 1.0
    many = GraceTrainer(cfg.replace(ppo_epochs=3, ppo_minibatches=2), tiny_backbone()).step(triplets[:4], 0)
    assert many["updates"] == 6.0
    assert many["ratio_dev"] > 1e-3 and many["clip_frac"] > 0.0  # later updates see ratio != 1 and clip


def test_resume_is_bit_identical_with_several_ppo_epochs(tmp_path, triplet_file, crash_at):
    cfg = dict(TINY, batch_size=2, steps=4, save_every=2, ppo_epochs=2, ppo_minibatches=2, learning_rate=1e-2,
               length_penalty=None)
    train(TrainConfig(**cfg, output_dir=str(tmp_path / "a")), triplet_file, backbone=tiny_backbone(), progress=False)
    crash_at(3)
    with pytest.raises(crash_at.error):
        train(TrainConfig(**cfg, output_dir=str(tmp_path / "b")), triplet_file, backbone=tiny_backbone(),
              progress=False)
    crash_at(None)
    train(TrainConfig(**cfg, output_dir=str(tmp_path / "b")), triplet_file, backbone=tiny_backbone(),
          progress=False, resume=True)
    a, b = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["updates"] == 4.0


def test_lora_merge_happens_in_fp32_for_a_bf16_base():
    backbone = tiny_backbone()
    w_base = backbone.model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    backbone.model.to(torch.bfloat16)
    trainer = GraceTrainer(TrainConfig(**TINY, lora=True), backbone)
    layer = trainer.policy.base_model.model.model.layers[0].self_attn.q_proj
    with torch.no_grad():
        layer.lora_B["default"].weight.fill_(1e-4)  # a small update, below bf16 resolution of W
    delta = (layer.lora_B["default"].weight @ layer.lora_A["default"].weight) * layer.scaling["default"]
    expected = w_base.to(torch.bfloat16).float() + delta
    merged = trainer.merged_model().model.layers[0].self_attn.q_proj.weight
    assert merged.dtype == torch.float32
    torch.testing.assert_close(merged, expected, atol=1e-7, rtol=1e-6)
