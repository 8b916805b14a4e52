"""Rationale generation: the interface every backend implements, and its pure helpers.

A generator turns prompts (token ids) into rationales (text, token ids, log-probs, finished
flag): one obligatory method, ``generate``. A backend that can also pool the states it computes
while decoding declares the :class:`FusedGenerator` capability; the representation layer
(:class:`~grace_rag.representation.Representer`) chooses between the two in one place.
Backends: :mod:`grace_rag.hf_generation` (Hugging Face, fused), :mod:`grace_rag.vllm_backend`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from grace_rag.prompts import PromptIds

if TYPE_CHECKING:
    from grace_rag.representation import Representer

#: called with the number of prompts just completed (e.g. a progress bar's ``update``)
Progress = Callable[[int], Any]


@dataclass(frozen=True)
class GenerationSettings:
    """How rationales are decoded."""

    max_new_tokens: int = 32
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None
    return_logprobs: bool = False


@dataclass
class Rationale:
    """One generated rationale.

    ``logprobs[i]`` is log π(token_ids[i]) under the (temperature-scaled) sampling
    distribution. ``finished`` is False when the length limit cut it before EOS.
    """

    text: str
    token_ids: list[int]
    finished: bool
    logprobs: list[float] | None = None


class RationaleGenerator(abc.ABC):
    """Anything that writes rationales for prompts given as token ids."""

    @abc.abstractmethod
    def generate(self, prompts: Sequence[PromptIds], settings: GenerationSettings,
                 progress: Progress | None = None) -> list[Rationale]:
        """One rationale per prompt, in input order."""


class FusedGenerator(RationaleGenerator):
    """A generator that can pool P(x) ⊕ r from the states its decoding pass computes anyway."""

    @abc.abstractmethod
    def generate_and_pool(self, prompts: Sequence[PromptIds], settings: GenerationSettings,
                          representer: Representer, progress: Progress | None = None
                          ) -> tuple[list[Rationale], torch.Tensor]:
        """Rationales and their normalised vectors (n, D) on the CPU, pooled by ``representer``."""


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """EOS ids from the generation config and the tokenizer (deduplicated)."""
    ids: list[int] = []
    for source in (getattr(model, "generation_config", None), tokenizer):
        value = getattr(source, "eos_token_id", None)
        ids.extend(value if isinstance(value, list) else [value] if value is not None else [])
    return sorted(set(ids))


def pick_tokens(logits: torch.Tensor, settings: GenerationSettings,
                rng: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Next tokens (B,) and their log-probs (B,) from last-position logits (B, V)."""
    logits = logits.float()
    if settings.temperature == 0:
        tokens = logits.argmax(dim=-1)  # (B,)
        logp = torch.log_softmax(logits, dim=-1)  # (B, V)
        return tokens, logp.gather(1, tokens[:, None]).squeeze(1)
    logp = torch.log_softmax(logits / settings.temperature, dim=-1)  # (B, V)
    probs = logp.exp()
    if settings.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(dim=-1) - sorted_p > settings.top_p  # keeps at least the top token
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(1, order, sorted_p)
    tokens = torch.multinomial(probs, 1, generator=rng).squeeze(1)  # (B,)
    return tokens, logp.gather(1, tokens[:, None]).squeeze(1)


def decode_rationale(tokenizer: Any, token_ids: list[int], stop_ids: set[int], logprobs: list[float] | None
                     ) -> Rationale:
    """A Rationale from generated ids (cut after the first stop token)."""
    ids: list[int] = []
    for t in token_ids:
        ids.append(t)
        if t in stop_ids:
            break
    finished = bool(ids) and ids[-1] in stop_ids
    text = tokenizer.decode(ids, skip_special_tokens=True).strip()
    return Rationale(text=text, token_ids=ids, finished=finished,
                     logprobs=logprobs[:len(ids)] if logprobs is not None else None)
