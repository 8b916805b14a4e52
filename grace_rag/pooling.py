"""Pooling: token states + mask -> one vector per row (pure tensor functions)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from grace_rag.config import Pooling


def pooling_mask(attention_mask: torch.Tensor, pool_start: torch.Tensor) -> torch.Tensor:
    """Positions that are valid and at or after each row's absolute pool start.

    attention_mask: (B, T) 0/1; pool_start: (B,) absolute index of the first pooled token
    (left padding + system-prefix length). Returns (B, T) bool.
    """
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)  # (T,)
    return attention_mask.bool() & (positions[None, :] >= pool_start[:, None])  # (B, T)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, T, D) over ``mask`` (B, T) -> (B, D). Masked states may be NaN."""
    kept = hidden.masked_fill(~mask[..., None], 0.0)  # (B, T, D)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(hidden.dtype)  # (B, 1)
    return kept.sum(dim=1) / count  # (B, D)


def max_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Element-wise max over masked positions -> (B, D); an empty row gives zeros."""
    kept = hidden.masked_fill(~mask[..., None], float("-inf"))  # (B, T, D)
    out = kept.max(dim=1).values  # (B, D)
    return torch.where(mask.any(dim=1, keepdim=True), out, torch.zeros_like(out))


def last_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The state at the last masked position of each row (the EOS token when present) -> (B, D)."""
    positions = torch.arange(mask.shape[1], device=mask.device)  # (T,)
    last = torch.where(mask, positions[None, :], -1).max(dim=1).values.clamp(min=0)  # (B,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, D)


POOLERS: dict[Pooling, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    Pooling.MEAN: mean_pool,
    Pooling.MAX: max_pool,
    Pooling.LAST: last_token_pool,
}


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: Pooling) -> torch.Tensor:
    """Dispatch to the pooling function for ``how``."""
    return POOLERS[how](hidden, mask)


def normalize(vectors: torch.Tensor) -> torch.Tensor:
    """L2-normalise rows (B, D); zero rows stay zero."""
    return torch.nn.functional.normalize(vectors.float(), p=2, dim=-1)
