"""Representation: token ids of P(x) ⊕ r -> hidden states of one layer -> pooled unit vectors.

Used on its own when a backend only generates text (vLLM) and as the reference the fused
HF path is tested against; the fused path reuses the generation pass's states instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from grace_rag.config import Layer, Pooling
from grace_rag.pooling import normalize, pool, pooling_mask


@dataclass(frozen=True)
class PoolSpec:
    """Which layer is pooled, and how."""

    pooling: Pooling = Pooling.MEAN
    layer: Layer = Layer.LAST


def _layer_module(model: Any, layer: Layer) -> Any:
    """The module whose output is the wanted hidden state (final norm, or penultimate block)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    return decoder.norm if layer is Layer.LAST else decoder.layers[-2]


@contextmanager
def capture_layer(model: Any, layer: Layer) -> Iterator[list[torch.Tensor]]:
    """Collect the chosen layer's output of every forward call made inside the block.

    A forward hook keeps only that one layer's states, instead of ``output_hidden_states``
    which holds every layer's (a 30x memory difference for long prompts).
    """
    captured: list[torch.Tensor] = []

    def hook(_module: Any, _inputs: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)

    handle = _layer_module(model, layer).register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (B, T), padded on the left."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq):] = torch.tensor(list(seq), dtype=torch.long)
            mask[row, width - len(seq):] = 1
    return ids.to(device), mask.to(device)


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that ignore left padding: 0 at each row's first real token. (B, T)"""
    return (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)


@torch.inference_mode()
def forward_pool(
    model: Any,
    sequences: Sequence[Sequence[int]],
    pool_starts: Sequence[int],
    spec: PoolSpec,
    pad_id: int,
) -> torch.Tensor:
    """One forward pass over whole sequences (prompt ⊕ rationale); pooled, normalised (B, D)."""
    ids, attn = left_pad(sequences, pad_id, model.device)  # (B, T)
    starts = torch.tensor(
        [ids.shape[1] - len(s) + p for s, p in zip(sequences, pool_starts)], device=ids.device
    )  # (B,)
    with capture_layer(model, spec.layer) as states:
        model(input_ids=ids, attention_mask=attn, position_ids=positions_from_mask(attn), use_cache=False, logits_to_keep=1)
    hidden = states[0].float()  # (B, T, D)
    return normalize(pool(hidden, pooling_mask(attn, starts), spec.pooling))  # (B, D)


def fill_embeddings(
    model: Any, prompts: Sequence[Any], rationales: Sequence[Any], spec: PoolSpec, pad_id: int, batch_size: int = 16
) -> None:
    """Give every rationale an embedding: a backend that only writes text (vLLM) is pooled here.

    ``prompts`` are PromptIds, ``rationales`` the generator's Rationale objects (updated in place).
    """
    missing = [i for i, r in enumerate(rationales) if r.embedding is None]
    for start in range(0, len(missing), batch_size):
        rows = missing[start : start + batch_size]
        vectors = forward_pool(
            model, [prompts[i].input_ids + rationales[i].token_ids for i in rows], [prompts[i].pool_start for i in rows], spec, pad_id
        )
        for i, vector in zip(rows, vectors.cpu().numpy()):
            rationales[i].embedding = vector
