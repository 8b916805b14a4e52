"""Pooling: token states + which positions are text and which are rationale -> one vector per row.

Pure tensor functions. A row's pooled region is split in two segments: ``text`` (every valid
token after the system prefix and before the rationale: the user text and the assistant
header) and ``rationale`` (the generated tokens). The paper's mean pools both together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from grace_rag.config import Pooling


@dataclass(frozen=True)
class Segments:
    """(B, T) bool masks of the positions pooled as text and as rationale (disjoint)."""

    text: Tensor
    rationale: Tensor

    @property
    def pooled(self) -> Tensor:
        """Every pooled position: text and rationale together (B, T)."""
        return self.text | self.rationale


def pooling_mask(attention_mask: Tensor, pool_start: Tensor) -> Tensor:
    """Positions that are valid and at or after each row's absolute pool start.

    attention_mask: (B, T) 0/1; pool_start: (B,) absolute index of the first pooled token
    (left padding + system-prefix length). Returns (B, T) bool.
    """
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)  # (T,)
    return attention_mask.bool() & (positions[None, :] >= pool_start[:, None])  # (B, T)


def segments(attention_mask: Tensor, pool_start: Tensor, rationale_start: Tensor) -> Segments:
    """Text = valid positions in [pool_start, rationale_start); rationale = valid positions from rationale_start.

    ``pool_start`` and ``rationale_start`` are (B,) absolute column indices.
    """
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)[None, :]  # (1, T)
    valid = attention_mask.bool()  # (B, T)
    in_rationale = positions >= rationale_start[:, None]  # (B, T)
    text = valid & (positions >= pool_start[:, None]) & ~in_rationale
    return Segments(text=text, rationale=valid & in_rationale)


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``hidden`` (B, T, D) over ``mask`` (B, T) -> (B, D). Masked states may be NaN."""
    kept = hidden.masked_fill(~mask[..., None], 0.0)  # (B, T, D)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(hidden.dtype)  # (B, 1)
    return kept.sum(dim=1) / count  # (B, D)


def max_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Element-wise max over masked positions -> (B, D); an empty row gives zeros."""
    kept = hidden.masked_fill(~mask[..., None], float("-inf"))  # (B, T, D)
    out = kept.max(dim=1).values  # (B, D)
    return torch.where(mask.any(dim=1, keepdim=True), out, torch.zeros_like(out))


def last_token_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """The state at the last masked position of each row (the EOS token when present) -> (B, D)."""
    positions = torch.arange(mask.shape[1], device=mask.device)  # (T,)
    last = torch.where(mask, positions[None, :], -1).max(dim=1).values.clamp(min=0)  # (B,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, D)


def _rationale_or_text(seg: Segments) -> Tensor:
    """The rationale mask, or the text mask for rows without a rationale (B, T)."""
    has = seg.rationale.any(dim=1, keepdim=True)  # (B, 1)
    return torch.where(has, seg.rationale, seg.text)


def rationale_pool(hidden: Tensor, seg: Segments) -> Tensor:
    """Mean over the rationale tokens only; rows without a rationale pool their text -> (B, D)."""
    return mean_pool(hidden, _rationale_or_text(seg))


def balanced_pool(hidden: Tensor, seg: Segments) -> Tensor:
    """Segment-balanced: 1/2 mean over the text + 1/2 mean over the rationale -> (B, D).

    Unlike the plain mean, a 30-token rationale weighs as much as a 300-token text; rows
    without a rationale give the text's mean.
    """
    return 0.5 * (mean_pool(hidden, seg.text) + mean_pool(hidden, _rationale_or_text(seg)))


POOLERS: dict[Pooling, Callable[[Tensor, Segments], Tensor]] = {
    Pooling.MEAN: lambda h, s: mean_pool(h, s.pooled),
    Pooling.MAX: lambda h, s: max_pool(h, s.pooled),
    Pooling.LAST: lambda h, s: last_token_pool(h, s.pooled),
    Pooling.RATIONALE: rationale_pool,
    Pooling.BALANCED: balanced_pool,
}


def pool(hidden: Tensor, seg: Segments, how: Pooling) -> Tensor:
    """Dispatch to the pooling function for ``how``: (B, T, D) states -> (B, D)."""
    return POOLERS[how](hidden, seg)


def normalize(vectors: Tensor) -> Tensor:
    """L2-normalise rows (B, D); zero rows stay zero."""
    return torch.nn.functional.normalize(vectors.float(), p=2, dim=-1)
