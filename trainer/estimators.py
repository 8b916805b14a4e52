"""RL estimators: advantages and clipped token-level policy losses, one Enum and one dispatch table.

Shapes: rewards (B, K); flattened rollouts N = B*K; token tensors (N, T) with a 0/1 ``mask``
over the rationale tokens. Pure functions, no model in sight.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

EPS = 1e-6


class Estimator(str, enum.Enum):
    """The RL estimator turning rewards into a policy loss (see ``ESTIMATORS``)."""

    GRPO = "grpo"
    DR_GRPO = "dr_grpo"
    DAPO = "dapo"
    REINFORCE_PP = "reinforce_pp"
    REMAX = "remax"


class Aggregation(str, enum.Enum):
    """How per-token losses become one number."""

    TOKEN_MEAN = "token_mean"  # sum over all tokens / number of tokens (GRACE code, DAPO)
    SEQ_MEAN_TOKEN_SUM_NORM = "seq_mean_token_sum_norm"  # sum / (N * max_len) (Dr.GRPO)
    SEQ_MEAN_TOKEN_MEAN = "seq_mean_token_mean"  # mean over sequences of per-sequence means


# ---- advantages: (rewards (B, K), baseline (B, 1) | None, lengths (B, K) | None) -> (B, K) -----

def group_mean_advantage(rewards: Tensor, baseline: Tensor | None = None, lengths: Tensor | None = None) -> Tensor:
    """GRACE / Dr.GRPO: ``A = R - mean_k R`` within each group, no std division."""
    return rewards - rewards.mean(dim=1, keepdim=True)


def group_normalized_advantage(rewards: Tensor, baseline: Tensor | None = None,
                               lengths: Tensor | None = None) -> Tensor:
    """GRPO/DAPO normalisation: ``(R - mean_k R) / (std_k R + eps)`` (unbiased std)."""
    std = rewards.std(dim=1, keepdim=True) if rewards.shape[1] > 1 else torch.zeros_like(rewards[:, :1])
    return (rewards - rewards.mean(dim=1, keepdim=True)) / (std + EPS)


def batch_whitened_advantage(rewards: Tensor, baseline: Tensor | None = None, lengths: Tensor | None = None) -> Tensor:
    """REINFORCE++: no group baseline; whitened over every rationale *token* of the batch.

    With an outcome reward every token of a sequence carries its sequence's reward, so the
    token-level mean and std are the sequence-level ones weighted by length (``lengths``; equal
    weights when None).
    """
    w = torch.ones_like(rewards) if lengths is None else lengths.to(rewards.dtype)
    total = w.sum().clamp(min=1.0)
    mean = (w * rewards).sum() / total
    var = (w * (rewards - mean) ** 2).sum() / (total - 1).clamp(min=1.0)
    return (rewards - mean) / (var.sqrt() + EPS)


def greedy_baseline_advantage(rewards: Tensor, baseline: Tensor | None = None, lengths: Tensor | None = None) -> Tensor:
    """ReMax: ``A = R - R_greedy``, the reward of a greedy rationale of the same text as baseline."""
    if baseline is None:
        raise ValueError("ReMax needs the greedy-rollout rewards as baseline")
    return rewards - baseline.reshape(rewards.shape[0], -1)


def varying_groups(rewards: Tensor, eps: float = 1e-6) -> Tensor:
    """(B,) bool: groups whose K rewards are not all equal (the others carry no group-relative signal)."""
    return (rewards.amax(dim=1) - rewards.amin(dim=1)) > eps


def std_floor_normalize(advantages: Tensor, rewards: Tensor, floor: float) -> Tensor:
    """``A / max(std_k R, floor)``: std normalisation that cannot blow up near-constant groups."""
    std = rewards.std(dim=1, keepdim=True) if rewards.shape[1] > 1 else torch.zeros_like(rewards[:, :1])
    return advantages / std.clamp(min=floor)


# ---- losses ---------------------------------------------------------------------------------

def ppo_token_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, clip_low: float,
                   clip_high: float, dual_clip: float | None) -> tuple[Tensor, Tensor]:
    """Per-token PPO clipped surrogate with dual clip; returns (loss (N, T), clipped (N, T) bool).

    ``advantages`` is (N,) per sequence or (N, T) per token. With ``A < 0`` the loss is capped
    at ``-A * dual_clip`` (dual clip, Ye et al. 2020).
    """
    adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages  # (N, 1|T)
    ratio = torch.exp(logp - old_logp)  # (N, T)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    was_clipped = clipped > unclipped
    if dual_clip is not None:
        capped = torch.minimum(loss, -adv * dual_clip)
        loss = torch.where(adv < 0, capped, loss)
    return loss, was_clipped


def aggregate(loss: Tensor, mask: Tensor, how: Aggregation, *, max_len: int,
              num_tokens: float | None = None, num_seqs: float | None = None) -> Tensor:
    """Reduce (N, T) per-token values to a scalar.

    ``num_tokens``/``num_seqs`` default to this tensor's own counts; pass the whole batch's
    counts when it is split into micro-batches so the micro-batch results add up exactly.
    """
    mask = mask.to(loss.dtype)
    total = (loss * mask).sum()
    n_seqs = float(loss.shape[0]) if num_seqs is None else num_seqs
    if how == Aggregation.TOKEN_MEAN:
        n_tok = mask.sum().clamp(min=1.0) if num_tokens is None else num_tokens
        return total / n_tok
    if how == Aggregation.SEQ_MEAN_TOKEN_SUM_NORM:
        return total / (n_seqs * max_len)
    per_seq = (loss * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return per_seq.sum() / n_seqs


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token KL(pi || ref) estimate ``exp(ref - logp) - (ref - logp) - 1`` (>= 0)."""
    diff = ref_logp - logp
    return torch.exp(diff) - diff - 1.0


@dataclass(frozen=True)
class EstimatorSpec:
    """What distinguishes one estimator: its advantage, its aggregation and clip defaults."""

    advantage: Callable[[Tensor, Tensor | None], Tensor]
    aggregation: Aggregation
    clip_high: float | None = None  # None: same as the lower clip epsilon
    needs_greedy_baseline: bool = False
    group_baseline: bool = True  # the baseline is the group's own mean: a group of one has zero advantage


ESTIMATORS: dict[Estimator, EstimatorSpec] = {
    Estimator.GRPO: EstimatorSpec(group_mean_advantage, Aggregation.TOKEN_MEAN),
    Estimator.DR_GRPO: EstimatorSpec(group_mean_advantage, Aggregation.SEQ_MEAN_TOKEN_SUM_NORM),
    Estimator.DAPO: EstimatorSpec(group_normalized_advantage, Aggregation.TOKEN_MEAN, clip_high=0.28),
    Estimator.REINFORCE_PP: EstimatorSpec(batch_whitened_advantage, Aggregation.TOKEN_MEAN, group_baseline=False),
    Estimator.REMAX: EstimatorSpec(greedy_baseline_advantage, Aggregation.TOKEN_MEAN, needs_greedy_baseline=True,
                                   group_baseline=False),
}


def policy_loss(estimator: Estimator, logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, *,
                clip_eps: float, clip_eps_high: float | None, dual_clip: float, max_len: int,
                num_tokens: float | None = None, num_seqs: float | None = None) -> tuple[Tensor, dict[str, float]]:
    """The estimator's clipped policy loss over rationale tokens, and the fraction of clipped tokens."""
    spec = ESTIMATORS[estimator]
    high = clip_eps_high if clip_eps_high is not None else (spec.clip_high or clip_eps)
    loss, was_clipped = ppo_token_loss(logp, old_logp, advantages, clip_eps, high, dual_clip)
    value = aggregate(loss, mask, spec.aggregation, max_len=max_len, num_tokens=num_tokens, num_seqs=num_seqs)
    m = mask.bool()
    clip_frac = float(was_clipped[m].float().mean()) if m.any() else 0.0
    return value, {"clip_frac": clip_frac}
