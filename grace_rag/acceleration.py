"""CPU speed-ups that change how the model computes, not what the encoder does: int8 linear layers.

``quantize_int8`` returns a copy of a causal LM whose decoder blocks use dynamic int8
quantisation (weights int8, activations quantised per batch; torch.ao, fbgemm/x86 kernels).
The LM head stays in float32 so the greedy rationale tokens move as little as possible.
Vectors change slightly, so the encoder's fingerprint records ``quantization="int8"``.
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import Any

from grace_rag.errors import ConfigError

logger = logging.getLogger(__name__)


def quantize_int8(model: Any) -> Any:
    """A dynamically int8-quantised copy of ``model``'s decoder linear layers (CPU only)."""
    import torch

    if next(model.parameters()).device.type != "cpu":
        raise ConfigError("quantization='int8' runs on the CPU only; use device='cpu' or quantization='none'")
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    prefix = next(name for name, module in model.named_modules() if module is decoder)
    quantised = copy.deepcopy(model).float()
    spec = {f"{prefix}.layers": torch.ao.quantization.default_dynamic_qconfig}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        torch.ao.quantization.quantize_dynamic(quantised, spec, dtype=torch.qint8, inplace=True)
    return quantised.eval()
