"""Advantages and estimator losses against hand-computed numbers."""

import math

import pytest
import torch
from torch.testing import assert_close

from grace_rag.trainer.estimators import (ESTIMATORS, Aggregation, Estimator, aggregate,
                                          batch_whitened_advantage, greedy_baseline_advantage,
                                          group_mean_advantage, group_normalized_advantage, kl_k3,
                                          policy_loss, ppo_token_loss, std_floor_normalize, varying_groups)

REWARDS = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]])


def test_advantages():
    assert_close(group_mean_advantage(REWARDS), torch.tensor([[-1.0, 0.0, 1.0], [-2.0, -2.0, 4.0]]))
    s = math.sqrt(12.0)  # unbiased std of (0, 0, 6)
    assert_close(group_normalized_advantage(REWARDS), torch.tensor([[-1.0, 0.0, 1.0], [-2 / s, -2 / s, 4 / s]]),
                 atol=1e-5, rtol=1e-5)
    w = math.sqrt(26.0 / 5.0)  # unbiased std of all six rewards (mean 2)
    assert_close(batch_whitened_advantage(REWARDS), (REWARDS - 2.0) / w, atol=1e-5, rtol=1e-5)
    assert_close(greedy_baseline_advantage(REWARDS, torch.tensor([[2.0], [1.0]])),
                 torch.tensor([[-1.0, 0.0, 1.0], [-1.0, -1.0, 5.0]]))
    with pytest.raises(ValueError):
        greedy_baseline_advantage(REWARDS, None)


def test_reinforce_pp_whitens_per_token():
    lengths = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 10.0]])  # the reward-6 rollout has 10 tokens
    # token-weighted mean = (1+2+3+0+0+60)/15 = 4.4; the sequence-level mean would be 2
    out = batch_whitened_advantage(REWARDS, None, lengths)
    mean = 66.0 / 15.0
    var = (((REWARDS - mean) ** 2) * lengths).sum() / 14.0
    assert_close(out, (REWARDS - mean) / var.sqrt(), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, batch_whitened_advantage(REWARDS))


def test_varying_groups_and_std_floor():
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.1, 0.2], [0.0, 3.0, 6.0]])
    assert varying_groups(rewards).tolist() == [False, True, True]
    adv = group_mean_advantage(rewards)
    out = std_floor_normalize(adv, rewards, floor=1.0)
    # group 1: std 0.1 < floor -> divided by 1 (not blown up 10x); group 2: std 3 -> divided by 3
    assert_close(out, torch.tensor([[0.0, 0.0, 0.0], [-0.1, 0.0, 0.1], [-1.0, 0.0, 1.0]]))


# two sequences, three tokens; ratios chosen to hit each clipping case
RATIOS = torch.tensor([[1.5, 0.5, 1.0], [1.5, 5.0, 0.5]])
OLD = torch.zeros(2, 3)
LOGP = torch.log(RATIOS)
ADV = torch.tensor([1.0, -1.0])
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])


def test_ppo_token_loss_clip_and_dual_clip():
    loss, clipped = ppo_token_loss(LOGP, OLD, ADV, 0.2, 0.2, 3.0)
    # A>0: max(-r, -clip(r)) ; A<0: max(r, clip(r)) capped at 3
    assert_close(loss, torch.tensor([[-1.2, -0.5, -1.0], [1.5, 3.0, 0.8]]))
    assert clipped.tolist() == [[True, False, False], [False, False, True]]
    no_dual, _ = ppo_token_loss(LOGP, OLD, ADV, 0.2, 0.2, None)
    assert_close(no_dual[1], torch.tensor([1.5, 5.0, 0.8]))


def test_aggregations():
    loss, _ = ppo_token_loss(LOGP, OLD, ADV, 0.2, 0.2, 3.0)
    assert_close(aggregate(loss, MASK, Aggregation.TOKEN_MEAN, max_len=4), torch.tensor(3.6 / 5))
    assert_close(aggregate(loss, MASK, Aggregation.SEQ_MEAN_TOKEN_SUM_NORM, max_len=4), torch.tensor(3.6 / 8))
    assert_close(aggregate(loss, MASK, Aggregation.SEQ_MEAN_TOKEN_MEAN, max_len=4),
                 torch.tensor((-1.7 / 2 + 5.3 / 3) / 2))


@pytest.mark.parametrize("how", list(Aggregation))
def test_micro_batches_add_up_to_the_full_batch(how):
    loss, _ = ppo_token_loss(LOGP, OLD, ADV, 0.2, 0.2, 3.0)
    full = aggregate(loss, MASK, how, max_len=4)
    parts = sum(aggregate(loss[i:i + 1], MASK[i:i + 1], how, max_len=4, num_tokens=MASK.sum(), num_seqs=2)
                for i in range(2))
    assert_close(parts, full)


def test_estimator_losses():
    kw = dict(clip_eps=0.2, clip_eps_high=None, dual_clip=3.0, max_len=4)
    grpo, stats = policy_loss(Estimator.GRPO, LOGP, OLD, ADV, MASK, **kw)
    assert_close(grpo, torch.tensor(0.72))
    assert stats["clip_frac"] == pytest.approx(2 / 5)
    assert_close(policy_loss(Estimator.DR_GRPO, LOGP, OLD, ADV, MASK, **kw)[0], torch.tensor(0.45))
    # DAPO's decoupled upper clip 0.28: first token -> -1.28 instead of -1.2
    assert_close(policy_loss(Estimator.DAPO, LOGP, OLD, ADV, MASK, **kw)[0], torch.tensor((3.6 - 0.08) / 5))
    assert_close(policy_loss(Estimator.REINFORCE_PP, LOGP, OLD, ADV, MASK, **kw)[0], torch.tensor(0.72))


def test_on_policy_gradient_is_reinforce():
    """At ratio 1 the clipped loss has the REINFORCE gradient -A * mask / num_tokens."""
    logp = torch.randn(2, 3, requires_grad=True)
    loss, _ = policy_loss(Estimator.GRPO, logp, logp.detach(), ADV, MASK, clip_eps=0.2, clip_eps_high=None,
                          dual_clip=3.0, max_len=4)
    loss.backward()
    assert_close(logp.grad, -ADV[:, None] * MASK / MASK.sum())


def test_kl_k3():
    out = kl_k3(torch.zeros(2), torch.log(torch.tensor([0.5, 1.0])))
    assert_close(out, torch.tensor([0.5 + math.log(2) - 1, 0.0]))


def test_dispatch_table_covers_every_estimator():
    assert set(ESTIMATORS) == set(Estimator)
    assert [e for e in Estimator if ESTIMATORS[e].needs_greedy_baseline] == [Estimator.REMAX]
