"""A speed-up that changes how the model computes, not what the encoder does: bf16 linear layers.

``bf16_linears`` returns a copy of a causal LM whose decoder blocks hold bfloat16 weights and
compute each product in bfloat16, returned in float32 (fast on CPUs with AVX512-BF16 or AMX, and on
GPUs); embeddings, norms, attention scores, the residual stream, the KV cache and the LM head stay in
float32 (so the greedy rationale tokens move as little as possible). Dynamic int8 was measured and
removed: 0.11 nDCG@10 below float32 even with per-channel scales (``benchmarks/int8_quality.py``).

Vectors change slightly, so the encoder's fingerprint records the setting.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from grace_rag.config import Quantization

logger = logging.getLogger(__name__)


CPU_FLAGS = Path("/proc/cpuinfo")
NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
#: "1" or "0" overrides the CPU check (containers that hide flags; tests that must not depend on the machine)
NATIVE_BF16_ENV = "GRACE_RAG_NATIVE_BF16"


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 natively (x86 AVX512-BF16 or AMX-BF16, read from /proc/cpuinfo).

    Elsewhere (no /proc/cpuinfo, other architectures) the answer is no: bf16 without hardware
    support is emulated and slower than float32. ``GRACE_RAG_NATIVE_BF16=1`` or ``=0`` decides instead.
    """
    forced = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    try:
        text = CPU_FLAGS.read_text(errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return bool(NATIVE_BF16_FLAGS & set(flags))


def resolve_quantization(quantization: Quantization, device_type: str) -> Quantization:
    """What ``auto`` means on this machine: bf16 on a CPU with native bfloat16, none elsewhere
    (a GPU already computes in bfloat16). Other values are returned as they are."""
    if quantization is not Quantization.AUTO:
        return quantization
    return Quantization.BF16 if device_type == "cpu" and native_bf16_cpu() else Quantization.NONE


def convert(model: Any, quantization: Quantization) -> Any:
    """``model`` as ``quantization`` (already resolved) asks: itself for "none", else a converted copy."""
    if quantization is Quantization.BF16:
        return bf16_linears(model)
    return model


def _decoder_prefix(model: Any) -> str:
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    return next(name for name, module in model.named_modules() if module is decoder)


class BF16Linear(torch.nn.Linear):
    """``nn.Linear`` whose weights are bfloat16: the product runs in bfloat16, the output has the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(self.weight.dtype), self.weight, self.bias).to(x.dtype)


def bf16_linears(model: Any) -> Any:
    """A copy of ``model`` whose decoder blocks' linear layers hold bfloat16 weights and compute in bfloat16."""
    prefix = f"{_decoder_prefix(model)}.layers."
    converted = copy.deepcopy(model).float()
    for name, module in converted.named_modules():
        if name.startswith(prefix) and type(module) in (torch.nn.Linear, BF16Linear):  # converting twice is a no-op
            module.__class__ = BF16Linear
            module.to(torch.bfloat16)
    return converted.eval()
