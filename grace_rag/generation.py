"""Rationale generation: prompts -> rationales (text, token ids, log-probs, finished flag).

The interface has one obligatory method, ``generate``. The Hugging Face backend decodes with
its own KV-cached loop so that it can also pool the hidden states it computes anyway: the
states of P(x) ⊕ r come out of the generation pass and no second forward pass is needed.
"""

from __future__ import annotations

import abc
from contextlib import nullcontext
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from grace_rag.pooling import normalize, pool, pooling_mask
from grace_rag.prompts import PromptIds
from grace_rag.representation import PoolSpec, capture_layer, left_pad, positions_from_mask


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
    ``embedding`` is the pooled, L2-normalised vector of P(x) ⊕ r when the backend pooled
    during generation (HF with a PoolSpec), else None.
    """

    text: str
    token_ids: list[int]
    finished: bool
    logprobs: list[float] | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)


class RationaleGenerator(abc.ABC):
    """Anything that writes rationales for prompts given as token ids."""

    @abc.abstractmethod
    def generate(
        self, prompts: Sequence[PromptIds], settings: GenerationSettings, pool_spec: PoolSpec | None = None
    ) -> list[Rationale]:
        """One rationale per prompt, in input order. Backends that cannot pool ignore ``pool_spec``."""


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """EOS ids from the generation config and the tokenizer (deduplicated)."""
    ids: list[int] = []
    for source in (getattr(model, "generation_config", None), tokenizer):
        value = getattr(source, "eos_token_id", None)
        ids.extend(value if isinstance(value, list) else [value] if value is not None else [])
    return sorted(set(ids))


def pick_tokens(logits: torch.Tensor, settings: GenerationSettings, rng: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
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


class HFGenerator(RationaleGenerator):
    """Batched, left-padded, length-sorted decoding with a Hugging Face causal LM."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.stop_ids = stop_token_ids(model, tokenizer)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (self.stop_ids or [0])[0]
        self.pad_id = int(pad)
        self.progress: Any = None  # an object with .update(n), set by the caller for progress bars

    def generate(
        self, prompts: Sequence[PromptIds], settings: GenerationSettings, pool_spec: PoolSpec | None = None
    ) -> list[Rationale]:
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i].input_ids))
        rng = None
        if settings.temperature > 0 and settings.seed is not None:
            rng = torch.Generator(device=self.model.device).manual_seed(settings.seed)
        out: list[Rationale | None] = [None] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for i, rationale in zip(chunk, self._run_batch([prompts[i] for i in chunk], settings, pool_spec, rng)):
                out[i] = rationale
            if self.progress is not None:
                self.progress.update(len(chunk))
        return [r for r in out if r is not None]

    @torch.inference_mode()
    def _run_batch(
        self, prompts: list[PromptIds], settings: GenerationSettings, spec: PoolSpec | None, rng: torch.Generator | None
    ) -> list[Rationale]:
        device = self.model.device
        ids, attn = left_pad([p.input_ids for p in prompts], self.pad_id, device)  # (B, T0)
        starts = torch.tensor([ids.shape[1] - len(p.input_ids) + p.pool_start for p in prompts], device=device)
        masks = [pooling_mask(attn, starts)]  # pooled positions, one (B, t) block per forward call
        capture = capture_layer(self.model, spec.layer) if spec is not None else nullcontext([])
        with capture as states:
            tokens, logprobs = self._decode(ids, attn, settings, rng, masks, pool_after_last=spec is not None)
        rows = self._rationales(tokens, logprobs, settings, batch=len(prompts))
        if spec is not None:
            hidden = torch.cat(states, dim=1).float()  # (B, T0 + steps, D)
            vectors = normalize(pool(hidden, torch.cat(masks, dim=1), spec.pooling)).cpu().numpy()  # (B, D)
            for row, vec in zip(rows, vectors):
                row.embedding = vec
        return rows

    def _decode(
        self,
        ids: torch.Tensor,
        attn: torch.Tensor,
        settings: GenerationSettings,
        rng: torch.Generator | None,
        masks: list[torch.Tensor],
        pool_after_last: bool,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """KV-cached decoding; every fed token's state is captured by the layer hook.

        After the last token is chosen it is fed once more (when pooling) so that its state
        exists too: P(x) ⊕ r is then fully covered by the states of the generation pass.
        """
        from transformers import StaticCache

        stop = torch.tensor(self.stop_ids, device=ids.device)
        positions = positions_from_mask(attn)  # (B, T0)
        width = ids.shape[1]
        # preallocated KV cache: no per-step concatenation of every layer's keys and values
        cache = StaticCache(config=self.model.config, max_cache_len=width + settings.max_new_tokens + 1)
        out = self.model(
            input_ids=ids, attention_mask=attn, position_ids=positions, past_key_values=cache,
            cache_position=torch.arange(width, device=ids.device), use_cache=True, logits_to_keep=1,
        )
        next_pos = positions[:, -1] + 1  # (B,)
        finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        tokens: list[torch.Tensor] = []
        logprobs: list[torch.Tensor] = []
        for step in range(settings.max_new_tokens):
            tok, logp = pick_tokens(out.logits[:, -1, :], settings, rng)
            alive = ~finished
            tok = torch.where(alive, tok, torch.full_like(tok, self.pad_id))
            tokens.append(tok)
            logprobs.append(logp)
            finished = finished | (alive & torch.isin(tok, stop))
            attn = torch.cat([attn, alive[:, None].long()], dim=1)  # (B, t+1)
            last = step == settings.max_new_tokens - 1 or bool(finished.all())
            if last and not pool_after_last:
                break
            out = self.model(
                input_ids=tok[:, None], attention_mask=attn, position_ids=next_pos[:, None], past_key_values=cache,
                cache_position=torch.tensor([width + step], device=ids.device), use_cache=True, logits_to_keep=1,
            )
            masks.append(alive[:, None])
            next_pos = next_pos + 1
            if last:
                break
        return tokens, logprobs

    def _rationales(
        self, tokens: list[torch.Tensor], logprobs: list[torch.Tensor], settings: GenerationSettings, batch: int
    ) -> list[Rationale]:
        if not tokens:  # max_new_tokens == 0: no rationale
            empty = [] if settings.return_logprobs else None
            return [Rationale(text="", token_ids=[], finished=True, logprobs=empty) for _ in range(batch)]
        tok = torch.stack(tokens, dim=1).cpu()  # (B, steps)
        logp = torch.stack(logprobs, dim=1).cpu()  # (B, steps)
        stop = set(self.stop_ids)
        rows = []
        for b in range(tok.shape[0]):
            ids: list[int] = []
            for t in tok[b].tolist():
                ids.append(t)
                if t in stop:
                    break
            finished = bool(ids) and ids[-1] in stop
            text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
            lps = logp[b, : len(ids)].tolist() if settings.return_logprobs else None
            rows.append(Rationale(text=text, token_ids=ids, finished=finished, logprobs=lps))
        return rows

