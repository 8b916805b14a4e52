"""Rollouts: sampled rationales for a batch, with their pooled embeddings (no gradient).

Supervised: the query and each negative get one rationale (single temperature), each
positive K (rollout temperature). Unsupervised: each text gets an anchor and K rollouts.
ReMax also decodes one greedy rationale per positive (its reward is the baseline).
"""

from __future__ import annotations

import hashlib
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
    #: for flat negatives (the contrastive objective): the row each negative belongs to; None: (B, M) layout
    negative_owner: list[int] | None = None

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
               max_new_tokens: int | None = None, logprobs: bool = False) -> Sampled:
        """Rationales (with their token log-probs when ``logprobs``) and unit vectors of ``prompts``."""
        tokens = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        settings = GenerationSettings(max_new_tokens=tokens, temperature=temperature, seed=seed,
                                      return_logprobs=logprobs)
        rationales, vectors = self.representer.represent(list(prompts), settings)
        return Sampled(list(prompts), rationales, vectors.float())


def negatives_per_row(batch: Sequence[Triplet], limit: int) -> int:
    """M: the number of negatives every triplet of the batch can supply (at most ``limit``)."""
    return min(limit, min(len(t.negatives) for t in batch))


def supervised_rollout(sampler: Sampler, query_prompt, doc_prompt, batch: Sequence[Triplet], *, k: int,
                       negatives: int, rollout_temperature: float, single_temperature: float,
                       seed: int, step: int, greedy: bool, group: bool = True,
                       query_tokens: int | None = None) -> Rollout:
    """Query and negatives once each, positives K times (``group`` False: once, single temperature).

    Queries get ``query_tokens`` rationale tokens (None: the sampler's length), as the encoder does.
    The K positive rollouts keep their token log-probs: the PPO ratio's denominator.
    """
    m = negatives_per_row(batch, negatives)
    q = sampler.sample([query_prompt(t.query) for t in batch], single_temperature, step_seed(seed, step, "query"),
                       max_new_tokens=query_tokens)
    neg = sampler.sample([doc_prompt(n) for t in batch for n in t.negatives[:m]], single_temperature,
                         step_seed(seed, step, "negative"))
    reps, temp = (k, rollout_temperature) if group else (1, single_temperature)
    pos = sampler.sample([doc_prompt(t.positive) for t in batch for _ in range(reps)], temp,
                         step_seed(seed, step, "positive"), logprobs=group)
    base = sampler.sample([doc_prompt(t.positive) for t in batch], 0.0, 0) if greedy else None
    return Rollout(context=q, group=pos, negatives=neg, greedy=base, k=reps)


def unsupervised_rollout(sampler: Sampler, doc_prompt, batch: Sequence[str], *, k: int,
                         rollout_temperature: float, single_temperature: float, seed: int, step: int,
                         greedy: bool) -> Rollout:
    """An anchor rationale per text (single temperature) and K rollouts (rollout temperature)."""
    anchor = sampler.sample([doc_prompt(x) for x in batch], single_temperature, step_seed(seed, step, "anchor"))
    xs = sampler.sample([doc_prompt(x) for x in batch for _ in range(k)], rollout_temperature,
                        step_seed(seed, step, "positive"), logprobs=True)
    base = sampler.sample([doc_prompt(x) for x in batch], 0.0, 0) if greedy else None
    return Rollout(context=anchor, group=xs, negatives=None, greedy=base, k=k)


class RationaleMemo:
    """Greedy rationales of training texts, written once per (text, length) by a fixed writer and reused.

    The contrastive objective trains the representation of rationales, not the rationales
    themselves, so they are decoded once. The writer is the *base* model (a frozen copy of the
    initial weights): the rationales a text gets do not depend on when it is first drawn, they are what the language-model term keeps the model
    writing, and they are what a frozen writer writes at inference. Each rationale keeps the
    writer's token log-probs (the language-model term is measured against them). The memo is saved
    with each checkpoint (``state()``/``load()``), so a resumed run reuses exactly the same rationales.
    """

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self._store: dict[str, Rationale] = {}

    @staticmethod
    def key(text: str, tokens: int) -> str:
        return f"{tokens}:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"

    def get(self, texts: Sequence[str], prompts: Sequence[PromptIds], tokens: int) -> list[Rationale]:
        """The greedy rationale of each text (``tokens`` long at most), decoding the ones not seen yet."""
        keys = [self.key(t, tokens) for t in texts]
        missing = {k: p for k, p in zip(keys, prompts) if k not in self._store}
        if missing and tokens > 0:
            fresh = self.sampler.sample(list(missing.values()), 0.0, 0, max_new_tokens=tokens,
                                        logprobs=True).rationales
            self._store.update(zip(missing, fresh))
        elif missing:
            self._store.update({k: Rationale(text="", token_ids=[], finished=True, logprobs=[]) for k in missing})
        return [self._store[k] for k in keys]

    def __len__(self) -> int:
        return len(self._store)

    def state(self) -> dict[str, list]:
        """JSON-able contents (for checkpoints)."""
        return {k: [r.text, r.token_ids, r.finished, r.logprobs] for k, r in self._store.items()}

    def load(self, state: dict[str, list]) -> None:
        """Restore ``state()``; entries saved without log-probs (older checkpoints) are decoded again when used."""
        self._store = {k: Rationale(text=v[0], token_ids=list(v[1]), finished=bool(v[2]), logprobs=list(v[3]))
                       for k, v in state.items() if len(v) > 3 and v[3] is not None}


def _memo_sampled(memo: RationaleMemo, build, texts: Sequence[str], tokens: int) -> Sampled:
    prompts = [build(t) for t in texts]
    return Sampled(prompts, memo.get(texts, prompts, tokens), torch.zeros(len(texts), 0))


def memo_rollout(memo: RationaleMemo, query_prompt, doc_prompt, batch: Sequence[Triplet], query_tokens: int,
                 doc_tokens: int, negatives: int) -> Rollout:
    """Queries, positives (one each) and negatives with their memoised greedy rationales (no embeddings).

    InfoNCE pools every negative of the batch as a candidate for every query, so rows need not
    have the same number: each contributes up to ``negatives`` (a pair contributes none), and
    ``negatives`` holds them flat (``Rollout.negative_owner`` says whose each one is).
    """
    q = _memo_sampled(memo, query_prompt, [t.query for t in batch], query_tokens)
    pos = _memo_sampled(memo, doc_prompt, [t.positive for t in batch], doc_tokens)
    flat = [(i, n) for i, t in enumerate(batch) for n in t.negatives[:negatives]]
    neg = _memo_sampled(memo, doc_prompt, [n for _, n in flat], doc_tokens) if flat else None
    return Rollout(context=q, group=pos, negatives=neg, greedy=None, k=1, negative_owner=[i for i, _ in flat])
