"""Load evaluation data: BEIR retrieval folders and STS TSV files, rejecting malformed input.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id corpus-id score``). An STS file is
``score<TAB>sentence1<TAB>sentence2`` with an optional header line. Every problem raises a
:class:`~grace_rag.errors.DataError` naming ``file:line`` and what is wrong.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grace_rag.errors import DataError
from grace_rag.jsonl import read_jsonl
from grace_rag.textio import read_lines

logger = logging.getLogger(__name__)

Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class BeirDataset:
    """A retrieval dataset: documents, the queries of one split, and their relevance judgements.

    ``corpus`` maps a document id to ``title + " " + text`` (the MTEB convention);
    ``queries`` holds only the queries judged in ``qrels``. ``subset`` describes the
    subset this dataset was cut down to (see :mod:`grace_rag.evaluation.subset`), or is
    ``None`` for the full split.
    """

    name: str
    split: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: Qrels
    subset: dict[str, Any] | None = None

    def with_subset(self, corpus: dict[str, str], queries: dict[str, str], qrels: Qrels,
                    subset: dict[str, Any]) -> BeirDataset:
        """A copy restricted to the given documents and queries, recording the subset."""
        return replace(self, corpus=corpus, queries=queries, qrels=qrels, subset=subset)


@dataclass(frozen=True)
class StsDataset:
    """Sentence pairs with gold similarity scores (STS-B: 0 to 5)."""

    name: str
    split: str
    pairs: list[tuple[str, str]]
    scores: list[float]
    subset: dict[str, Any] | None = field(default=None)


def _fail(path: Path, line: int, what: str) -> DataError:
    return DataError(f"{path}:{line}: {what}")


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a BEIR JSON Lines file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; a BEIR dataset folder needs corpus.jsonl, "
                        "queries.jsonl and qrels/<split>.tsv")
    yield from read_jsonl(path)


def _string_field(record: dict[str, Any], key: str, path: Path, line: int,
                  required: bool = True) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise _fail(path, line, f"field {key!r} must be a string, got {value!r}")
    return str(value)


def _read_texts(path: Path, with_title: bool) -> dict[str, str]:
    """Read ``_id -> text`` from corpus.jsonl (title + text) or queries.jsonl (text)."""
    texts: dict[str, str] = {}
    for line, record in _jsonl_records(path):
        doc_id = _string_field(record, "_id", path, line)
        text = _string_field(record, "text", path, line)
        if with_title:
            title = _string_field(record, "title", path, line, required=False)
            text = f"{title} {text}".strip()
        if doc_id in texts:
            raise _fail(path, line, f"duplicate _id {doc_id!r}")
        texts[doc_id] = text
    if not texts:
        raise DataError(f"{path}: no records; the file is empty")
    return texts


def read_corpus(path: str | Path) -> dict[str, str]:
    """A BEIR ``corpus.jsonl``: {id: title + " " + text}."""
    return _read_texts(Path(path), with_title=True)


def _read_qrels(path: Path) -> list[tuple[int, str, str, int]]:
    """Read ``(line, query id, doc id, score)`` rows, skipping a ``query-id`` header."""
    rows = []
    for number, line in read_lines(path):
        if not line.strip() or (number == 1 and line.lower().startswith("query-id")):
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise _fail(path, number, f"expected 3 tab-separated columns "
                                      f"(query-id, corpus-id, score), got {len(parts)}")
        try:
            score = int(parts[2])
        except ValueError:
            raise _fail(path, number, f"score must be an integer, got {parts[2]!r}") from None
        rows.append((number, parts[0], parts[1], score))
    return rows


def _qrels_path(folder: Path, split: str) -> Path:
    path = folder / "qrels" / f"{split}.tsv"
    if not path.is_file():
        found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        hint = f"available splits: {', '.join(found)}" if found else "no qrels/*.tsv found"
        raise DataError(f"{path}: split {split!r} not found ({hint}); choose one with --split")
    return path


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    """Load a BEIR dataset folder, keeping the queries judged in ``qrels/<split>.tsv``."""
    folder = Path(folder)
    qrels_path = _qrels_path(folder, split)
    corpus = _read_texts(folder / "corpus.jsonl", with_title=True)
    all_queries = _read_texts(folder / "queries.jsonl", with_title=False)
    qrels: Qrels = {}
    for line, query_id, doc_id, score in _read_qrels(qrels_path):
        if query_id not in all_queries:
            raise _fail(qrels_path, line, f"query id {query_id!r} is not in queries.jsonl")
        if doc_id not in corpus:
            raise _fail(qrels_path, line, f"corpus id {doc_id!r} is not in corpus.jsonl")
        qrels.setdefault(query_id, {})[doc_id] = score
    if not qrels:
        raise DataError(f"{qrels_path}: no relevance judgements in this split")
    unjudged = [qid for qid, judged in qrels.items() if not any(score > 0 for score in judged.values())]
    if len(unjudged) == len(qrels):
        raise DataError(f"{qrels_path}: no positive judgement (score > 0) in this split, so every metric would be 0; "
                        "mark the relevant documents with a score of 1 or more")
    if unjudged:
        logger.warning("%s: %d of %d queries have no positive judgement (score > 0); they score 0 on every metric",
                       qrels_path, len(unjudged), len(qrels))
    queries = {qid: all_queries[qid] for qid in sorted(qrels)}
    logger.info("loaded %s/%s: %d documents, %d queries", folder.name, split,
                len(corpus), len(queries))
    return BeirDataset(name=folder.name, split=split, corpus=corpus, queries=queries, qrels=qrels)


def _parse_sts_line(path: Path, number: int, line: str) -> tuple[float, str, str]:
    parts = line.split("\t")
    if len(parts) != 3:
        raise _fail(path, number, f"expected 3 tab-separated columns "
                                  f"(score, sentence1, sentence2), got {len(parts)}")
    try:
        score = float(parts[0])
    except ValueError:
        raise _fail(path, number, f"score must be a number, got {parts[0]!r}") from None
    if not math.isfinite(score):
        raise _fail(path, number, f"score must be finite, got {parts[0]!r}")
    return score, parts[1], parts[2]


def load_sts(path: str | Path, name: str | None = None) -> StsDataset:
    """Load an STS TSV file (``score<TAB>sentence1<TAB>sentence2``, optional header)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: STS file not found")
    pairs: list[tuple[str, str]] = []
    scores: list[float] = []
    for number, line in read_lines(path):
        if not line.strip() or (number == 1 and line.lower().startswith("score\t")):
            continue
        score, first, second = _parse_sts_line(path, number, line)
        pairs.append((first, second))
        scores.append(score)
    if len(pairs) < 2:
        raise DataError(f"{path}: needs at least 2 sentence pairs to compute a correlation")
    split = path.stem.rsplit("-", 1)[-1]
    return StsDataset(name=name or path.parent.name, split=split, pairs=pairs, scores=scores)


def load_dataset(path: str | Path, split: str = "test") -> BeirDataset | StsDataset:
    """Load a BEIR folder, an STS ``.tsv`` file, or a folder holding ``sts-<split>.tsv``."""
    path = Path(path)
    if path.is_file() and path.suffix == ".tsv":
        return load_sts(path)
    if (path / "corpus.jsonl").is_file():
        return load_beir(path, split)
    sts_files = sorted(path.glob("*.tsv")) if path.is_dir() else []
    if sts_files:
        wanted = [p for p in sts_files if p.stem.endswith(f"-{split}") or p.stem == split]
        if not wanted:
            names = ", ".join(p.name for p in sts_files)
            raise DataError(f"{path}: no STS file for split {split!r} (found {names}); "
                            "choose one with --split")
        return load_sts(wanted[0], name=path.name)
    raise DataError(f"{path}: not a dataset; expected a BEIR folder (corpus.jsonl, "
                    "queries.jsonl, qrels/) or an STS .tsv file")
