"""Training data: triplet JSONL, BEIR folders (BM25 hard negatives) and plain corpora, validated."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grace_rag.errors import DataError
from grace_rag.jsonl import read_jsonl
from grace_rag.textio import read_lines

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Triplet:
    """A query, one relevant passage and one or more non-relevant passages."""

    query: str
    positive: str
    negatives: tuple[str, ...]



def _text_field(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        raise DataError(f"{where}: missing field {key!r} (fields present: {', '.join(sorted(obj)) or 'none'})")
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: field {key!r} is empty")
    return value


def _negatives(obj: dict[str, Any], where: str) -> tuple[str, ...]:
    """The ``negative`` field (a string or a list of strings); a pair without one has none."""
    value = obj.get("negative", obj.get("negatives"))
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise DataError(f"{where}: field 'negative' must be a string or a non-empty list of strings "
                        "(leave it out for a pair without a negative)")
    for n, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise DataError(f"{where}: negative #{n + 1} must be a non-empty string")
    return tuple(items)


def load_triplets(path: str | Path) -> list[Triplet]:
    """Read ``{"query", "positive"[, "negative"]}`` JSONL; ``negative`` is a string or a list, or absent
    (a pair: its negatives come from the batch, or from ``mine_negatives``)."""
    path = Path(path)
    triplets = []
    for lineno, obj in read_jsonl(path):
        where = f"{path}:{lineno}"
        triplets.append(Triplet(_text_field(obj, "query", where), _text_field(obj, "positive", where),
                                _negatives(obj, where)))
    if not triplets:
        raise DataError(f"{path}: no training pairs found (expected JSONL lines with query, positive "
                        "and optionally negative)")
    log.info("loaded %d triplets from %s", len(triplets), path)
    return triplets


def beir_triplets(folder: str | Path, split: str = "train", negatives_per_query: int = 1) -> list[Triplet]:
    """Triplets from a BEIR folder: each relevant (query, doc) pair with the top BM25 non-relevant docs."""
    import bm25s

    from grace_rag.evaluation.datasets import load_beir

    dataset = load_beir(folder, split)
    corpus, queries, qrels = dataset.corpus, dataset.queries, dataset.qrels
    doc_ids = list(corpus)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([corpus[d] for d in doc_ids], stopwords="en", show_progress=False),
                    show_progress=False)
    qids = [q for q in qrels if q in queries and any(s > 0 for s in qrels[q].values())]
    if not qids:
        raise DataError(f"{folder}: no query of split {split!r} has a relevant document")
    k = min(len(doc_ids), negatives_per_query + max(len(qrels[q]) for q in qids))
    hits, _ = retriever.retrieve(bm25s.tokenize([queries[q] for q in qids], stopwords="en", show_progress=False),
                                 k=k, show_progress=False)
    triplets = []
    for row, qid in zip(hits, qids):
        relevant = {d for d, s in qrels[qid].items() if s > 0}
        negatives = tuple(corpus[doc_ids[j]] for j in row if doc_ids[j] not in relevant)[:negatives_per_query]
        if not negatives:
            continue
        for doc in sorted(relevant):
            if doc not in corpus:
                raise DataError(f"{folder}: qrels of {split!r} name document {doc!r} absent from corpus.jsonl")
            triplets.append(Triplet(queries[qid], corpus[doc], negatives))
    log.info("built %d triplets with BM25 negatives from %s (%s)", len(triplets), folder, split)
    return triplets


def load_texts(path: str | Path) -> list[str]:
    """Unsupervised corpus: a text file (one passage per line), JSONL with ``text``, a BEIR
    folder (its corpus.jsonl), or a folder read as ``grace-rag index`` reads it (every
    supported file is one passage; .jsonl files there give one passage per line)."""
    path = Path(path)
    if path.is_dir():
        texts = _folder_texts(path)
    elif path.suffix.lower() == ".jsonl":
        texts = _jsonl_texts(path)
    elif path.is_file():
        texts = [line.strip() for _, line in read_lines(path) if line.strip()]  # bad bytes: file:line
    else:
        raise DataError(f"{path}: no such file or folder")
    if not texts:
        raise DataError(f"{path}: no non-empty passages found")
    log.info("loaded %d passages from %s", len(texts), path)
    return texts


def _folder_texts(root: Path) -> list[str]:
    if (root / "corpus.jsonl").is_file():
        from grace_rag.evaluation.datasets import read_corpus

        return list(read_corpus(root / "corpus.jsonl").values())
    from grace_rag.indexes.ingest import scan_folder
    from grace_rag.indexes.readers import SUPPORTED_EXTENSIONS, read_document

    texts: list[str] = []
    for file in scan_folder(root, (*SUPPORTED_EXTENSIONS, ".jsonl")):
        if file.suffix.lower() == ".jsonl":
            texts.extend(_jsonl_texts(file))
            continue
        try:
            body = read_document(file).strip()
        except (OSError, ValueError) as exc:
            raise DataError(f"{file}: cannot be read ({exc})") from None
        if body:
            texts.append(body)
    return texts


def _jsonl_texts(path: Path) -> list[str]:
    return [_text_field(obj, "text", f"{path}:{n}") for n, obj in read_jsonl(path)]


def load_sts_pairs(path: str | Path, min_score: float = 4.0) -> list[Triplet]:
    """STS TSV (``score<TAB>sentence1<TAB>sentence2``, scores 0-5) as pairs: the sentence pairs scored
    at least ``min_score`` (near-paraphrases), without negatives."""
    from grace_rag.evaluation.datasets import load_sts

    dataset = load_sts(path)
    pairs = [Triplet(a, b, ()) for (a, b), score in zip(dataset.pairs, dataset.scores)
             if score >= min_score and a.strip() and b.strip()]
    if not pairs:
        raise DataError(f"{path}: no sentence pair scores {min_score} or more; nothing to train on")
    log.info("loaded %d STS pairs scored >= %s from %s", len(pairs), min_score, path)
    return pairs


def load_supervised(path: str | Path, negatives_per_query: int = 1) -> list[Triplet]:
    """Pairs or triplets from a JSONL file, an STS ``.tsv`` file (pairs scored >= 4), or built from a
    BEIR folder (train split, BM25 negatives)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return beir_triplets(path, "train", negatives_per_query)
    if path.suffix.lower() == ".tsv":
        return load_sts_pairs(path)
    return load_triplets(path)
