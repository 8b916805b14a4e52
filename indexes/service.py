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
from grace_rag.indexes.grace_index import LOCK_FILE, MANIFEST_FILE, GraceIndex, IndexExistsError
from grace_rag.indexes.lock import WriteLock
from grace_rag.indexes.ingest import Indexer, IngestConfig, IngestProgress, IngestReport, files_to_index
from grace_rag.indexes.manifest import read_manifest
from grace_rag.indexes.records import EncoderInfo, check_fingerprint
from grace_rag.indexes.files import DEFAULT_INDEX_DIR, check_index_path
from grace_rag.indexes.retriever import Retriever, load_encoder, load_recorded_encoder, recorded_config
from grace_rag.textio import shown

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
    lexical_text: str | None = None  # what BM25 indexes: "text" or "text+rationale"; None: keep the index's
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
    lock = writer_lock(request.index_dir)
    try:
        index = GraceIndex.open_existing(request.index_dir, lock=lock)
        if index is None:  # nothing is written before the folder, the files and the model are known to be good
            check_index_path(Path(request.index_dir))
            files_to_index(Path(request.path).resolve(), request.ingest.extensions)
            encoder = encoder or load_encoder(request.model, request.settings, request.device)
            index = _create(request, encoder, lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    recorded = index.manifest.encoder
    try:
        index.lock()  # one writer at a time: a second run stops here, before reading or embedding anything
        if encoder is None and _differs(request, recorded):
            encoder = load_encoder(recorded.model_name if request.model is None else request.model,
                                   recorded_config(recorded, request.settings), request.device)
        index.set_factory(request.factory)
        index.set_nprobe(request.nprobe)
        index.set_lexical_text(request.lexical_text)

        def loader() -> Any:
            return load_recorded_encoder(index.path, recorded, request.device)

        return indexer(index, encoder, request.ingest, progress, load_encoder=loader).run(request.path)
    finally:
        index.close()


def writer_lock(index_dir: Path) -> WriteLock | None:
    """The write lock of an existing index, taken before it is opened (a second writer stops at once,
    before a large index loads); None where grace-rag never wrote a lock file (no lock file is made in
    a folder that may turn out not to hold an index: it is taken later, as the index is opened)."""
    path = Path(index_dir)
    if not (path / LOCK_FILE).is_file():
        return None
    lock = WriteLock(path)
    lock.acquire()
    return lock


def _create(request: IndexRequest, encoder: Any, lock: WriteLock | None) -> GraceIndex:
    """A new index for ``encoder``; when another run created it a moment ago, that index (if it is done)."""
    try:
        return GraceIndex.create(request.index_dir, EncoderInfo.of(encoder),
                                 "auto" if request.factory is None else request.factory,
                                 SearchParams(nprobe=request.nprobe or AUTO_NPROBE), lock=lock)
    except IndexExistsError:
        lock = lock or writer_lock(request.index_dir)  # IndexBusyError while that run still writes
        try:
            index = GraceIndex.open(request.index_dir, lock=lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        check_fingerprint(index.manifest.encoder, EncoderInfo.of(encoder), index.path)
        return index


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


def delete_sources(index_dir: Path, paths: list[str], allow_all: bool = False) -> dict[str, Any]:
    """Remove everything indexed from ``paths`` (files or folders); no model is loaded.

    Every path is checked before anything is deleted: an empty path, a path that matches nothing,
    or paths that together cover every file of the index (unless ``allow_all``) change nothing.
    """
    if any(not path.strip() for path in paths):
        raise GraceIndexError("an empty path names no file or folder; pass the files or folders to remove "
                              "from the index; nothing was deleted")
    removed: dict[str, int] = {}
    lock = writer_lock(index_dir)
    try:
        index = GraceIndex.open(Path(index_dir), lock=lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    with index:
        index.lock()
        found = {path: _matches(index, index_dir, path) for path in paths}
        chosen = {source for sources in found.values() for source in sources}
        everything = set(index.store.sources())
        if not allow_all and everything <= chosen:
            raise GraceIndexError(f"{', '.join(shown(p) for p in paths)} would remove every file of {index_dir} "
                                  f"({len(everything)} in all); nothing was deleted; to empty the whole index, add --all")
        done: set[str] = set()
        for path, sources in found.items():  # a file named by two paths is removed (and counted) once
            removed[path] = sum(index.delete_source(source) for source in sources if source not in done)
            done.update(sources)
        index.save()
        return {"removed_chunks": removed, "chunks": len(index), "files": len(index.store.file_hashes())}


def _matches(index: GraceIndex, index_dir: Path, path: str) -> list[str]:
    """The stored sources (files) that ``path`` names, as given or from the current folder; an error when none."""
    found = sorted({source for form in source_forms(path) for source in index.store.sources_under(form)})
    if not found:
        example = next(iter(index.store.file_hashes()), None)
        hint = f" (sources look like {shown(example)})" if example else " (the index is empty)"
        raise GraceIndexError(f"nothing in {index_dir} comes from {shown(path)}{hint}; nothing was deleted")
    return found


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

