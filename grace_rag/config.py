"""EncoderConfig: every knob of the GRACE encoder, with defaults and one-line help."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from grace_rag.errors import ConfigError, choice_error

#: The authors' single system prompt for queries, documents, negatives and evaluation.
DEFAULT_INSTRUCTION = (
    "Read and analyze the following text, then you need to provide your reasoning within "
    "<think></think> tags. Finally, generate a comprehensive understanding of this text."
)


class Pooling(str, Enum):
    """How token states become one vector."""

    MEAN = "mean"  # masked mean over every valid token after the system prefix (paper)
    LAST = "last"  # the last valid token (EOS-style)
    MAX = "max"  # element-wise max over the same tokens as MEAN


class Layer(str, Enum):
    """Which hidden layer is pooled."""

    LAST = "last"
    PENULTIMATE = "penultimate"


class Role(str, Enum):
    """Which instruction a text is encoded with."""

    QUERY = "query"
    DOCUMENT = "document"


def parse_choice(enum_cls: type[Enum], value: Any, what: str) -> Any:
    """Turn a string (or enum member) into ``enum_cls``; unknown values list the valid ones."""
    if isinstance(value, enum_cls):
        return value
    try:
        return enum_cls(str(value).lower())
    except ValueError:
        raise choice_error(what, value, [m.value for m in enum_cls]) from None


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device(device: str) -> str:
    """Validate a device string: auto, cpu, mps, cuda or cuda:N."""
    if not isinstance(device, str) or not _DEVICE_RE.match(device):
        raise choice_error("device", device, ["auto", "cpu", "cuda", "cuda:N", "mps"])
    return device


def _help(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


@dataclass
class EncoderConfig:
    """Settings of a GraceEncoder. Every field has a default and a one-line help."""

    max_rationale_tokens: int = _help(
        "Rationale length in new tokens; 0 = no rationale (plain pooling, the paper's base row).",
        default=32,
    )
    max_input_tokens: int = _help("Input texts longer than this many tokens are truncated.", default=512)
    pooling: Pooling = _help("Pooling: mean (paper), last (EOS token) or max.", default=Pooling.MEAN)
    layer: Layer = _help("Hidden layer to pool: last or penultimate.", default=Layer.LAST)
    query_instruction: str = _help("System prompt for queries.", default=DEFAULT_INSTRUCTION)
    document_instruction: str = _help("System prompt for documents.", default=DEFAULT_INSTRUCTION)
    temperature: float = _help("Rationale sampling temperature; 0 = greedy (reproducible).", default=0.0)
    top_p: float = _help("Nucleus sampling mass when temperature > 0.", default=1.0)
    seed: int | None = _help("Seed for sampled rationales (temperature > 0).", default=None)
    batch_size: int = _help("Texts per model batch.", default=16)
    cache: bool = _help("Store rationales and vectors in the SQLite cache under GRACE_RAG_HOME.", default=True)
    show_progress: bool = _help("Show a progress bar while encoding.", default=False)

    def __post_init__(self) -> None:
        self.pooling = parse_choice(Pooling, self.pooling, "pooling")
        self.layer = parse_choice(Layer, self.layer, "layer")
        for name in ("max_rationale_tokens", "max_input_tokens", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        if self.batch_size < 1 or self.max_input_tokens < 1:
            raise ConfigError("batch_size and max_input_tokens must be at least 1")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")

    def instruction(self, role: Role) -> str:
        return self.query_instruction if role is Role.QUERY else self.document_instruction

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings (enums as their string values)."""
        out = dataclasses.asdict(self)
        out["pooling"] = self.pooling.value
        out["layer"] = self.layer.value
        return out

    def identity(self) -> dict[str, Any]:
        """The settings that change a vector (what the fingerprint covers)."""
        out = self.to_dict()
        for key in ("batch_size", "cache", "show_progress"):
            out.pop(key)
        return out
