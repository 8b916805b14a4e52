"""manifest.json: what an index directory holds, read and written atomically as JSON."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grace_rag.errors import GraceIndexError
from grace_rag.indexes.factory import AUTO, SearchParams
from grace_rag.indexes.files import file_mode
from grace_rag.indexes.lexical import DEFAULT_LEXICAL_TEXT, LexicalText
from grace_rag.indexes.lexical import SETTINGS as LEXICAL_SETTINGS
from grace_rag.indexes.records import EncoderInfo

FORMAT = "grace-rag-index"
FORMAT_VERSION = 1


class ManifestDamage(GraceIndexError):
    """manifest.json is missing, empty, truncated or malformed: it is recreated from chunks.sqlite."""


@dataclass
class Manifest:
    """The human-readable description of an index; chunks.sqlite stays the source of truth."""

    encoder: EncoderInfo
    factory_request: str = AUTO  # "auto" or a forced FAISS factory string
    factory: str = "Flat"  # the factory string of the current index.faiss
    search: SearchParams = field(default_factory=SearchParams)
    metric: str = "inner_product"
    faiss_revision: int = -1  # chunk-store revision that index.faiss reflects
    faiss_bytes: int = 0
    faiss_digest: str = ""  # checksum of index.faiss (files.checksum); "" in indexes written before it
    lexical_revision: int = -1  # chunk-store revision that lexical/ reflects (-1: none yet)
    lexical_digest: str = ""  # content hash of the files in lexical/
    lexical_text: LexicalText = DEFAULT_LEXICAL_TEXT  # what BM25 indexes per chunk (also in the store's meta)
    counts: dict[str, int] = field(default_factory=dict)
    recreated: bool = field(default=False, compare=False)  # rebuilt from chunks.sqlite in this process (not saved)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "encoder": self.encoder.to_dict(),
            "dimension": self.encoder.dimension,
            "metric": self.metric,
            "factory_request": self.factory_request,
            "factory": self.factory,
            "search": self.search.to_dict(),
            "faiss_revision": self.faiss_revision,
            "faiss_bytes": self.faiss_bytes,
            "faiss_digest": self.faiss_digest,
            "lexical": {"revision": self.lexical_revision, "digest": self.lexical_digest, **LEXICAL_SETTINGS,
                        "text": self.lexical_text.value},
            "counts": self.counts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path) -> "Manifest":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ManifestDamage(f"{path} is not a grace-rag manifest (no \"format\": \"{FORMAT}\")")
        if data.get("format_version") != FORMAT_VERSION:
            raise GraceIndexError(
                f"{path} has index format version {data.get('format_version')!r}; this grace-rag reads version "
                f"{FORMAT_VERSION}: upgrade grace-rag (pip install -U grace-rag) to read it, or, if the file was edited "
                f"by hand, delete only {path.name}: it is recreated from chunks.sqlite"
            )
        try:
            if "dimension" in data and data["dimension"] != data["encoder"]["dimension"]:
                raise ValueError(f"dimension {data['dimension']!r} differs from encoder.dimension "
                                 f"{data['encoder']['dimension']!r}")
            return cls(
                encoder=EncoderInfo.from_dict(data["encoder"]),
                factory_request=str(data["factory_request"]),
                factory=str(data["factory"]),
                search=SearchParams.from_dict(data.get("search", {})),
                metric=str(data.get("metric", "inner_product")),
                faiss_revision=int(data.get("faiss_revision", -1)),
                faiss_bytes=int(data.get("faiss_bytes", 0)),
                faiss_digest=str(data.get("faiss_digest", "")),
                lexical_revision=int(data.get("lexical", {}).get("revision", -1)),  # absent before hybrid search
                lexical_digest=str(data.get("lexical", {}).get("digest", "")),
                lexical_text=LexicalText(data.get("lexical", {}).get("text", LexicalText.TEXT.value)),
                counts={k: int(v) for k, v in data.get("counts", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestDamage(f"{path} has a missing or malformed field ({type(exc).__name__}: {exc})") from None


def read_manifest(path: Path) -> Manifest:
    """Parse manifest.json: ManifestDamage when it is missing or unreadable, GraceIndexError for another version."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestDamage(f"{path} is missing") from None
    except OSError as exc:
        raise GraceIndexError(f"cannot read {path} ({exc.strerror or exc})") from None
    if not data.strip():
        raise ManifestDamage(f"{path} is empty ({len(data)} bytes)")
    try:
        return Manifest.from_dict(json.loads(data.decode("utf-8")), path)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ManifestDamage(f"{path} is not valid JSON ({str(exc)[:120]})") from None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old or the new content, never a mix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; index files follow the user's umask
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def sync_directory(path: Path) -> None:
    """fsync a directory so a rename in it survives a power loss (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_manifest(path: Path, manifest: Manifest) -> None:
    atomic_write_bytes(path, (json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8"))
