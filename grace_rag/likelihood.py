"""Token log-probabilities of given continuations, and the pooled states of the same pass.

One forward over prompt ⊕ rationale gives both what a likelihood needs (log π of each rationale
token) and what the contrastive loss needs (the masked mean of the chosen layer). Used with
gradient by the trainer (policy loss, InfoNCE, the language-model term) and without by the
evaluation (the fluency of a rationale under the untrained base model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from grace_rag.pooling import pool
from grace_rag.prompts import PromptIds
from grace_rag.representation import PoolSpec, SequenceBatch, forward_states


@dataclass
class SequenceOutput:
    """``logp`` (N, T) log-probs of the rationale tokens (right-aligned), ``mask`` (N, T) 0/1,
    ``pooled`` (N, D) un-normalised pooled vector of the chosen layer (None if not asked)."""

    logp: Tensor
    mask: Tensor
    pooled: Tensor | None


def rationale_mask(lengths: Sequence[int], width: int, device: Any) -> Tensor:
    """(N, width) 1 on the last ``lengths[i]`` positions of each row (rationales end at the right edge)."""
    cols = torch.arange(width, device=device)  # (T,)
    starts = width - torch.tensor(list(lengths), device=device)  # (N,)
    return (cols[None, :] >= starts[:, None]).float()  # (N, T)


def forward_sequences(model: Any, prompts: Sequence[PromptIds], rationales: Sequence[Sequence[int]], pad_id: int,
                      temperature: float = 1.0, spec: PoolSpec | None = None, logprobs: bool = True) -> SequenceOutput:
    """Run ``model`` (with gradient) over left-padded prompt ⊕ rationale, as the encoder lays it out.

    Keeps the logits of the rationale positions only (none with ``logprobs=False``: then ``logp``
    and ``mask`` are empty); with ``spec``, also pools the chosen layer over the same segments
    the encoder pools (``grace_rag.representation``).
    """
    inner = getattr(model, "module", model)  # a DistributedDataParallel wrapper hides the model
    batch = SequenceBatch.build(prompts, rationales, pad_id, next(inner.parameters()).device)
    width = max(1, max(len(r) for r in rationales))
    keep = min(width + 1, batch.ids.shape[1]) if logprobs else 1
    out, hidden = forward_states(model, batch, spec.layer if spec is not None else None, logits_to_keep=keep)
    if not logprobs:
        empty = batch.ids.new_zeros((len(prompts), 0), dtype=torch.float32)
        pooled = pool(hidden.float(), batch.segments, spec.pooling) if spec is not None else None
        return SequenceOutput(logp=empty, mask=empty, pooled=pooled)
    logits = out.logits[:, :-1, :].float() / temperature  # (N, width, V)
    targets = batch.ids[:, -logits.shape[1]:]  # (N, width)
    logp = -F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                            reduction="none").view(targets.shape)  # (N, width)
    mask = rationale_mask([len(r) for r in rationales], logp.shape[1], logp.device)
    pooled = pool(hidden.float(), batch.segments, spec.pooling) if spec is not None else None  # (N, D)
    return SequenceOutput(logp=logp, mask=mask, pooled=pooled)
