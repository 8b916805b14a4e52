"""Representation: prompt ⊕ rationale token ids -> states of one layer -> pooled unit vectors.

The one place that owns the pad id, where pooling starts, which layer is read, how it is
pooled and how vectors are normalised. Used three ways:

- ``Representer.represent(prompts, settings)``: texts' prompts -> (rationales, vectors), the one
  function the encoder and the trainer's rollouts share. A generator with the fused capability
  (:class:`~grace_rag.generation.FusedGenerator`) pools the states it computes while decoding;
  any other generator (vLLM, or a writer with other weights than the reader's) writes text and
  one forward pass here pools it.
- ``Representer.pool_sequences``: that forward pass (no gradient).
- ``forward_states``: the same batch layout with gradient (the trainer's InfoNCE and log-probs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from grace_rag.config import Layer, Pooling
from grace_rag.generation import FusedGenerator, GenerationSettings, Progress, Rationale, RationaleGenerator, stop_token_ids
from grace_rag.pooling import Segments, normalize, pool, segments
from grace_rag.prompts import PromptIds



@dataclass(frozen=True)
class PoolSpec:
    """Which layer is pooled, and how."""

    pooling: Pooling = Pooling.MEAN
    layer: Layer = Layer.LAST


def pad_token_id(model: Any, tokenizer: Any) -> int:
    """The pad id: the tokenizer's, else the first stop token, else 0 (padding is always masked)."""
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    stops = stop_token_ids(model, tokenizer)
    return int(stops[0]) if stops else 0


def layer_module(model: Any, layer: Layer) -> Any:
    """The module whose output is the wanted hidden state (final norm, or penultimate block)."""
    inner = getattr(model, "module", model)  # DistributedDataParallel hides the model
    decoder = inner.get_decoder() if hasattr(inner, "get_decoder") else inner.model
    return decoder.norm if layer is Layer.LAST else decoder.layers[-2]


def forward_with_layer(model: Any, layer: Layer | None, **inputs: Any) -> tuple[Any, Tensor | None]:
    """``model(**inputs)`` and the output of ``layer`` in that call ((B, T, D), None when ``layer`` is None).

    Reads one layer through a forward hook that lives for this call only: ``output_hidden_states``
    would keep every layer (30x the memory for long prompts).
    """
    if layer is None:
        return model(**inputs), None
    seen: list[Tensor] = []
    handle = layer_module(model, layer).register_forward_hook(
        lambda _m, _i, out: seen.append(out[0] if isinstance(out, tuple) else out))
    try:
        out = model(**inputs)
    finally:
        handle.remove()
    return out, seen[-1]


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[Tensor, Tensor]:
    """(input_ids, attention_mask), both (B, T), padded on the left."""
    width = max(1, max(len(s) for s in sequences))
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq):] = torch.tensor(list(seq), dtype=torch.long)
            mask[row, width - len(seq):] = 1
    return ids.to(device), mask.to(device)


def token_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices of ``lengths`` in batches, longest first: at most ``batch_size`` per batch and, with
    ``max_tokens``, at most ``max_tokens`` padded tokens (longest length x count; a longer one goes alone)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        current = batches[-1] if batches else None
        if current and len(current) < batch_size and (
                max_tokens is None or (len(current) + 1) * lengths[current[0]] <= max_tokens):
            current.append(i)
        else:
            batches.append([i])
    return batches


def positions_from_mask(attention_mask: Tensor) -> Tensor:
    """Position ids that ignore left padding: 0 at each row's first real token. (B, T)"""
    return (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)


@dataclass
class SequenceBatch:
    """Whole sequences P(x) ⊕ r, left-padded: ids, mask, positions (B, T) and the pooled segments."""

    ids: Tensor
    attention_mask: Tensor
    positions: Tensor
    segments: Segments

    @classmethod
    def build(cls, prompts: Sequence[PromptIds], rationales: Sequence[Sequence[int]], pad_id: int,
              device: Any) -> SequenceBatch:
        seqs = [list(p.input_ids) + list(r) for p, r in zip(prompts, rationales)]
        ids, attn = left_pad(seqs, pad_id, device)  # (B, T)
        width = ids.shape[1]
        pool_start = torch.tensor([width - len(s) + p.pool_start for s, p in zip(seqs, prompts)], device=ids.device)
        rationale_start = torch.tensor([width - len(r) for r in rationales], device=ids.device)  # (B,)
        return cls(ids, attn, positions_from_mask(attn), segments(attn, pool_start, rationale_start))


def forward_states(model: Any, batch: SequenceBatch, layer: Layer | None, logits_to_keep: int = 1) -> tuple[Any, Tensor | None]:
    """One forward pass over a SequenceBatch (with gradient if enabled): (model output, layer states)."""
    return forward_with_layer(model, layer, input_ids=batch.ids, attention_mask=batch.attention_mask,
                              position_ids=batch.positions, use_cache=False, logits_to_keep=logits_to_keep)


class Representer:
    """Prompts -> rationales -> pooled, L2-normalised vectors, for one model, layer and pooling."""

    def __init__(self, model: Any, tokenizer: Any, spec: PoolSpec, generator: RationaleGenerator | None = None,
                 batch_size: int = 16, max_batch_tokens: int | None = None) -> None:
        self.model, self.tokenizer, self.spec = model, tokenizer, spec
        self.generator = generator
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.pad_id = pad_token_id(model, tokenizer)

    def pool(self, hidden: Tensor, seg: Segments) -> Tensor:
        """States (B, T, D) -> normalised vectors (B, D), as every path pools."""
        return normalize(pool(hidden.float(), seg, self.spec.pooling))

    def represent(self, prompts: Sequence[PromptIds], settings: GenerationSettings,
                  progress: Progress | None = None,
                  writer_prompts: Sequence[PromptIds] | None = None) -> tuple[list[Rationale], Tensor]:
        """A rationale per prompt and the unit vector of P(x) ⊕ r (n, D), in input order.

        ``writer_prompts`` (one per prompt, e.g. the same texts cut shorter): what the generator writes
        from; the vectors still pool ``prompts`` ⊕ r, in a forward pass of their own."""
        if self.generator is None:
            raise RuntimeError("this Representer has no generator; pass one to write rationales")
        if writer_prompts is not None and len(writer_prompts) != len(prompts):
            raise ValueError(f"{len(writer_prompts)} writer prompts for {len(prompts)} prompts")
        fused = isinstance(self.generator, FusedGenerator) and getattr(self.generator, "model", None) is self.model
        if fused and writer_prompts is None:
            return self.generator.generate_and_pool(prompts, settings, self, progress)
        if settings.max_new_tokens == 0:  # nothing to write: no pass of the writer (another model) at all
            vectors = self.pool_sequences(prompts, [[] for _ in prompts])
            if progress is not None:
                progress(len(prompts))
            return [Rationale(text="", token_ids=[], finished=True) for _ in prompts], vectors
        rationales = self.generator.generate(writer_prompts if writer_prompts is not None else prompts, settings,
                                             progress)
        return rationales, self.pool_sequences(prompts, [r.token_ids for r in rationales])

    @torch.inference_mode()
    def pool_sequences(self, prompts: Sequence[PromptIds], rationales: Sequence[Sequence[int]]) -> Tensor:
        """One forward pass over whole sequences P(x) ⊕ r, in token batches: normalised vectors (n, D) on the
        CPU, in input order."""
        device = next(self.model.parameters()).device
        out = torch.zeros(len(prompts), int(self.model.config.hidden_size))
        lengths = [len(p.input_ids) + len(r) for p, r in zip(prompts, rationales)]
        for rows in token_batches(lengths, self.batch_size, self.max_batch_tokens):
            batch = SequenceBatch.build([prompts[i] for i in rows], [rationales[i] for i in rows], self.pad_id, device)
            _, hidden = forward_states(self.model, batch, self.spec.layer)
            out[rows] = self.pool(hidden, batch.segments).cpu()
        return out
