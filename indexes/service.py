"""The operations behind `grace-rag index / query / info`: build the encoder, open the index, run."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grace_rag.errors import GraceIndexError
from grace_rag.indexes.grace_index import MANIFEST_FILE, GraceIndex
from grace_rag.indexes.ingest import Indexer, IngestConfig, IngestReport, Progress
from grace_rag.indexes.manifest import read_manifest

logger = logging.getLogger(__name__)

DEFAULT_INDEX_DIR = Path(".grace-index")


@dataclass
class IndexRequest:
    """Everything `grace-rag index` was asked to do."""

    path: Path
    index_dir: Path = DEFAULT_INDEX_DIR
    model: str | None = None  # None: the index's model, or the default model for a new index
    rationale_tokens: int | None = None
    factory: str | None = None
    device: str = "auto"
    ingest: IngestConfig = dataclasses.field(default_factory=IngestConfig)


def stored_settings(index_dir: Path) -> tuple[str | None, dict[str, Any]]:
    """(model name, encoder settings) recorded by an existing index, or (None, {})."""
    if not (Path(index_dir) / MANIFEST_FILE).exists():
        return None, {}
    manifest = read_manifest(Path(index_dir) / MANIFEST_FILE)
    return manifest.encoder.model_name, manifest.encoder.settings


def load_encoder(model: str | None, settings: dict[str, Any], device: str = "auto",
                 rationale_tokens: int | None = None) -> Any:
    """A GraceEncoder with the given (recorded) settings; ``rationale_tokens`` overrides them."""
    from grace_rag import EncoderConfig, GraceEncoder

    fields = {f.name for f in dataclasses.fields(EncoderConfig)}
    config = {k: v for k, v in settings.items() if k in fields}
    config["show_progress"] = False
    if rationale_tokens is not None:
        config["max_rationale_tokens"] = rationale_tokens
    kwargs: dict[str, Any] = {"config": EncoderConfig(**config), "device": device}
    return GraceEncoder(model=model, **kwargs) if model else GraceEncoder(**kwargs)


def index_folder(request: IndexRequest, progress: Progress | None = None, encoder: Any = None) -> IngestReport:
    """Bring ``request.index_dir`` up to date with ``request.path``."""
    if not Path(request.path).exists():
        raise GraceIndexError(f"{request.path} does not exist; pass a folder (or file) to index")
    if encoder is None:
        model, settings = stored_settings(request.index_dir)
        encoder = load_encoder(request.model or model, settings, request.device, request.rationale_tokens)
    index = GraceIndex.open_or_create(request.index_dir, encoder, factory=request.factory)
    try:
        return Indexer(index, encoder, request.ingest, progress).run(request.path)
    finally:
        index.close()


def open_index(index_dir: Path) -> GraceIndex:
    """Open an index for reading (a missing or foreign directory is a GraceIndexError)."""
    return GraceIndex.open(Path(index_dir))


def query_index(index_dir: Path, text: str, k: int = 5, explain: bool = False,
                where: dict[str, Any] | None = None, model: str | None = None, device: str = "auto",
                encoder: Any = None) -> dict[str, Any]:
    """Search an index with the model that built it (or ``model``, which must match it)."""
    if not text.strip():
        raise GraceIndexError("the query is empty; pass the text to search for")
    with open_index(index_dir) as index:
        if encoder is None:
            manifest = index.manifest.encoder
            encoder = load_encoder(model or manifest.model_name, manifest.settings, device)
        hits, rationale = index.query(encoder, text, k=k, where=where)
    result: dict[str, Any] = {"query": text, "hits": [h.to_dict() for h in hits]}
    if explain:
        result["query_rationale"] = rationale
    else:
        for hit in result["hits"]:
            hit.pop("rationale")
    return result


def index_info(index_dir: Path) -> dict[str, Any]:
    with open_index(index_dir) as index:
        return index.info()


def parse_where(items: list[str] | None) -> dict[str, Any]:
    """``["lang=en", "year=2020"]`` -> ``{"lang": "en", "year": 2020}`` (values read as JSON when they parse)."""
    import json

    where: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise GraceIndexError(f"--where expects KEY=VALUE, got {item!r}")
        try:
            where[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            where[key.strip()] = raw
    return where
