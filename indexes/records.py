"""The plain records an index stores and returns: chunks, hits and the encoder's identity."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


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
    """A search result: the stored chunk and its similarity to the query."""

    id: str
    score: float
    text: str
    source: str
    position: int
    metadata: dict[str, Any]
    rationale: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "score": self.score,
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
        return cls(
            model_name=str(data["model_name"]),
            fingerprint=str(data["fingerprint"]),
            dimension=int(data["dimension"]),
            settings=dict(data.get("settings", {})),
        )
