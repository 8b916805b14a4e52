"""Forward passes with gradient: log-probs of rationale tokens and pooled states of P(x) ⊕ r.

One forward over prompt ⊕ rationale gives both what the policy loss needs (log π of each
rationale token) and what the contrastive loss needs (the masked mean of the chosen layer).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from grace_rag.pooling import pool, pooling_mask
from grace_rag.prompts import PromptIds
from grace_rag.representation import PoolSpec, capture_layer, left_pad, positions_from_mask


@dataclass
class SequenceOutput:
    """``logp`` (N, T) log-probs of the rationale tokens (right-aligned), ``mask`` (N, T) 0/1,
    ``pooled`` (N, D) un-normalised masked mean of the pooled layer (None if not asked)."""

    logp: Tensor
    mask: Tensor
    pooled: Tensor | None


def rationale_mask(lengths: Sequence[int], width: int, device: Any) -> Tensor:
    """(N, width) 1 on the last ``lengths[i]`` positions of each row (rationales end at the right edge)."""
    cols = torch.arange(width, device=device)  # (T,)
    starts = width - torch.tensor(list(lengths), device=device)  # (N,)
    return (cols[None, :] >= starts[:, None]).float()  # (N, T)


def forward_sequences(model: Any, prompts: Sequence[PromptIds], rationales: Sequence[Sequence[int]], pad_id: int,
                      temperature: float = 1.0, spec: PoolSpec | None = None) -> SequenceOutput:
    """Run ``model`` over left-padded prompt ⊕ rationale, keeping logits of the rationale positions only."""
    inner = getattr(model, "module", model)  # a DistributedDataParallel wrapper hides the model
    seqs = [list(p.input_ids) + list(r) for p, r in zip(prompts, rationales)]
    ids, attn = left_pad(seqs, pad_id, next(inner.parameters()).device)  # (N, L)
    width = max(1, max(len(r) for r in rationales))
    keep = min(width + 1, ids.shape[1])
    capture = capture_layer(inner, spec.layer) if spec is not None else nullcontext([])
    with capture as states:
        out = model(input_ids=ids, attention_mask=attn, position_ids=positions_from_mask(attn),
                    use_cache=False, logits_to_keep=keep)
    logits = out.logits[:, :-1, :].float() / temperature  # (N, width, V)
    targets = ids[:, -logits.shape[1]:]  # (N, width)
    logp = -F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                            reduction="none").view(targets.shape)  # (N, width)
    mask = rationale_mask([len(r) for r in rationales], logp.shape[1], logp.device)
    pooled = None
    if spec is not None:
        starts = torch.tensor([ids.shape[1] - len(s) + p.pool_start for s, p in zip(seqs, prompts)],
                              device=ids.device)  # (N,)
        pooled = pool(states[0].float(), pooling_mask(attn, starts), spec.pooling)  # (N, D)
    return SequenceOutput(logp=logp, mask=mask, pooled=pooled)


class ReferencePolicy:
    """The initial policy, for the KL metric/penalty: the base model with the LoRA adapter
    switched off, or a frozen copy of the initial weights for full fine-tuning."""

    def __init__(self, model: Any, lora: bool) -> None:
        self.lora = lora
        self.model = model if lora else copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def logprobs(self, prompts: Sequence[PromptIds], rationales: Sequence[Sequence[int]], pad_id: int,
                 temperature: float) -> Tensor:
        """(N, T) log-probs of the rationale tokens under the initial policy."""
        ctx = self.model.disable_adapter() if self.lora else nullcontext()
        with ctx:
            return forward_sequences(self.model, prompts, rationales, pad_id, temperature).logp
