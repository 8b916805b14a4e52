"""EncoderConfig: every knob of the GRACE encoder, with defaults and one-line help."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from grace_rag.errors import ConfigError, choice_error
from grace_rag.textio import is_text

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
    RATIONALE = "rationale"  # mean over the rationale tokens only (the text's mean when there is none)
    BALANCED = "balanced"  # 1/2 mean over the text + 1/2 mean over the rationale (segment-balanced)


class Layer(str, Enum):
    """Which hidden layer is pooled."""

    LAST = "last"
    PENULTIMATE = "penultimate"


class Quantization(str, Enum):
    """Number format of the decoder's matrix products."""

    AUTO = "auto"  # bf16 on a CPU that multiplies bfloat16 natively (AVX512-BF16, AMX), else none; resolved per encoder
    NONE = "none"  # as loaded (float32 on a CPU)
    BF16 = "bf16"  # bfloat16 matrix products under torch.autocast; weights, norms and pooling stay float32


class Writer(str, Enum):
    """Which weights write the rationale."""

    MODEL = "model"  # the encoder's own weights write and read, in one pass (the paper)
    BASE = "base"  # the untrained base model writes, the trained weights read it: a second forward pass


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


def _help(text: str, *, runtime: bool = False, flag: str | None = None, **kw: Any) -> Any:
    """A field with its one-line help (shared by the CLI, the framework adapters and the docs).

    ``runtime``: how the work is done, not what vector comes out (left out of the fingerprint and of
    the CLI options); ``flag``: the CLI option's name when ``--field-name`` would collide with another.
    """
    metadata: dict[str, Any] = {"help": text, "runtime": runtime}
    if flag is not None:
        metadata["flag"] = flag
    return field(metadata=metadata, **kw)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def track_explicit(cls: type) -> type:
    """Record which fields a dataclass instance was given explicitly (like pydantic's ``model_fields_set``).

    A model directory carries its own encoder settings (``grace_encoder.json``); settings the
    caller passed explicitly override them, the others follow the model.
    """
    init = cls.__init__
    names = [f.name for f in dataclasses.fields(cls)]

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        object.__setattr__(self, "_explicit", frozenset(names[: len(args)]) | frozenset(kwargs))

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


@track_explicit
@dataclass
class EncoderConfig:
    """Settings of a GraceEncoder. Every field has a default and a one-line help.

    Fields not passed explicitly follow the model's own settings (``grace_encoder.json`` in a
    model directory, or a built-in model's table) when a GraceEncoder is built; see ``resolve``.
    """

    max_rationale_tokens: int = _help(
        "Rationale length in new tokens for documents (and queries unless query_rationale_tokens is set); "
        "0 = no rationale (plain pooling, the paper's base row).",
        default=32,
    )
    query_rationale_tokens: int | None = _help(
        "Rationale length for queries (None: same as max_rationale_tokens). A query's rationale is its latency.",
        default=None,
    )
    max_input_tokens: int = _help("Input texts longer than this many tokens are truncated.", default=512)
    writer_input_tokens: int | None = _help(
        "Tokens of each text the rationale's writer reads (None: max_input_tokens). Less than max_input_tokens "
        "makes writing cheaper; the vector still reads max_input_tokens of text plus the rationale (a second "
        "forward pass when the model writes its own).", default=None)
    pooling: Pooling = _help(
        "Pooling: mean (paper), last (EOS token), max, rationale (rationale tokens only) or "
        "balanced (1/2 text mean + 1/2 rationale mean).", default=Pooling.MEAN)
    layer: Layer = _help("Hidden layer to pool: last or penultimate.", default=Layer.LAST)
    quantization: Quantization = _help(
        "auto: bf16 on a CPU with native bfloat16 (AVX512-BF16 or AMX), none elsewhere; none: as loaded "
        "(float32 on a CPU); bf16: bfloat16 linear layers (vectors change slightly).",
        default=Quantization.AUTO)
    writer: Writer = _help(
        "Who writes the rationale: model (the encoder's own weights, one pass) or base (the untrained model a "
        "trained one derives from writes, the trained weights read it: a second forward pass).",
        default=Writer.MODEL)
    query_instruction: str = _help("System prompt for queries.", default=DEFAULT_INSTRUCTION)
    document_instruction: str = _help("System prompt for documents.", default=DEFAULT_INSTRUCTION)
    temperature: float = _help("Rationale sampling temperature; 0 = greedy (reproducible).", default=0.0)
    top_p: float = _help("Nucleus sampling mass when temperature > 0.", default=1.0)
    seed: int | None = _help("Seed for sampled rationales (temperature > 0).", default=None, flag="--sampling-seed")
    batch_size: int = _help("Texts per model batch at most.", default=16, runtime=True)
    max_batch_tokens: int = _help(
        "Prompt tokens per model batch at most (longest prompt x texts): long documents go a few at a time, "
        "short texts up to batch_size at once.", default=4096, runtime=True)
    cache: bool = _help("Store rationales and vectors in the SQLite cache under GRACE_RAG_HOME.", default=True,
                        runtime=True)
    show_progress: bool = _help("Show a progress bar while encoding.", default=False, runtime=True)

    def __post_init__(self) -> None:
        self.pooling = parse_choice(Pooling, self.pooling, "pooling")
        self.layer = parse_choice(Layer, self.layer, "layer")
        if str(getattr(self.quantization, "value", self.quantization)).lower() == "int8":
            raise ConfigError("quantization 'int8' is no longer offered: it cost 0.11 nDCG@10 even per channel "
                              "(docs/results.md); use 'none' or 'bf16' (an index built with int8 needs re-indexing "
                              "into a new --index folder)")
        self.quantization = parse_choice(Quantization, self.quantization, "quantization")
        self.writer = parse_choice(Writer, self.writer, "writer")
        for name, low in (("max_rationale_tokens", 0), ("max_input_tokens", 1), ("batch_size", 1),
                          ("max_batch_tokens", 1)):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.query_rationale_tokens is not None and (not _is_int(self.query_rationale_tokens)
                                                        or self.query_rationale_tokens < 0):
            raise ConfigError(f"query_rationale_tokens must be None or an integer >= 0, got {self.query_rationale_tokens!r}")
        if self.writer_input_tokens is not None and (not _is_int(self.writer_input_tokens)
                                                     or self.writer_input_tokens < 1):
            raise ConfigError(f"writer_input_tokens must be None or an integer >= 1, got {self.writer_input_tokens!r}")
        for name in ("query_instruction", "document_instruction"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip() or not is_text(value):
                raise ConfigError(f"{name} must be a non-empty string of UTF-8 text (the system prompt), got {value!r}")
        if not _is_number(self.temperature) or self.temperature < 0:
            raise ConfigError(f"temperature must be a finite number >= 0 (0 = greedy), got {self.temperature!r}")
        if not _is_number(self.top_p) or not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be a number in (0, 1], got {self.top_p!r}")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed < 2**64):
            raise ConfigError(f"seed must be None or an integer in [0, 2**64), got {self.seed!r}")
        for name in ("cache", "show_progress"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def paper(cls, **overrides: Any) -> EncoderConfig:
        """The paper's settings (method.md): 256-token rationales for queries and documents,
        last-layer mean pooling, one instruction. Every field is explicit, so a model's own
        settings never replace them."""
        values = {f.name: f.default for f in dataclasses.fields(cls)}
        values.update(max_rationale_tokens=256, query_rationale_tokens=None, pooling=Pooling.MEAN, layer=Layer.LAST)
        values.update(overrides)
        return cls(**values)

    @property
    def explicit(self) -> frozenset[str]:
        """Names of the fields given explicitly when this config was built."""
        return getattr(self, "_explicit", frozenset())

    def resolve(self, model_settings: dict[str, Any]) -> EncoderConfig:
        """This config with the model's settings filling every field not given explicitly."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(model_settings) - valid)
        if unknown:
            raise ConfigError(f"the model's settings name unknown field(s) {', '.join(unknown)}; "
                              "upgrade grace-rag to read this model")
        values = self.to_dict()
        values.update({k: v for k, v in model_settings.items() if k not in self.explicit})
        return type(self)(**values)

    def with_changes(self, **changes: Any) -> EncoderConfig:
        """A copy with some fields changed; those become explicit, the others keep their status."""
        new = dataclasses.replace(self, **changes)
        object.__setattr__(new, "_explicit", self.explicit | frozenset(changes))
        return new

    def rationale_tokens(self, role: Role) -> int:
        """The rationale length used for ``role``."""
        if role is Role.QUERY and self.query_rationale_tokens is not None:
            return self.query_rationale_tokens
        return self.max_rationale_tokens

    @property
    def writer_reads(self) -> int:
        """How many tokens of a text the rationale's writer reads (never more than the vector does)."""
        return min(self.writer_input_tokens or self.max_input_tokens, self.max_input_tokens)

    @property
    def writer_truncates(self) -> bool:
        """Whether the writer reads fewer tokens of a text than the vector does."""
        return self.writer_reads < self.max_input_tokens

    def instruction(self, role: Role) -> str:
        return self.query_instruction if role is Role.QUERY else self.document_instruction

    def to_dict(self, explicit_only: bool = False) -> dict[str, Any]:
        """JSON-able settings (enums as their string values); with ``explicit_only``, the explicit ones."""
        names = [f.name for f in dataclasses.fields(self) if not explicit_only or f.name in self.explicit]
        values = {name: getattr(self, name) for name in names}
        return {name: value.value if isinstance(value, Enum) else value for name, value in values.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "encoder settings") -> EncoderConfig:
        """Build from a mapping (a config file's ``[encoder]`` table); unknown keys name the valid ones."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"{source}: unknown encoder setting(s) {', '.join(unknown)}; valid encoder "
                              f"settings are: {', '.join(f.name for f in dataclasses.fields(cls))}")
        return cls(**data)

    def identity(self) -> dict[str, Any]:
        """The settings that change a vector (what the fingerprint covers).

        A setting at its neutral value is left out (``query_rationale_tokens=None``,
        ``quantization="none"``), so
        fingerprints of indexes built before the setting existed stay valid.
        """
        out = self.to_dict()
        for name in runtime_fields(type(self)):
            out.pop(name)
        for key, neutral in (("query_rationale_tokens", None), ("quantization", Quantization.NONE.value),
                             ("writer", Writer.MODEL.value)):
            if out[key] == neutral:
                out.pop(key)
        if not self.writer_truncates:  # None, or at least max_input_tokens: the writer reads what the vector does
            out.pop("writer_input_tokens")
        return out


def runtime_fields(cls: type) -> list[str]:
    """Fields of a config dataclass that say how the work is done, not what vector comes out."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("runtime")]
