"""Encoder settings shared by the framework adapters: declared fields derived from EncoderConfig, and the encoder built from them.

Every ``EncoderConfig`` field becomes an optional pydantic field of ``GraceEmbedding`` and
``GraceEmbeddings`` (``None`` = not set: the encoder's default), so fields added to
``EncoderConfig`` later appear in both adapters without touching them.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import Field

from grace_rag.config import EncoderConfig
from grace_rag.errors import ConfigError

DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps."
CACHE_FOLDER_HELP = "Folder of the SQLite rationale/vector cache (default: $GRACE_RAG_HOME)."


def setting_names() -> list[str]:
    """The EncoderConfig field names, in declaration order."""
    return [f.name for f in dataclasses.fields(EncoderConfig)]


def config_fields() -> dict[str, Any]:
    """``{name: (type | None, Field(None, description=help))}`` for every EncoderConfig field (for ``create_model``)."""
    hints = typing.get_type_hints(EncoderConfig)
    return {
        f.name: (hints[f.name] | None, Field(default=None, description=f.metadata.get("help", "")))
        for f in dataclasses.fields(EncoderConfig)
    }


def config_as_settings(config: EncoderConfig | None) -> dict[str, Any]:
    """An EncoderConfig as a settings dict of plain values (every field; enums as their values)."""
    if config is None:
        return {}
    values = {name: getattr(config, name) for name in setting_names()}
    return {name: value.value if isinstance(value, Enum) else value for name, value in values.items()}


def merge_settings(sources: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Merge settings given in several places (``(label, settings)``); ``None`` means not given.

    A setting given twice with different values is a ConfigError naming both places.
    """
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for label, settings in sources:
        for name, value in settings.items():
            if value is None:
                continue
            if name in merged and merged[name] != value:
                raise ConfigError(
                    f"{name} is given twice with different values ({origin[name]}: {merged[name]!r}, "
                    f"{label}: {value!r}); pass it once"
                )
            merged[name], origin[name] = value, label
    return merged


def check_against(encoder: Any, settings: Mapping[str, Any]) -> None:
    """An adopted encoder must have the settings that were also passed (never silently ignore one)."""
    if not settings:
        return
    wanted = EncoderConfig(**{**config_as_settings(encoder.config), **settings})
    differ = [n for n in settings if getattr(wanted, n) != getattr(encoder.config, n)]
    if differ:
        have = ", ".join(f"{n}={getattr(encoder.config, n)!r}" for n in differ)
        raise ConfigError(
            f"encoder= was given together with settings it does not have ({have}); "
            "pass either an encoder or the settings, not both"
        )


def adopt(owner: Any, encoder: Any) -> None:
    """Make a framework wrapper use ``encoder`` and show its effective settings in its fields
    (what to_dict and pickle keep)."""
    owner._encoder = encoder
    owner.model_name = str(encoder.model_name)
    for name, value in config_as_settings(encoder.config).items():
        setattr(owner, name, value)


def build_encoder(model: str, settings: Mapping[str, Any], device: str, cache_folder: str | None) -> Any:
    """A GraceEncoder for ``model`` with the explicitly given ``settings`` (the rest: defaults)."""
    from grace_rag.cache import RationaleCache
    from grace_rag.encoder import GraceEncoder

    config = EncoderConfig(**settings)
    cache = RationaleCache(Path(cache_folder).expanduser() / "cache.sqlite") if cache_folder and config.cache else None
    return GraceEncoder(model, config=config, device=device, cache=cache)


# -- Hugging Face / sentence-transformers argument names (LangChain's HuggingFaceEmbeddings) ----------
#: encode_kwargs / query_encode_kwargs keys -> our setting (None: accepted, nothing to set)
_ENCODE_KEYS = {"batch_size": "batch_size", "prompt": "document_instruction", "normalize_embeddings": None}
_QUERY_ENCODE_KEYS = {"prompt": "query_instruction", "normalize_embeddings": None}


def _translate(kwargs: Mapping[str, Any], keys: Mapping[str, str | None], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key not in keys:
            raise ConfigError(f"{what} does not take {key!r}; accepted keys: {', '.join(sorted(keys))}")
        if key == "normalize_embeddings" and value is not True:
            raise ConfigError(f"{what}: GRACE vectors are always L2-normalised; normalize_embeddings={value!r} is not supported")
        if keys[key] is not None:
            out[keys[key]] = value
    return out


def hf_settings(model_kwargs: Mapping[str, Any], encode_kwargs: Mapping[str, Any],
                query_encode_kwargs: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Settings sources from ``HuggingFaceEmbeddings``-style arguments.

    ``model_kwargs``: ``device`` or any EncoderConfig field; ``encode_kwargs``: ``batch_size``,
    ``prompt`` (the document instruction), ``normalize_embeddings=True``;
    ``query_encode_kwargs``: ``prompt`` (the query instruction), ``normalize_embeddings=True``.
    """
    model_keys = {name: name for name in [*setting_names(), "device"]}
    return [
        ("model_kwargs", _translate(model_kwargs, model_keys, "model_kwargs")),
        ("encode_kwargs", _translate(encode_kwargs, _ENCODE_KEYS, "encode_kwargs")),
        ("query_encode_kwargs", _translate(query_encode_kwargs, _QUERY_ENCODE_KEYS, "query_encode_kwargs")),
    ]
