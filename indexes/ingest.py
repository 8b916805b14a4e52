"""Folder ingestion: scan, diff against the index, split into chunks, embed what is missing.

Crash safety: every embedded batch is committed to the chunk store at once; a file is
marked done only after all its chunks are stored; ``index.faiss`` is rebuilt from the store
on the next open if a run was interrupted. Re-running therefore embeds only what is missing.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from grace_rag.errors import ConfigError, DataError
from grace_rag.hashing import file_digest
from grace_rag.textio import TextError, file_name, shown
from grace_rag.indexes.grace_index import GraceIndex
from grace_rag.indexes.readers import SUPPORTED_EXTENSIONS, read_document
from grace_rag.indexes.records import Chunk, EncoderInfo, check_fingerprint, content_hash
from grace_rag.indexes.scan import FolderScan, scan, why_not_a_file

logger = logging.getLogger(__name__)


@dataclass
class IngestConfig:
    """How a folder becomes chunks. ``None`` sizes follow the encoder's input length."""

    chunk_size: int | None = field(default=None, metadata={"help": "Tokens per chunk (default: half the encoder's input length)."})
    chunk_overlap: int | None = field(default=None, metadata={"help": "Tokens shared by neighbouring chunks (default: chunk size / 8)."})
    batch_size: int = field(default=8, metadata={"help": "Chunks embedded and committed together."})
    extensions: tuple[str, ...] = field(default=SUPPORTED_EXTENSIONS, metadata={"help": "File types to read."})
    max_file_mb: float = field(default=10.0, metadata={
        "help": "Files larger than this many MB, or whose text is, are skipped and listed (a megabyte of text is "
                "about 2,000 chunks to embed)."})

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.max_file_mb > 0:
            raise ConfigError(f"max_file_mb must be a positive number of megabytes, got {self.max_file_mb}")
        if self.chunk_overlap is not None and self.chunk_overlap < 0:
            raise ConfigError(f"chunk_overlap must be at least 0 tokens, got {self.chunk_overlap}")
        if self.chunk_size is not None and self.chunk_size < 16:
            raise ConfigError(f"chunk_size must be at least 16 tokens, got {self.chunk_size}")
        if self.chunk_overlap is not None and self.chunk_size is not None and not 0 <= self.chunk_overlap < self.chunk_size:
            raise ConfigError(f"chunk_overlap must be in [0, chunk_size), got {self.chunk_overlap}")


@dataclass
class IngestReport:
    """What one run did."""

    files_seen: int = 0
    files_indexed: int = 0  # new or changed files read this run
    files_unchanged: int = 0
    files_removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    chunks_added: int = 0
    chunks_updated: int = 0
    chunks_removed: int = 0
    chunks_unchanged: int = 0
    chunks_embedded: int = 0  # texts that went through the model
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        return out


class IngestProgress(Protocol):
    """What the CLI's progress bar implements; the library never prints."""

    def start(self, phase: str, total: int) -> None: ...
    def advance(self, phase: str, n: int = 1) -> None: ...


class _NoProgress:
    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, phase: str, n: int = 1) -> None:
        pass


# -- pure steps -------------------------------------------------------------------------
def default_chunk_size(max_input_tokens: int) -> int:
    """Half the encoder's input window (room for the prompt), between 64 and 512 tokens."""
    return max(64, min(512, max_input_tokens // 2))


def scan_folder(root: Path, extensions: Sequence[str]) -> list[Path]:
    """Supported files under ``root`` (recursive, sorted), skipping hidden files and folders and links."""
    return scan(Path(root), extensions).files


def files_to_index(root: Path, extensions: Sequence[str]) -> FolderScan:
    """``root`` itself (a file) or the supported files under it, and what is skipped; DataError when
    there is nothing to index."""
    if not root.exists():
        raise DataError(f"{shown(root)} does not exist; pass a folder (or file) to index")
    if file_name(root) is None:
        raise DataError(f"the path {shown(root)} is not valid UTF-8; rename it (sources are stored as text)")
    if not root.is_dir():
        reason = why_not_a_file(root, root.parent)
        if reason is not None:
            raise DataError(f"{shown(root)}: {reason}; pass a folder or a regular file")
        return FolderScan([root])
    found = scan(root, extensions)
    if not found.files:
        also = f"; {len(found.skipped)} skipped, e.g. {shown(found.skipped[0][0])}: {found.skipped[0][1]}" \
            if found.skipped else ""
        raise DataError(f"no files to index under {shown(root)} (looked for {' '.join(extensions)}, recursively{also})")
    return found


MB = 1024 * 1024


def _reason(exc: BaseException) -> str:
    """Why a file was skipped, in one line of at most 200 characters."""
    if isinstance(exc, TextError):
        return exc.detail
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    reason = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return reason if len(reason) <= 200 else reason[:199] + "…"


def _under(path: str, prefixes: Sequence[str]) -> bool:
    """Whether ``path`` is one of ``prefixes`` or lies under one of them."""
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)



@dataclass
class Plan:
    """Which files to read, which are unchanged and which disappeared."""

    to_read: list[str]
    unchanged: list[str]
    deleted: list[str]


def plan_changes(current: dict[str, str], stored: dict[str, str], root: str) -> Plan:
    """Compare {path: hash} on disk with the index's record of files under ``root``."""
    prefix = root.rstrip("/") + "/"
    to_read = [p for p, h in current.items() if stored.get(p) != h]
    unchanged = [p for p, h in current.items() if stored.get(p) == h]
    deleted = [p for p in stored if (p.startswith(prefix) or p == root) and p not in current]
    return Plan(sorted(to_read), sorted(unchanged), sorted(deleted))


#: what SentenceSplitter can split a text at (its separator and its secondary chunking regex)
_UNBREAKABLE = "[^\\s,.;\u3002\uff1f\uff01]"


def split_text(text: str, splitter: Any) -> list[str]:
    """The splitter's pieces of ``text``, after cutting every run of a chunk's width or more with nothing the
    splitter can break at (no space, no punctuation: a long base64 line, a minified blob) into pieces of that
    width: the splitter would split such a run into single characters, in quadratic time and memory."""
    width = int(getattr(splitter, "chunk_size", 256))
    pieces, start = [], 0
    for run in re.finditer(f"{_UNBREAKABLE}{{{width},}}", text):
        before = text[start:run.start()]
        pieces += splitter.split_text(before) if before.strip() else []
        pieces += [run.group()[i:i + width] for i in range(0, len(run.group()), width)]
        start = run.end()
    rest = text[start:]
    pieces += splitter.split_text(rest) if rest.strip() else []
    return pieces


def make_chunks(source: str, text: str, splitter: Any) -> list[Chunk]:
    """Split one document; chunk ids are ``source#position``."""
    pieces = [p for p in split_text(text, splitter) if p.strip()]
    name = Path(source)
    return [
        Chunk(id=f"{source}#{i}", text=piece, source=source, position=i,
              metadata={"file_name": name.name, "extension": name.suffix.lower(), "position": i})
        for i, piece in enumerate(pieces)
    ]


def build_splitter(encoder: Any, config: IngestConfig) -> Any:
    """LlamaIndex's SentenceSplitter counting tokens with the encoder's own tokenizer."""
    from llama_index.core.node_parser import SentenceSplitter

    max_input = getattr(getattr(encoder, "config", None), "max_input_tokens", 512)
    size = config.chunk_size or default_chunk_size(max_input)
    overlap = config.chunk_overlap if config.chunk_overlap is not None else size // 8
    if overlap >= size:
        raise ConfigError(f"chunk_overlap ({overlap}) must be smaller than chunk_size ({size})")
    tokenizer = getattr(getattr(encoder, "backbone", None), "tokenizer", None)
    count: Callable[[str], list] | None = (lambda t: tokenizer.encode(t, add_special_tokens=False)) if tokenizer else None
    return SentenceSplitter(chunk_size=size, chunk_overlap=overlap, tokenizer=count)


# -- the stateful run -------------------------------------------------------------------
class Indexer:
    """Bring an index up to date with a folder, embedding only new or changed chunks.

    The encoder can be given, or loaded on demand by ``load_encoder`` (a zero-argument
    callable): an unchanged folder then finishes without loading a model, since the files'
    hashes decide what needs embedding. A loaded encoder must match the index's fingerprint.
    """

    def __init__(self, index: GraceIndex, encoder: Any = None, config: IngestConfig | None = None,
                 progress: IngestProgress | None = None, *, load_encoder: Callable[[], Any] | None = None) -> None:
        if encoder is None and load_encoder is None:
            raise ConfigError("Indexer needs an encoder or a load_encoder callable")
        self.index = index
        self.config = config or IngestConfig()
        self.progress = progress or _NoProgress()
        self._encoder: Any = None
        self._load_encoder = load_encoder
        self._splitter: Any = None
        if encoder is not None:
            self._adopt(encoder)

    @property
    def encoder(self) -> Any:
        """The encoder, loaded (and checked against the index) on first use."""
        if self._encoder is None:
            self._adopt(self._load_encoder())
        return self._encoder

    @property
    def splitter(self) -> Any:
        """The chunk splitter (it counts tokens with the encoder's tokenizer, so it loads the encoder)."""
        if self._encoder is None:
            self._adopt(self._load_encoder())
        return self._splitter

    def _adopt(self, encoder: Any) -> None:
        check_fingerprint(self.index.manifest.encoder, EncoderInfo.of(encoder), self.index.path)
        self._encoder = encoder
        self._splitter = build_splitter(encoder, self.config)

    def run(self, root: Path) -> IngestReport:
        started, report = time.perf_counter(), IngestReport()
        root = Path(root).resolve()
        found = files_to_index(root, self.config.extensions)
        for path, reason in found.skipped:
            self._skip(report, shown(path), reason)
        current = self._digests(found.files, report)
        report.files_seen = len(found.files) + len(found.skipped)
        plan = plan_changes(current, self.index.store.file_hashes(), root.as_posix())
        present = {path.as_posix() for path in found.files}
        kept = [path for path, _ in found.skipped]  # a link, a folder that cannot be read now: not deleted
        plan.deleted = [p for p in plan.deleted if p not in present and not _under(p, kept)]
        report.files_unchanged = len(plan.unchanged)
        documents = self._read(plan.to_read, report)
        self._embed_missing(documents, report)  # before deletions: a moved file reuses its vectors
        for path in plan.deleted:
            report.chunks_removed += self._forget(path)
        report.files_removed = len(plan.deleted)
        for source, chunks in documents.items():
            removed = self.index.store.finish_file(source, current[source], [c.id for c in chunks])
            self.index.remove_vectors(removed)
            report.chunks_removed += len(removed)
        self.index.save()
        report.seconds = time.perf_counter() - started
        return report

    def _digests(self, files: list[Path], report: IngestReport) -> dict[str, str]:
        """{path: content hash} of the files that can be read, are not too large, and whose names are text."""
        current, limit = {}, self.config.max_file_mb * MB
        for path in files:
            name = file_name(path)
            try:
                if name is None:
                    raise TextError(path, "the file name is not valid UTF-8; rename the file to index it")
                if path.stat().st_size > limit:
                    self._skip(report, shown(path), self._too_large(path.stat().st_size, "bytes"))
                    continue
                current[name] = file_digest(path)
            except (OSError, TextError) as exc:
                self._skip(report, shown(path), _reason(exc))
        return current

    def _too_large(self, size: int, unit: str) -> str:
        return (f"{size / MB:,.1f} MB of {unit}, over the {self.config.max_file_mb:g} MB limit for one file "
                "(--max-file-mb)")

    def _forget(self, path: str) -> int:
        removed = self.index.store.forget_file(path)
        self.index.remove_vectors(removed)
        return len(removed)

    def _read(self, paths: list[str], report: IngestReport) -> dict[str, list[Chunk]]:
        splitter = self.splitter if paths else None  # loads the model, outside the per-file error handling
        self.progress.start("reading", len(paths))
        documents = {}
        for path in paths:
            try:
                text = read_document(Path(path))
                if len(text) > self.config.max_file_mb * MB:  # a small PDF or DOCX can hold much text
                    self._skip(report, path, self._too_large(len(text), "text"))
                else:
                    documents[path] = make_chunks(path, text, splitter)
            except Exception as exc:  # any reader failure skips the file, never the run
                self._skip(report, path, _reason(exc.__cause__ or exc))
            self.progress.advance("reading")
        report.files_indexed = len(documents)
        return documents

    def _skip(self, report: IngestReport, path: str, reason: str) -> None:
        logger.warning("skipping %s (%s)", path, reason)
        report.skipped.append((path, reason))

    def _pending(self, documents: dict[str, list[Chunk]], report: IngestReport) -> list[Chunk]:
        """The chunks not stored with their current text (new or changed), counted in ``report``."""
        chunks = [c for cs in documents.values() for c in cs]
        stored = self.index.store.stored_hashes([c.id for c in chunks])
        todo = [c for c in chunks if stored.get(c.id) != c.content_hash]
        report.chunks_unchanged = len(chunks) - len(todo)
        report.chunks_updated = sum(1 for c in todo if c.id in stored)
        report.chunks_added = len(todo) - report.chunks_updated
        return todo

    def _embed_missing(self, documents: dict[str, list[Chunk]], report: IngestReport) -> None:
        todo = self._pending(documents, report)
        self.progress.start("embedding", len(todo))
        for start in range(0, len(todo), self.config.batch_size):
            batch = todo[start : start + self.config.batch_size]
            vectors = self._vectors(batch, report)
            self.index.upsert(batch, vectors)  # one committed transaction per batch
            self.progress.advance("embedding", len(batch))

    def _vectors(self, batch: list[Chunk], report: IngestReport) -> np.ndarray:
        """Vectors for a batch, reusing those of identical texts already in the store."""
        known = self.index.store.embedded([c.content_hash for c in batch])
        missing = [c for c in batch if c.content_hash not in known]
        if missing:
            texts = list(dict.fromkeys(c.text for c in missing))
            encoding = self.encoder.encode(texts, role="document")
            report.chunks_embedded += len(texts)
            for text, vector, rationale in zip(texts, encoding.vectors, encoding.rationales):
                known[content_hash(text)] = (vector, rationale)
        for chunk in batch:
            chunk.rationale = known[chunk.content_hash][1]
        return np.stack([known[c.content_hash][0] for c in batch])
