"""The reference policy (the initial weights) for the KL metric and penalty.

The forward pass with gradient over prompt ⊕ rationale lives in :mod:`grace_rag.likelihood`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor

from grace_rag.likelihood import SequenceOutput, forward_sequences, rationale_mask
from grace_rag.prompts import PromptIds

__all__ = ["ReferencePolicy", "SequenceOutput", "forward_sequences", "rationale_mask"]


class ReferencePolicy:
    """The initial policy, for the KL metric/penalty: the base model with the LoRA adapter
    switched off, or a frozen copy of the initial weights for full fine-tuning."""

    def __init__(self, model: Any, lora: bool) -> None:
        self.lora = lora
        self.model = model if lora else copy.deepcopy(model).eval().requires_grad_(False)

    def context(self) -> Any:
        """A context in which ``self.model`` computes the initial policy (the adapter switched off)."""
        return self.model.disable_adapter() if self.lora else nullcontext()

    @torch.no_grad()
    def logprobs(self, prompts: Sequence[PromptIds], rationales: Sequence[Sequence[int]], pad_id: int,
                 temperature: float) -> Tensor:
        """(N, T) log-probs of the rationale tokens under the initial policy."""
        with self.context():
            return forward_sequences(self.model, prompts, rationales, pad_id, temperature).logp
