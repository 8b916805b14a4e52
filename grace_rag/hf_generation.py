"""Hugging Face backend: batched, left-padded, length-sorted KV-cached decoding, fused with pooling.

The decode loop reads top to bottom: prefill the prompts, then one step per new token that
returns what it produced (token, log-prob, whether the row was still alive, the layer's state).
When pooling, the last chosen token is fed once more so its state exists too: P(x) ⊕ r is then
fully covered by the states of the generation pass and no second forward pass is needed. The
pooled segments are built once from the prompt mask and the per-step "still alive" record.

Shared prefix: every prompt of a role starts with the same system prefix (the tokens before
the pooled region). Its keys and values are computed once (batch 1), kept, and copied into each
batch's KV cache, so prefill runs over the texts only; layout ``[prefix | left padding | text]``
with explicit positions. Those positions are never pooled, so vectors do not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from grace_rag.config import Layer
from grace_rag.generation import (
    FusedGenerator, GenerationSettings, Progress, Rationale, decode_rationale, pick_tokens, stop_token_ids,
)
from grace_rag.pooling import Segments, pooling_mask
from grace_rag.prompts import PromptIds
from grace_rag.representation import (
    Representer, forward_with_layer, left_pad, pad_token_id, positions_from_mask, token_batches,
)


@dataclass
class Prefix:
    """Shared leading prompt tokens and their keys/values per layer, each (1, heads, P, head_dim)."""

    length: int
    keys: list[Tensor]
    values: list[Tensor]


@dataclass
class Decoded:
    """What one batch's decoding produced: per step (B,) tokens, log-probs and alive flags, and
    the layer states of every fed token (prefill (B, T0, D), then (B, 1, D) per fed token)."""

    tokens: list[Tensor] = field(default_factory=list)
    logprobs: list[Tensor] = field(default_factory=list)
    alive: list[Tensor] = field(default_factory=list)
    states: list[Tensor] = field(default_factory=list)


class HFGenerator(FusedGenerator):
    """Decoding with a Hugging Face causal LM; ``generate_and_pool`` reuses its states for the vector."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16, max_batch_tokens: int | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.stop_ids = stop_token_ids(model, tokenizer)
        self.pad_id = pad_token_id(model, tokenizer)
        self._prefixes: dict[tuple[int, ...], Prefix] = {}

    def forget_prefixes(self) -> None:
        """Drop the kept prefix keys/values: call it whenever the model's weights change (training)."""
        self._prefixes.clear()

    def generate(self, prompts: Sequence[PromptIds], settings: GenerationSettings,
                 progress: Progress | None = None) -> list[Rationale]:
        rationales, _ = self._run(prompts, settings, None, progress)
        return rationales

    def generate_and_pool(self, prompts: Sequence[PromptIds], settings: GenerationSettings,
                          representer: Representer, progress: Progress | None = None
                          ) -> tuple[list[Rationale], Tensor]:
        rationales, vectors = self._run(prompts, settings, representer, progress)
        if vectors is None:
            vectors = torch.zeros(0, int(self.model.config.hidden_size))
        return rationales, vectors

    def _run(self, prompts: Sequence[PromptIds], settings: GenerationSettings, representer: Representer | None,
             progress: Progress | None) -> tuple[list[Rationale], Tensor | None]:
        """Token batches of prompts sorted by length (less padding); results back in input order."""
        rng = None
        if settings.temperature > 0 and settings.seed is not None:
            rng = torch.Generator(device=self.model.device).manual_seed(settings.seed)
        rationales: list[Rationale | None] = [None] * len(prompts)
        vectors: list[Tensor | None] = [None] * len(prompts)
        for chunk in token_batches([len(p.input_ids) for p in prompts], self.batch_size, self.max_batch_tokens):
            rows, pooled = self._run_batch([prompts[i] for i in chunk], settings, representer, rng)
            for j, i in enumerate(chunk):
                rationales[i] = rows[j]
                vectors[i] = pooled[j] if pooled is not None else None
            if progress is not None:
                progress(len(chunk))
        stacked = torch.stack(vectors) if representer is not None and vectors else None  # type: ignore[arg-type]
        return rationales, stacked  # type: ignore[return-value]

    @torch.inference_mode()
    def _run_batch(self, prompts: list[PromptIds], settings: GenerationSettings, representer: Representer | None,
                   rng: torch.Generator | None) -> tuple[list[Rationale], Tensor | None]:
        # in the model's own number format: under an autocast (a trainer's mixed precision) the rotary keys
        # come out float32 and the values bfloat16, which one preallocated KV cache cannot hold
        with torch.autocast(self.model.device.type, enabled=False):
            return self._run_batch_as_is(prompts, settings, representer, rng)

    def _run_batch_as_is(self, prompts: list[PromptIds], settings: GenerationSettings,
                         representer: Representer | None, rng: torch.Generator | None
                         ) -> tuple[list[Rationale], Tensor | None]:
        device = self.model.device
        prefix = self._prefix(prompts)
        shared = prefix.length if prefix is not None else 0
        suffixes = [p.input_ids[shared:] for p in prompts]
        ids, text_mask = left_pad(suffixes, self.pad_id, device)  # (B, T): the prompts after the shared prefix
        attn = torch.cat([text_mask.new_ones(len(prompts), shared), text_mask], dim=1)  # (B, P + T)
        positions = shared + positions_from_mask(text_mask)  # (B, T)
        layer = representer.spec.layer if representer is not None else None
        decoded = self._decode(ids, attn, positions, prefix, settings, rng, layer)
        rows = self._rationales(decoded, settings, batch=len(prompts))
        if representer is None:
            return rows, None
        starts = torch.tensor([ids.shape[1] - len(s) + p.pool_start - shared for s, p in zip(suffixes, prompts)],
                              device=device)  # (B,) columns of the first pooled token
        seg = _segments(text_mask, starts, decoded.alive)
        hidden = torch.cat(decoded.states, dim=1)  # (B, T + steps, D)
        return rows, representer.pool(hidden, seg).cpu()

    def _prefix(self, prompts: list[PromptIds]) -> Prefix | None:
        """The batch's shared prefix (computed once and kept), or None when the prompts share none."""
        length = min(p.pool_start for p in prompts)
        first = tuple(prompts[0].input_ids[:length])
        if length < 1 or any(tuple(p.input_ids[:length]) != first for p in prompts) \
                or any(len(p.input_ids) <= length for p in prompts):
            return None
        if first not in self._prefixes:
            from transformers import DynamicCache

            cache = DynamicCache(config=self.model.config)
            ids = torch.tensor([first], device=self.model.device)
            self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            if len(self._prefixes) >= 8:  # one per instruction in practice; never grow without bound
                self._prefixes.pop(next(iter(self._prefixes)))
            self._prefixes[first] = Prefix(length, [layer.keys for layer in cache.layers],
                                           [layer.values for layer in cache.layers])
        return self._prefixes[first]

    def _decode(self, ids: Tensor, attn: Tensor, positions: Tensor, prefix: Prefix | None,
                settings: GenerationSettings, rng: torch.Generator | None, layer: Layer | None) -> Decoded:
        """Prefill, then one KV-cached step per new token; with ``layer``, every fed token's state is kept.

        ``ids`` (B, T) are the prompts after the shared prefix, ``attn`` (B, P + T) covers both,
        ``positions`` (B, T) are the texts' position ids.
        """
        from transformers import StaticCache

        stop = torch.tensor(self.stop_ids, device=ids.device)
        shared = prefix.length if prefix is not None else 0
        width = shared + ids.shape[1]
        # preallocated KV cache: no per-step concatenation of every layer's keys and values
        cache = StaticCache(config=self.model.config, max_cache_len=width + settings.max_new_tokens + 1)
        if prefix is not None:
            for i, (k, v) in enumerate(zip(prefix.keys, prefix.values)):
                cache.update(k.expand(ids.shape[0], -1, -1, -1), v.expand(ids.shape[0], -1, -1, -1), i)
        out, hidden = self._forward(ids, attn, positions, cache, torch.arange(shared, width, device=ids.device),
                                    layer)
        result = Decoded(states=[hidden] if hidden is not None else [])
        next_pos = positions[:, -1:] + 1  # (B, 1)
        finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for step in range(settings.max_new_tokens):
            tok, logp = pick_tokens(out.logits[:, -1, :], settings, rng)
            alive = ~finished
            tok = torch.where(alive, tok, torch.full_like(tok, self.pad_id))
            result.tokens.append(tok)
            result.logprobs.append(logp)
            result.alive.append(alive)
            finished = finished | (alive & torch.isin(tok, stop))
            last = step == settings.max_new_tokens - 1 or bool(finished.all())
            if last and layer is None:
                break
            attn = torch.cat([attn, alive[:, None].long()], dim=1)  # (B, t+1)
            out, hidden = self._forward(tok[:, None], attn, next_pos, cache,
                                        torch.tensor([width + step], device=ids.device), layer)
            if hidden is not None:
                result.states.append(hidden)
            next_pos = next_pos + 1
            if last:
                break
        return result

    def _forward(self, ids: Tensor, attn: Tensor, positions: Tensor, cache: Any, cache_position: Tensor,
                 layer: Layer | None) -> tuple[Any, Tensor | None]:
        return forward_with_layer(self.model, layer, input_ids=ids, attention_mask=attn, position_ids=positions,
                                  past_key_values=cache, cache_position=cache_position, use_cache=True,
                                  logits_to_keep=1)

    def _rationales(self, decoded: Decoded, settings: GenerationSettings, batch: int) -> list[Rationale]:
        if not decoded.tokens:  # max_new_tokens == 0: no rationale
            empty = [] if settings.return_logprobs else None
            return [Rationale(text="", token_ids=[], finished=True, logprobs=empty) for _ in range(batch)]
        tok = torch.stack(decoded.tokens, dim=1).cpu()  # (B, steps)
        logp = torch.stack(decoded.logprobs, dim=1).cpu()  # (B, steps)
        stop = set(self.stop_ids)
        return [decode_rationale(self.tokenizer, tok[b].tolist(), stop,
                                 logp[b].tolist() if settings.return_logprobs else None) for b in range(batch)]


def _segments(prompt_mask: Tensor, pool_start: Tensor, alive: list[Tensor]) -> Segments:
    """Text = the prompt's pooled positions; rationale = every step a row was still alive. (B, T0 + steps)"""
    steps = torch.stack(alive, dim=1) if alive else prompt_mask.new_zeros(prompt_mask.shape[0], 0, dtype=torch.bool)
    text = pooling_mask(prompt_mask, pool_start)  # (B, T0)
    return Segments(text=torch.cat([text, torch.zeros_like(steps)], dim=1),
                    rationale=torch.cat([torch.zeros_like(text), steps], dim=1))
