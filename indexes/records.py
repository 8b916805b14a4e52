"""The plain records an index stores and returns: chunks, hits and the encoder's identity."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grace_rag.config import EncoderConfig, runtime_fields
from grace_rag.errors import GraceIndexError
from grace_rag.textio import is_text


def content_hash(text: str) -> str:
    """Stable hex digest of a chunk's text (what decides whether it must be re-embedded)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Chunk:
    """One unit of text in the index, with where it came from."""

    id: str
    text: str
    source: str = ""
    position: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    rationale: str = ""

    @property
    def content_hash(self) -> str:
        return content_hash(self.text)


@dataclass
class Hit:
    """A search result: the stored chunk, its score, and where each side of the index ranked it.

    ``score`` is the cosine similarity (dense mode), the BM25 score (lexical mode) or the fused
    score (hybrid mode). ``dense_rank``/``lexical_rank`` are 1-based places among that side's
    candidates, with its own score; ``None`` where that side did not return the chunk (or was
    not asked).
    """

    id: str
    score: float
    text: str
    source: str
    position: int
    metadata: dict[str, Any]
    rationale: str
    dense_rank: int | None = None
    dense_score: float | None = None
    lexical_rank: int | None = None
    lexical_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "score": self.score,
            "dense_rank": self.dense_rank,
            "dense_score": self.dense_score,
            "lexical_rank": self.lexical_rank,
            "lexical_score": self.lexical_score,
            "source": self.source,
            "position": self.position,
            "text": self.text,
            "metadata": self.metadata,
            "rationale": self.rationale,
        }


@dataclass(frozen=True)
class EncoderInfo:
    """What an index records about the encoder that built it."""

    model_name: str
    fingerprint: str
    dimension: int
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, encoder: Any) -> "EncoderInfo":
        """Read the identity of a GraceEncoder (or anything with the same attributes)."""
        config = getattr(encoder, "config", None)
        settings = config.to_dict() if hasattr(config, "to_dict") else {}
        return cls(
            model_name=str(encoder.model_name),
            fingerprint=str(encoder.fingerprint),
            dimension=int(encoder.dimension),
            settings=settings,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "fingerprint": self.fingerprint,
            "dimension": self.dimension,
            "settings": self.settings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EncoderInfo":
        settings = dict(data.get("settings", {}))
        if settings:  # written before the setting existed: such an index was built as loaded (float32 on a CPU)
            settings.setdefault("quantization", "none")
        return cls(
            model_name=str(data["model_name"]),
            fingerprint=str(data["fingerprint"]),
            dimension=int(data["dimension"]),
            settings=settings,
        )


def check_chunks(chunks: Sequence[Chunk]) -> None:
    """A GraceIndexError naming the first chunk the store cannot hold (non-text fields, unserialisable metadata)."""
    for i, chunk in enumerate(chunks):
        if not isinstance(chunk, Chunk):
            raise GraceIndexError(f"chunks[{i}] is {type(chunk).__name__}, expected a Chunk")
        for name in ("id", "text", "source", "rationale"):
            value = getattr(chunk, name)
            if not isinstance(value, str) or not is_text(value):
                raise GraceIndexError(f"chunks[{i}].{name} must be UTF-8 text, got {value!r:.80}")
        if not chunk.id:
            raise GraceIndexError(f"chunks[{i}].id is empty; every chunk needs an id")
        if not isinstance(chunk.position, int) or isinstance(chunk.position, bool):
            raise GraceIndexError(f"chunks[{i}].position must be an integer, got {chunk.position!r}")
        try:
            json.dumps(chunk.metadata, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise GraceIndexError(f"chunks[{i}].metadata must be JSON (strings, numbers, lists, dicts): {exc}") from None
        if not isinstance(chunk.metadata, dict):
            raise GraceIndexError(f"chunks[{i}].metadata must be a dict, got {type(chunk.metadata).__name__}")


def check_fingerprint(built_with: EncoderInfo, encoder: EncoderInfo, where: Path) -> None:
    """Refuse to mix vectors of two different encoders, naming both and what differs."""
    if built_with.fingerprint == encoder.fingerprint:
        return
    ignored = set(runtime_fields(EncoderConfig))  # how the work is done, not what vector comes out
    changed = sorted(k for k in set(built_with.settings) | set(encoder.settings)
                     if k not in ignored and built_with.settings.get(k) != encoder.settings.get(k))
    if built_with.model_name != encoder.model_name:
        fix = f"use --model {built_with.model_name} or a new --index directory"
    elif changed:
        was = ", ".join(f"{k}={built_with.settings.get(k)!r}" for k in changed)
        fix = f"the settings differ (the index used {was}); use the same settings or a new --index directory"
    else:
        fix = "the model's weights changed; re-index into a new --index directory"
    raise GraceIndexError(
        f"index {where} was built with model {built_with.model_name!r} (fingerprint {built_with.fingerprint[:12]}) "
        f"but the encoder is {encoder.model_name!r} (fingerprint {encoder.fingerprint[:12]}); {fix}"
    )
