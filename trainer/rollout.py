"""Rollouts: sampled rationales for a batch, with their pooled embeddings (no gradient).

Supervised: the query and each negative get one rationale (single temperature), each
positive K (rollout temperature). Unsupervised: each text gets an anchor and K rollouts.
ReMax also decodes one greedy rationale per positive (its reward is the baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from grace_rag.generation import GenerationSettings, Rationale
from grace_rag.prompts import PromptIds
from grace_rag.representation import Representer

from .data import Triplet

# distinct seed streams per kind of rollout within one step
_STREAMS = {"query": 1, "negative": 2, "positive": 3, "greedy": 4, "anchor": 5}


@dataclass
class Sampled:
    """Prompts, their rationales and the unit embeddings of prompt ⊕ rationale (n, D)."""

    prompts: list[PromptIds]
    rationales: list[Rationale]
    embeddings: Tensor

    @property
    def finished(self) -> Tensor:
        return torch.tensor([r.finished for r in self.rationales])

    @property
    def token_ids(self) -> list[list[int]]:
        return [r.token_ids for r in self.rationales]


@dataclass
class Rollout:
    """Everything one step's rewards and losses need. ``context`` is (B, D) query or anchor
    embeddings; ``negatives`` (B, M, D) or None; ``group`` holds B*K positive rollouts, group-major."""

    context: Sampled
    group: Sampled
    negatives: Sampled | None
    greedy: Sampled | None
    k: int

    def group_embeddings(self) -> Tensor:
        return self.group.embeddings.view(-1, self.k, self.group.embeddings.shape[-1])  # (B, K, D)

    def negative_embeddings(self) -> Tensor | None:
        if self.negatives is None:
            return None
        b = self.context.embeddings.shape[0]
        return self.negatives.embeddings.view(b, -1, self.negatives.embeddings.shape[-1])  # (B, M, D)


def step_seed(seed: int, step: int, stream: str) -> int:
    """A deterministic sampling seed per (run seed, step, kind): resumed runs sample the same."""
    return (seed * 1_000_003 + step * 101 + _STREAMS[stream]) % (2**63)


class Sampler:
    """Decodes rationales with the policy and pools them, through the encoder's own ``represent``."""

    def __init__(self, representer: Representer, max_new_tokens: int) -> None:
        self.representer = representer
        self.max_new_tokens = max_new_tokens

    def sample(self, prompts: Sequence[PromptIds], temperature: float, seed: int,
               max_new_tokens: int | None = None) -> Sampled:
        tokens = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        settings = GenerationSettings(max_new_tokens=tokens, temperature=temperature, seed=seed)
        rationales, vectors = self.representer.represent(list(prompts), settings)
        return Sampled(list(prompts), rationales, vectors.float())


def negatives_per_row(batch: Sequence[Triplet], limit: int) -> int:
    """M: the number of negatives every triplet of the batch can supply (at most ``limit``)."""
    return min(limit, min(len(t.negatives) for t in batch))


def supervised_rollout(sampler: Sampler, query_prompt, doc_prompt, batch: Sequence[Triplet], *, k: int,
                       negatives: int, rollout_temperature: float, single_temperature: float,
                       seed: int, step: int, greedy: bool, group: bool = True) -> Rollout:
    """Query and negatives once each, positives K times (``group`` False: once, single temperature)."""
    m = negatives_per_row(batch, negatives)
    q = sampler.sample([query_prompt(t.query) for t in batch], single_temperature, step_seed(seed, step, "query"))
    neg = sampler.sample([doc_prompt(n) for t in batch for n in t.negatives[:m]], single_temperature,
                         step_seed(seed, step, "negative"))
    reps, temp = (k, rollout_temperature) if group else (1, single_temperature)
    pos = sampler.sample([doc_prompt(t.positive) for t in batch for _ in range(reps)], temp,
                         step_seed(seed, step, "positive"))
    base = sampler.sample([doc_prompt(t.positive) for t in batch], 0.0, 0) if greedy else None
    return Rollout(context=q, group=pos, negatives=neg, greedy=base, k=reps)


def unsupervised_rollout(sampler: Sampler, doc_prompt, batch: Sequence[str], *, k: int,
                         rollout_temperature: float, single_temperature: float, seed: int, step: int,
                         greedy: bool) -> Rollout:
    """An anchor rationale per text (single temperature) and K rollouts (rollout temperature)."""
    anchor = sampler.sample([doc_prompt(x) for x in batch], single_temperature, step_seed(seed, step, "anchor"))
    xs = sampler.sample([doc_prompt(x) for x in batch for _ in range(k)], rollout_temperature,
                        step_seed(seed, step, "positive"))
    base = sampler.sample([doc_prompt(x) for x in batch], 0.0, 0) if greedy else None
    return Rollout(context=anchor, group=xs, negatives=None, greedy=base, k=k)
