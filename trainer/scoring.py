"""Scoring a rollout: rewards -> advantages -> which groups carry signal, with a diagnosis when few do.

Pure functions of tensors and the config; the trainer calls ``score`` once per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from . import rewards as R
from .config import TrainConfig
from .estimators import ESTIMATORS, std_floor_normalize, varying_groups

#: share of groups without advantage above which a step is reported as (mostly) wasted
ZERO_ADVANTAGE_WARN = 0.5


@dataclass
class Scored:
    """Rewards and advantages of one step's B groups of K rollouts, and which groups to train on."""

    breakdown: R.RewardBreakdown
    advantages: Tensor  # (B, K)
    keep: Tensor  # (B,) bool: groups used in the policy update
    metrics: dict[str, float] = field(default_factory=dict)
    warning: str | None = None


def same_query_mask(batch: Sequence[Any]) -> Tensor | None:
    """(B, B) bool: rows j != i that share row i's query or positive (not "other" examples); None unsupervised."""
    if not batch or not hasattr(batch[0], "query"):
        return None
    b = len(batch)
    same = torch.tensor([[i != j and (batch[i].query == batch[j].query or batch[i].positive == batch[j].positive)
                          for j in range(b)] for i in range(b)], dtype=torch.bool)
    return same


def reward_fn(cfg: TrainConfig, context: Tensor, group: Tensor, negatives: Tensor | None, finished: Tensor,
              same: Tensor | None, grounding: Tensor | None = None) -> R.RewardBreakdown:
    """The configured rewards of ``group`` (B, K, D) rollouts given their context (queries or anchors)."""
    kw = dict(lambda_consistency=cfg.lambda_consistency, lambda_hard=cfg.lambda_hard, tau=cfg.tau,
              length_penalty=cfg.length_penalty)
    if negatives is None:
        return R.unsupervised_rewards(context, group, finished, **kw)
    return R.supervised_rewards(context, group, negatives, finished, variant=cfg.reward_variant.value,
                                same_query=same, grounding=grounding, lambda_grounding=cfg.lambda_grounding, **kw)


def score(cfg: TrainConfig, ro: Any, same: Tensor | None, documents: list[str] | None = None) -> Scored:
    """Rewards, the estimator's advantages, optional std floor and dynamic sampling, and diagnostics.

    ``documents`` (the batch's positives, then its negatives) turn on the grounding reward when
    ``lambda_grounding`` > 0 (supervised).
    """
    group, neg, ctx = ro.group_embeddings(), ro.negative_embeddings(), ro.context.embeddings
    b, k = group.shape[0], ro.k
    finished = ro.group.finished.view(b, k)
    grounding = None
    if cfg.lambda_grounding > 0 and neg is not None and documents:
        grounding = R.grounding_reward([r.text for r in ro.group.rationales], documents, k)
    breakdown = reward_fn(cfg, ctx, group, neg, finished, same, grounding)
    baseline = None
    if ro.greedy is not None:  # ReMax: the greedy rationale's reward, computed from it alone
        alone = ro.greedy.embeddings.view(b, 1, -1)
        baseline = reward_fn(cfg, ctx, alone, neg, ro.greedy.finished.view(b, 1), same).total  # (B, 1)
    lengths = torch.tensor([len(t) for t in ro.group.token_ids], dtype=torch.float32).view(b, k)
    advantages = ESTIMATORS[cfg.estimator].advantage(breakdown.total, baseline, lengths)  # (B, K)
    if cfg.advantage_std_floor is not None:
        advantages = std_floor_normalize(advantages, breakdown.total, cfg.advantage_std_floor)
    signal = advantages.abs().amax(dim=1) > 1e-8  # (B,)
    keep = varying_groups(breakdown.total) & signal if cfg.dynamic_sampling else torch.ones(b, dtype=torch.bool)
    zero_frac = float((~signal).float().mean())
    metrics = {f"reward_{name}": v for name, v in breakdown.means().items()}
    metrics.update(reward_std=_std(breakdown.total), reward_std_in_group=_in_group_std(breakdown.total),
                   adv_std=_std(advantages), adv_absmax=float(advantages.abs().max()),
                   zero_adv_frac=zero_frac, groups_skipped=float((~keep).sum()))
    warning = diagnose(cfg, finished, breakdown.total, signal) if zero_frac > ZERO_ADVANTAGE_WARN else None
    return Scored(breakdown, advantages, keep, metrics, warning)


def diagnose(cfg: TrainConfig, finished: Tensor, rewards: Tensor, signal: Tensor) -> str:
    """Why most groups of a step carry no advantage, and what to change."""
    dead = ~signal
    share = f"{int(dead.sum())} of {dead.numel()} groups carry no advantage"
    all_cut = (~finished[dead]).all(dim=1) if dead.any() else torch.zeros(0, dtype=torch.bool)
    if cfg.length_penalty is not None and all_cut.numel() and bool(all_cut.float().mean() > 0.5):
        return (f"{share}: all their rollouts hit the rationale length limit "
                f"(encoder.max_rationale_tokens) without EOS and scored the length penalty {cfg.length_penalty}; raise --max-rationale-tokens or pass "
                "--length-penalty off")
    return (f"{share}: their {rewards.shape[1]} rollouts scored the same reward (rationales too alike); use a "
            "reward that varies per rollout (--reward-variant soft_rank or margin), raise rollout_temperature, "
            "or set dynamic_sampling = true (in --config) to skip such groups")


def _std(x: Tensor) -> float:
    return float(x.std()) if x.numel() > 1 else 0.0


def _in_group_std(rewards: Tensor) -> float:
    """Mean over groups of the std of the K rewards: the signal group-relative estimators see."""
    return float(rewards.std(dim=1).mean()) if rewards.shape[1] > 1 else 0.0
