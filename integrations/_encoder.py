"""Building (or adopting) the GraceEncoder behind a framework adapter."""

from __future__ import annotations

from typing import Any


def make_encoder(encoder: Any, model: str | None, config: Any, max_rationale_tokens: int | None, device: str) -> Any:
    """``encoder`` as given, else a GraceEncoder for ``model`` with ``config`` (+ rationale length)."""
    if encoder is not None:
        return encoder
    import dataclasses

    from grace_rag import EncoderConfig, GraceEncoder

    config = config or EncoderConfig()
    if max_rationale_tokens is not None:
        config = dataclasses.replace(config, max_rationale_tokens=max_rationale_tokens)
    return GraceEncoder(model, config=config, device=device) if model else GraceEncoder(config=config, device=device)
