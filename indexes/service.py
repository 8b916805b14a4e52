"""The operations behind `grace-rag index / query / info / delete`: open the index, load the encoder only when needed, run."""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grace_rag.config import EncoderConfig
from grace_rag.errors import GraceIndexError
from grace_rag.indexes.distributed import RayConfig, RayIndexer, probe_cluster, require_ray
from grace_rag.indexes.factory import AUTO_NPROBE, SearchParams
from grace_rag.indexes.filters import Condition, Filter, Group, Op
from grace_rag.indexes.filters import parse_where_items
from grace_rag.indexes.fusion import DEFAULT_MODE, FusionConfig, SearchMode
from grace_rag.indexes.grace_index import MANIFEST_FILE, GraceIndex
from grace_rag.indexes.ingest import Indexer, IngestConfig, IngestProgress, IngestReport, files_to_index
from grace_rag.indexes.manifest import read_manifest
from grace_rag.indexes.records import EncoderInfo
from grace_rag.indexes.files import DEFAULT_INDEX_DIR, check_index_path
from grace_rag.indexes.retriever import Retriever, load_encoder, load_recorded_encoder, recorded_config

logger = logging.getLogger(__name__)



@dataclass
class IndexRequest:
    """Everything `grace-rag index` was asked to do."""

    path: Path
    index_dir: Path = DEFAULT_INDEX_DIR
    model: str | None = None  # None: the index's model, or the default model for a new index
    settings: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)  # its explicit fields were asked for
    factory: str | None = None
    nprobe: int | None = None  # IVF lists a search visits (0: measured at build); None: keep the index's
    device: str = "auto"
    ingest: IngestConfig = dataclasses.field(default_factory=IngestConfig)
    cluster: RayConfig | None = None  # embed on a Ray actor pool (None: in this process)


def stored_settings(index_dir: Path) -> tuple[str | None, dict[str, Any]]:
    """(model name, encoder settings) recorded by an existing index, or (None, {})."""
    if not (Path(index_dir) / MANIFEST_FILE).exists():
        return None, {}
    manifest = read_manifest(Path(index_dir) / MANIFEST_FILE)
    return manifest.encoder.model_name, manifest.encoder.settings


def _differs(request: IndexRequest, recorded: EncoderInfo) -> bool:
    """Whether the request names another model or other settings than the index records (no model load)."""
    from grace_rag.models import display_name

    if request.model is not None and display_name(request.model) != recorded.model_name:
        return True
    wanted = recorded_config(recorded, request.settings).to_dict()
    return any(wanted[key] != recorded.settings.get(key) for key in request.settings.explicit)


def index_folder(request: IndexRequest, progress: IngestProgress | None = None, encoder: Any = None) -> IngestReport:
    """Bring ``request.index_dir`` up to date with ``request.path``.

    An existing index loads its model only when files need embedding (or when the request names
    another model or other settings, to check them against the index's fingerprint).
    """
    if not Path(request.path).exists():
        raise GraceIndexError(f"{request.path} does not exist; pass a folder (or file) to index")
    indexer = _indexer_class(request)
    index = GraceIndex.open_existing(request.index_dir)
    if index is None:  # nothing is written before the folder, the files and the model are known to be good
        check_index_path(Path(request.index_dir))
        files_to_index(Path(request.path).resolve(), request.ingest.extensions)
        encoder = encoder or load_encoder(request.model, request.settings, request.device)
        index = GraceIndex.create(request.index_dir, EncoderInfo.of(encoder),
                                  "auto" if request.factory is None else request.factory,
                                  SearchParams(nprobe=request.nprobe or AUTO_NPROBE))
    recorded = index.manifest.encoder
    try:
        index.lock()  # one writer at a time: a second run stops here, before reading or embedding anything
        if encoder is None and _differs(request, recorded):
            encoder = load_encoder(recorded.model_name if request.model is None else request.model,
                                   recorded_config(recorded, request.settings), request.device)
        index.set_factory(request.factory)
        index.set_nprobe(request.nprobe)

        def loader() -> Any:
            return load_recorded_encoder(index.path, recorded, request.device)

        return indexer(index, encoder, request.ingest, progress, load_encoder=loader).run(request.path)
    finally:
        index.close()


def _indexer_class(request: IndexRequest) -> Any:
    """The Indexer, or a RayIndexer bound to ``request.cluster`` (Ray and the address are checked before any model loads)."""
    if request.cluster is None:
        return Indexer
    ray = require_ray()
    if not ray.is_initialized():
        probe_cluster(request.cluster)  # an unreachable address fails here, before any model loads
    return functools.partial(RayIndexer, cluster=request.cluster)


def open_index(index_dir: Path) -> GraceIndex:
    """Open an index for reading (a missing or foreign directory is a GraceIndexError)."""
    return GraceIndex.open(Path(index_dir))


def query_index(index_dir: Path, text: str, k: int = 5, explain: bool = False, where: Any = None,
                model: str | None = None, device: str = "auto", encoder: Any = None, *,
                mode: str | SearchMode = DEFAULT_MODE, fusion: FusionConfig | None = None,
                settings: EncoderConfig | None = None) -> dict[str, Any]:
    """`grace-rag query`: search an index with the model and settings that built it (or ``model`` and
    ``settings``, which must build the same vectors), as JSON. Lexical mode loads no model."""
    if not text.strip():
        raise GraceIndexError("the query is empty; pass the text to search for")
    with Retriever.open(index_dir, model=model, settings=settings, device=device, encoder=encoder) as retriever:
        return retriever.search(text, k, where, mode=mode, fusion=fusion).to_dict(explain)


def delete_sources(index_dir: Path, paths: list[str]) -> dict[str, Any]:
    """Remove everything indexed from ``paths`` (files or folders); no model is loaded."""
    removed: dict[str, int] = {}
    with open_index(index_dir) as index:
        index.lock()
        for path in paths:
            found = {source: index.store.sources_under(source) for source in source_forms(path)}
            if not any(found.values()):
                example = next(iter(index.store.file_hashes()), None)
                hint = f" (sources look like {example})" if example else " (the index is empty)"
                raise GraceIndexError(f"nothing in {index_dir} comes from {path}{hint}; nothing was deleted")
            removed[path] = sum(index.delete_source(source) for source, hits in found.items() if hits)
        index.save()
        return {"removed_chunks": removed, "chunks": len(index), "files": len(index.store.file_hashes())}


def index_info(index_dir: Path) -> dict[str, Any]:
    with open_index(index_dir) as index:
        return index.info()


def source_forms(value: str) -> list[str]:
    """A source as given and, when it differs, as the absolute path ingestion stores."""
    resolved = Path(value).expanduser().resolve().as_posix()
    return [value] if resolved == value else [value, resolved]


def parse_where(items: list[str] | None) -> Filter | None:
    """CLI ``--where`` items as a filter; ``source`` values also match as paths from the current folder."""
    flt = parse_where_items(items)
    return _with_source_paths(flt) if flt is not None else None


def _with_source_paths(flt: Filter) -> Filter:
    if isinstance(flt, Group):
        return Group(flt.combine, tuple(_with_source_paths(part) for part in flt.parts))
    if flt.key != "source" or flt.op not in (Op.EQ, Op.NE, Op.IN, Op.NIN):
        return flt
    values = flt.value if flt.op in (Op.IN, Op.NIN) else (flt.value,)
    forms = [form for value in values for form in (source_forms(value) if isinstance(value, str) else [value])]
    return Condition("source", Op.NIN if flt.op in (Op.NE, Op.NIN) else Op.IN, forms)

