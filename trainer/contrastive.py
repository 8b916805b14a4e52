"""InfoNCE over pooled text+rationale embeddings: the paper's "w/ CL training" baseline loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce(q: Tensor, pos: Tensor, neg: Tensor | None, tau: float) -> Tensor:
    """Cross-entropy of each query against all positives (in-batch) and all hard negatives.

    ``q`` (B, D), ``pos`` (B, D), ``neg`` (B, M, D) or None; rows need not be normalised
    (they are L2-normalised here, so gradients flow through the normalisation). The target
    of query i is positive i; every other positive and every negative is a distractor.
    """
    q = F.normalize(q, dim=-1)
    candidates = F.normalize(pos, dim=-1)  # (B, D)
    if neg is not None:
        candidates = torch.cat([candidates, F.normalize(neg.reshape(-1, neg.shape[-1]), dim=-1)])  # (B + B*M, D)
    logits = q @ candidates.T / tau  # (B, B + B*M)
    labels = torch.arange(q.shape[0], device=q.device)
    return F.cross_entropy(logits, labels)
