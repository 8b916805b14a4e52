"""Which model a name means in the harness: ``bm25``, ``minilm``, ``default`` or any GraceEncoder name, ``hybrid:NAME``."""

from __future__ import annotations

from typing import Any

from grace_rag.config import EncoderConfig, runtime_fields
from grace_rag.errors import ConfigError
from grace_rag.evaluation.adapters import BM25Retriever, LoadedModel, MiniLMEmbedder
from grace_rag.evaluation.hybrid import load_hybrid


def _load_bm25(settings: EncoderConfig) -> LoadedModel:
    return LoadedModel("bm25", BM25Retriever(), {"k1": 1.5, "b": 0.75, "stemmer": "english"})


def _load_minilm(settings: EncoderConfig) -> LoadedModel:
    return LoadedModel("minilm", MiniLMEmbedder(), {"path": "all-MiniLM-L6-v2"})


def _load_grace(name: str, settings: EncoderConfig) -> LoadedModel:
    from grace_rag import GraceEncoder

    encoder = GraceEncoder(config=settings) if name == "default" else GraceEncoder(model=name, config=settings)
    details = encoder.config.to_dict()  # the effective settings (the model's own fill what was not given)
    label = grace_label(name, settings)
    return LoadedModel(label, encoder, {"model": encoder.model_name,
                                        "fingerprint": encoder.fingerprint, **details})


#: short names of settings in result labels (the others appear under their field name)
LABEL_NAMES = {"max_rationale_tokens": "rt", "pooling": "pool", "layer": "layer", "query_rationale_tokens": "qrt",
               "quantization": "q"}


def grace_label(name: str, settings: EncoderConfig) -> str:
    """A short display label of the settings given explicitly, e.g. ``default[rt=32,pool=max]``."""
    given = settings.to_dict(explicit_only=True)
    order = [*LABEL_NAMES, *(k for k in given if k not in LABEL_NAMES)]
    parts = [f"{LABEL_NAMES.get(k, k)}={given[k]}" for k in order if k in given and k not in runtime_fields(EncoderConfig)]
    return f"{name}[{','.join(parts)}]" if parts else name


BASELINES = {"bm25": _load_bm25, "minilm": _load_minilm}


HYBRID_PREFIX = "hybrid:"


def load_model(name: str, settings: EncoderConfig | None = None, fusion: Any = None) -> LoadedModel:
    """Resolve ``bm25``, ``minilm``, ``default``, any GraceEncoder name/path, or ``hybrid:<one of those>``.

    ``settings``: its explicit fields override a GraceEncoder's. ``hybrid:NAME`` fuses NAME's dense
    ranking with BM25 as a grace-rag index does (``fusion``, a
    :class:`~grace_rag.indexes.fusion.FusionConfig`, or the index's defaults).
    """
    settings = settings or EncoderConfig()
    if not name.strip():
        raise ConfigError("empty model name; use bm25, minilm, default, or a model path")
    if name.startswith(HYBRID_PREFIX):
        return load_hybrid(load_model(name[len(HYBRID_PREFIX):], settings), fusion)
    loader = BASELINES.get(name)
    if loader is not None:
        return loader(settings)
    return _load_grace(name, settings)
