"""InfoNCE over pooled text+rationale embeddings: the paper's "w/ CL training" baseline loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce(q: Tensor, pos: Tensor, neg: Tensor | None, tau: float, same: Tensor | None = None,
             neg_blocked: Tensor | None = None) -> Tensor:
    """Cross-entropy of each query against all positives (in-batch) and all hard negatives.

    ``q`` (B, D), ``pos`` (B, D), ``neg`` (B, M, D), flat (N, D) or None; rows need not be
    normalised (they are L2-normalised here, so gradients flow through the normalisation). The
    target of query i is positive i; every other positive and every negative is a distractor,
    except positives of rows marked in ``same`` (B, B) bool (rows sharing query i or its positive:
    a BEIR query with several relevant documents must not push its own documents away) and
    negatives marked in ``neg_blocked`` (B, N) bool (a negative that is query i's own positive).
    """
    q = F.normalize(q, dim=-1)
    candidates = F.normalize(pos, dim=-1)  # (B, D)
    if neg is not None:
        candidates = torch.cat([candidates, F.normalize(neg.reshape(-1, neg.shape[-1]), dim=-1)])  # (B + B*M, D)
    logits = q @ candidates.T / tau  # (B, B + B*M)
    if same is not None or neg_blocked is not None:
        b = q.shape[0]
        blocked = torch.zeros_like(logits, dtype=torch.bool)
        if same is not None:
            blocked[:, :b] = same.to(logits.device) & ~torch.eye(b, dtype=torch.bool, device=logits.device)
        if neg_blocked is not None:
            blocked[:, b:] = neg_blocked.to(logits.device)
        logits = logits.masked_fill(blocked, float("-inf"))
    labels = torch.arange(q.shape[0], device=q.device)
    return F.cross_entropy(logits, labels)
