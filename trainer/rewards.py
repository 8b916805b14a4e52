"""GRACE rewards (method.md §2): pure functions of L2-normalised embeddings, shapes (B, K).

Notation: B groups (triplets or texts), K rollouts per group, M negatives, D dimensions.
``q`` (B, D) query embeddings, ``pos`` (B, K, D) the K rollouts of each positive,
``neg`` (B, M, D) negatives, ``anchor`` (B, D) the anchor rationale of each text.
All similarities are dot products of unit vectors, i.e. cosine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


def contrastive_reward(q: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
    """Paper: ``R_CL[i,k] = sim(q_i, pos_ik) - sum_m sim(q_i, neg_im)``.  (B, K)"""
    pos_sim = torch.einsum("bd,bkd->bk", q, pos)  # (B, K)
    neg_sim = torch.einsum("bd,bmd->bm", q, neg).sum(dim=1, keepdim=True)  # (B, 1)
    return pos_sim - neg_sim


def contrastive_reward_per_rollout(q: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
    """Variant: ``sim(q_i, pos_ik) - sum_m sim(pos_ik, neg_im)``; the negative term varies with k."""
    pos_sim = torch.einsum("bd,bkd->bk", q, pos)  # (B, K)
    neg_sim = torch.einsum("bkd,bmd->bkm", pos, neg).sum(dim=2)  # (B, K)
    return pos_sim - neg_sim


def consistency_reward(pos: Tensor) -> Tensor:
    """``R_cons[i,k] = mean_{j != k} sim(pos_ik, pos_ij)``; zero when K = 1.  (B, K)"""
    _, k, _ = pos.shape
    if k < 2:
        return pos.new_zeros(pos.shape[:2])
    sims = torch.einsum("bkd,bjd->bkj", pos, pos)  # (B, K, K)
    off_diag = sims.sum(dim=2) - torch.diagonal(sims, dim1=1, dim2=2)  # (B, K)
    return off_diag / (k - 1)


def _mean_over_others(matrix: Tensor) -> Tensor:
    """Row means of a (B, B, ...) matrix excluding the diagonal: out[i] = mean_{j != i} m[i, j]."""
    b = matrix.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=matrix.device)
    eye = eye.view(b, b, *([1] * (matrix.dim() - 2)))
    return matrix.masked_fill(eye, 0.0).sum(dim=1) / (b - 1)


def hard_negative_reward(q: Tensor, pos: Tensor) -> Tensor:
    """Paper: ``R_hard[i,k] = - mean_{j != i} max_l sim(q_i, pos_jl)``; constant over k.  (B, K)"""
    b, k, _ = pos.shape
    if b < 2:
        return pos.new_zeros(b, k)
    best = torch.einsum("id,jld->ijl", q, pos).amax(dim=2)  # (B, B)
    return (-_mean_over_others(best)).unsqueeze(1).expand(b, k)


def hard_negative_reward_per_rollout(q: Tensor, pos: Tensor, same_query: Tensor | None = None) -> Tensor:
    """Variant: ``- mean_{j != i} sim(q_j, pos_ik)``: each rollout against the other queries.  (B, K)

    ``same_query`` (B, B) bool marks rows that share a query (a BEIR query with several relevant
    documents): those are not "other" queries and are left out.
    """
    return _against_other_contexts(q, pos, same_query)


def soft_rank_reward(q: Tensor, pos: Tensor, neg: Tensor, tau: float, same_query: Tensor | None = None) -> Tensor:
    """InfoNCE as a reward: ``tau * log softmax`` of sim(q_i, pos_ik)/tau against the batch's other documents.

    The candidates for query i are its own rollout pos_ik, every rollout of every other group
    (except groups sharing query i) and every negative of the batch. Varies with k inside a group
    (the paper's negative and hard terms do not). Scaled by tau so that the total reward
    ``(primary + ...) / tau`` is the log-probability itself.  (B, K)
    """
    b, k, _ = pos.shape
    own = torch.einsum("bd,bkd->bk", q, pos) / tau  # (B, K)
    other_pos = torch.einsum("id,jld->ijl", q, pos) / tau  # (B, B, K)
    exclude = torch.eye(b, dtype=torch.bool, device=q.device)
    if same_query is not None:
        exclude = exclude | same_query.to(q.device)
    other_pos = other_pos.masked_fill(exclude[:, :, None], float("-inf")).reshape(b, -1)  # (B, B*K)
    other_neg = torch.einsum("id,jmd->ijm", q, neg).reshape(b, -1) / tau  # (B, B*M)
    z_others = torch.logsumexp(torch.cat([other_pos, other_neg], dim=1), dim=1, keepdim=True)  # (B, 1)
    return tau * (own - torch.logaddexp(own, z_others.expand(b, k)))


def margin_reward(q: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
    """``sim(q_i, pos_ik) - max_m sim(neg_im, pos_ik)``: close to the query, far from the hardest negative.  (B, K)"""
    pos_sim = torch.einsum("bd,bkd->bk", q, pos)  # (B, K)
    neg_sim = torch.einsum("bkd,bmd->bkm", pos, neg).amax(dim=2)  # (B, K)
    return pos_sim - neg_sim


def self_alignment_reward(anchor: Tensor, x: Tensor) -> Tensor:
    """Unsupervised: ``R_self[i,k] = sim(anchor_i, x_ik)``.  (B, K)"""
    return torch.einsum("bd,bkd->bk", anchor, x)


def inbatch_anchor_reward(anchor: Tensor, x: Tensor) -> Tensor:
    """Unsupervised in-batch term: ``- mean_{j != i} sim(x_ik, anchor_j)``; varies with k.  (B, K)"""
    return _against_other_contexts(anchor, x)


def _against_other_contexts(context: Tensor, x: Tensor, same: Tensor | None = None) -> Tensor:
    """``- mean_{j != i, not same[i, j]} sim(context_j, x_ik)``: each rollout against the other groups' contexts.  (B, K)"""
    b, k, _ = x.shape
    if b < 2:
        return x.new_zeros(b, k)
    sims = torch.einsum("jd,ikd->ijk", context, x)  # (B_i, B_j, K)
    if same is None:
        return -_mean_over_others(sims)
    keep = ~(torch.eye(b, dtype=torch.bool, device=x.device) | same.to(x.device))  # (B, B)
    count = keep.sum(dim=1).clamp(min=1).to(x.dtype)[:, None]  # (B, 1)
    return -(sims * keep[:, :, None]).sum(dim=1) / count


def grounding_reward(rationales: list[str], documents: list[str], k: int) -> Tensor:
    """How well each rollout's rationale alone finds its own text: the reciprocal rank of positive i among
    the batch's ``documents`` when rollout (i, k) is a BM25 query (0 if not found).  (B, K)

    ``rationales`` are group-major (B*K); ``documents[i]`` for i < B is row i's positive (the rest are
    the batch's negatives). Unlike the embedding rewards, it depends only on the words written, so
    it varies with k and rewards rationales that name what the text is about.
    """
    from grace_rag.evaluation.rationale_quality import grounding_ranks

    b = len(rationales) // k
    ranks = grounding_ranks(rationales, documents, [i for i in range(b) for _ in range(k)])
    return torch.tensor(ranks, dtype=torch.float32).view(b, k)


def total_reward(primary: Tensor, consistency: Tensor, hard: Tensor,
                 lambda_consistency: float, lambda_hard: float, tau: float) -> Tensor:
    """``R = (primary + lambda1 * consistency + lambda2 * hard) / tau``.  (B, K)"""
    return (primary + lambda_consistency * consistency + lambda_hard * hard) / tau


def apply_length_penalty(reward: Tensor, finished: Tensor, penalty: float | None = -1.0) -> Tensor:
    """Rollouts cut at the length limit without EOS (``finished`` False) get ``penalty`` instead
    (``None``: no penalty)."""
    if penalty is None:
        return reward
    return torch.where(finished, reward, torch.full_like(reward, penalty))


@dataclass(frozen=True)
class RewardBreakdown:
    """Every component of the reward, each (B, K), and the total actually optimised."""

    primary: Tensor  # contrastive (supervised) or self-alignment (unsupervised)
    consistency: Tensor
    hard: Tensor  # in-batch hard negative (supervised) or in-batch anchor term (unsupervised)
    total: Tensor
    grounding: Tensor | None = None  # BM25 reciprocal rank of the own text from the rationale alone

    def means(self) -> dict[str, float]:
        """Per-component batch means, for the metrics log."""
        names = ("primary", "consistency", "hard", "total") + (("grounding",) if self.grounding is not None else ())
        return {name: float(getattr(self, name).float().mean()) for name in names}


#: reward variant -> (q, pos, neg, tau, same_query) -> (primary, hard), each (B, K); see RewardVariant
VARIANTS: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "paper": lambda q, pos, neg, tau, same: (contrastive_reward(q, pos, neg), hard_negative_reward(q, pos)),
    "per_rollout": lambda q, pos, neg, tau, same: (contrastive_reward_per_rollout(q, pos, neg),
                                                   hard_negative_reward_per_rollout(q, pos, same)),
    "soft_rank": lambda q, pos, neg, tau, same: (soft_rank_reward(q, pos, neg, tau, same),
                                                 hard_negative_reward_per_rollout(q, pos, same)),
    "margin": lambda q, pos, neg, tau, same: (margin_reward(q, pos, neg), hard_negative_reward_per_rollout(q, pos, same)),
}


def supervised_rewards(q: Tensor, pos: Tensor, neg: Tensor, finished: Tensor, *, variant: str,
                       lambda_consistency: float, lambda_hard: float, tau: float,
                       length_penalty: float | None, same_query: Tensor | None = None,
                       grounding: Tensor | None = None, lambda_grounding: float = 0.0) -> RewardBreakdown:
    """All supervised reward terms of ``variant`` (paper, per_rollout, soft_rank, margin), plus
    ``lambda_grounding * grounding`` inside the scaled total when a grounding reward is given."""
    primary, hard = VARIANTS[variant](q, pos, neg, tau, same_query)
    cons = consistency_reward(pos)
    total = total_reward(primary, cons, hard, lambda_consistency, lambda_hard, tau)
    if grounding is not None:
        total = total + lambda_grounding * grounding.to(total.device) / tau
    return RewardBreakdown(primary, cons, hard, apply_length_penalty(total, finished, length_penalty), grounding)


def unsupervised_rewards(anchor: Tensor, x: Tensor, finished: Tensor, *, lambda_consistency: float,
                         lambda_hard: float, tau: float, length_penalty: float | None) -> RewardBreakdown:
    """Self-alignment + consistency + in-batch anchor term, scaled and length-penalised."""
    primary, cons, hard = self_alignment_reward(anchor, x), consistency_reward(x), inbatch_anchor_reward(anchor, x)
    total = total_reward(primary, cons, hard, lambda_consistency, lambda_hard, tau)
    return RewardBreakdown(primary, cons, hard, apply_length_penalty(total, finished, length_penalty))
