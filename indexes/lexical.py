"""The lexical half of an index: BM25 (bm25s) over chunk texts, saved without pickle beside index.faiss.

Texts are lower-cased, split into words, stripped of English stop words (NLTK's list as bm25s
ships it, ``en_plus``: it drops question words such as "does", "what" and "how" too, which
bm25s's default 33-word list kept; ``benchmarks/stopwords.py`` measured it on five dev sets) and
stemmed with the Snowball English stemmer (PyStemmer). The saved form is bm25s's own
(``BM25.save(..., allow_pickle=False)``: three ``.npy`` arrays and two JSON files) plus
``fids.npy``, the chunk-store id of each BM25 document, and ``settings.json`` (how the texts were
tokenized: a folder made with other settings, or before the file existed, is rebuilt). bm25s
cannot add or remove documents in place, so the index is rebuilt from the chunk store after changes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from grace_rag.indexes.files import LEXICAL_DIR, apply_modes, directory_digest  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

FIDS_FILE = "fids.npy"
SETTINGS_FILE = "settings.json"
STEMMER = "english"
#: bm25s's name for NLTK's English stop words (179); "en", its default 33, was used before (and by
#: the evaluation's BM25 baseline): mean nDCG@10 over five dev sets 0.7906 -> 0.7943, SQuAD's
#: questions 0.8569 -> 0.8684 (benchmarks/stopwords.py)
STOPWORDS = "en_plus"
K1, B = 1.5, 0.75  # bm25s defaults (Robertson et al.), as in the evaluation baseline
SETTINGS = {"method": "bm25s", "k1": K1, "b": B, "stemmer": STEMMER, "stopwords": STOPWORDS}
LEGACY_SETTINGS = {**SETTINGS, "stopwords": "en"}  # a lexical/ folder without settings.json


class LexicalText(str, Enum):
    """What BM25 indexes for each chunk (an index setting, recorded in manifest.json and chunks.sqlite)."""

    TEXT = "text"  # the chunk's text
    TEXT_AND_RATIONALE = "text+rationale"  # the text and the rationale its vector was built from


#: The chunk text alone, because text + rationale does not help on every dev set. With the default model
#: (the base writes, benchmarks/out/dev/s-cand-a-100-w128/fusion.json) it lifts hybrid search at alpha 0.4
#: to 0.871 mean against 0.866 but costs SQuAD 0.012 and BM25 alone on SNLI 0.018; with the previous default,
#: whose rationales were noise, it hurt hybrid search (mean 0.849 against 0.855 at alpha 0.3).
#: benchmarks/fusion_dev.py measures both for a model.
DEFAULT_LEXICAL_TEXT = LexicalText.TEXT


class LexicalDamage(Exception):
    """The saved lexical index cannot be used (missing, stale or corrupted); it is rebuilt."""


class LexicalOutdated(LexicalDamage):
    """The saved lexical index was tokenized with other settings (an older grace-rag): it is rebuilt."""


def import_bm25s() -> Any:
    """bm25s (checking PyStemmer too), with its import-time DEBUG logging turned down."""
    try:
        import bm25s
        import Stemmer  # noqa: F401  (PyStemmer)
    except ImportError:  # pragma: no cover - both are dependencies
        raise ImportError("lexical search needs bm25s and PyStemmer: pip install bm25s PyStemmer") from None
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on import: its chatter reached CLI users
    return bm25s


def tokenize(texts: Sequence[str], stopwords: str | Sequence[str] = STOPWORDS) -> list[list[str]]:
    """Stemmed, stopword-free word lists (an empty text gives ``[""]``, bm25s's empty token)."""
    import_bm25s()
    import Stemmer
    from bm25s.tokenization import Tokenizer

    tokenizer = Tokenizer(stemmer=Stemmer.Stemmer(STEMMER), stopwords=stopwords)
    return tokenizer.tokenize(list(texts), return_as="string", update_vocab=True, show_progress=False)


def top_positive(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and values of the ``k`` best strictly positive scores, best first (stable on ties)."""
    candidates = np.flatnonzero(scores > 0)
    order = candidates[np.argsort(-scores[candidates], kind="stable")][:k]
    return order, scores[order]


class LexicalIndex:
    """BM25 over a fixed set of chunks, identified by their chunk-store ids (``fids``)."""

    def __init__(self, model: Any, fids: np.ndarray, revision: int, stopwords: str | Sequence[str] = STOPWORDS,
                 text: LexicalText = DEFAULT_LEXICAL_TEXT) -> None:
        self.model = model  # a bm25s.BM25, or None for an empty corpus
        self.fids = np.asarray(fids, dtype=np.int64)
        self.revision = revision  # the chunk-store revision these texts were read at
        self.stopwords = stopwords  # queries are tokenized as the texts were
        self.text = LexicalText(text)  # what was indexed for each chunk

    @classmethod
    def build(cls, fids: Sequence[int], texts: Sequence[str], revision: int,
              stopwords: str | Sequence[str] = STOPWORDS, text: LexicalText = DEFAULT_LEXICAL_TEXT) -> "LexicalIndex":
        """Tokenize and index ``texts`` (one per chunk id; ``text`` says what they hold)."""
        if not len(texts):
            return cls(None, np.zeros(0, np.int64), revision, stopwords, text)
        model = import_bm25s().BM25(k1=K1, b=B)
        model.index(tokenize(texts, stopwords), show_progress=False)
        return cls(model, np.asarray(fids, np.int64), revision, stopwords, text)

    def __len__(self) -> int:
        return len(self.fids)

    def settings(self) -> dict[str, Any]:
        """How this index tokenizes and scores (saved beside it)."""
        stopwords = self.stopwords if isinstance(self.stopwords, str) else sorted(self.stopwords)
        return {**SETTINGS, "stopwords": stopwords, "text": self.text.value}

    def search(self, text: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The ``k`` best chunks for ``text`` as ``(fid, BM25 score)``; only those sharing a word with it.

        ``allowed`` restricts the result to those chunk ids (a metadata filter).
        """
        if self.model is None or k <= 0:
            return []
        ids = self.model.get_tokens_ids([t for t in tokenize([text], self.stopwords)[0] if t])
        if not ids:
            return []
        scores = np.asarray(self.model.get_scores_from_ids(ids), dtype=np.float32)  # (N,)
        if allowed is not None:
            scores = np.where(np.isin(self.fids, allowed), scores, 0.0)
        positions, values = top_positive(scores, k)
        return [(int(self.fids[p]), float(v)) for p, v in zip(positions, values)]

    # -- on disk ------------------------------------------------------------------------
    def save(self, index_dir: Path) -> str:
        """Write ``index_dir/lexical`` (replacing any old one); return its content digest."""
        index_dir = Path(index_dir)
        tmp = Path(tempfile.mkdtemp(prefix=".lexical-new-", dir=index_dir))
        try:
            if self.model is not None:
                self.model.save(tmp, allow_pickle=False, show_progress=False)
            np.save(tmp / FIDS_FILE, self.fids, allow_pickle=False)
            (tmp / SETTINGS_FILE).write_text(json.dumps(self.settings(), sort_keys=True) + "\n")
            apply_modes([tmp, *tmp.iterdir()])  # mkdtemp makes 0700; index files follow the user's umask
            for path in tmp.iterdir():
                _fsync(path)
            digest = directory_digest(tmp)
            target = index_dir / LEXICAL_DIR
            if target.exists():
                target.rename(Path(tempfile.mkdtemp(prefix=".lexical-old-", dir=index_dir)) / "old")
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        remove_leftovers(index_dir)
        return digest

    @classmethod
    def load(cls, index_dir: Path, digest: str, revision: int, count: int,
             text: LexicalText = DEFAULT_LEXICAL_TEXT) -> "LexicalIndex":
        """Read ``index_dir/lexical``; LexicalDamage if it is missing, altered, does not hold ``count`` chunks
        or indexed something else than ``text``."""
        folder = Path(index_dir) / LEXICAL_DIR
        if not (folder / FIDS_FILE).is_file():
            raise LexicalDamage("missing")
        try:
            if directory_digest(folder) != digest:
                raise LexicalDamage("its files do not match manifest.json")
            settings = json.loads((folder / SETTINGS_FILE).read_text()) if (folder / SETTINGS_FILE).is_file() \
                else LEGACY_SETTINGS
            wanted = {**SETTINGS, "text": LexicalText(text).value}
            settings = {"text": LexicalText.TEXT.value, **settings}  # written before the setting existed
            if settings != wanted:
                changed = ", ".join(f"{k} {settings.get(k)!r} (now {v!r})" for k, v in wanted.items()
                                    if settings.get(k) != v)
                raise LexicalOutdated(f"tokenized with other settings ({changed})")
            fids = np.load(folder / FIDS_FILE, allow_pickle=False)
            model = import_bm25s().BM25.load(folder, allow_pickle=False, show_progress=False) if len(fids) else None
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise LexicalDamage(f"unreadable: {type(exc).__name__}") from None
        documents = model.scores["num_docs"] if model is not None else 0
        if fids.ndim != 1 or len(fids) != documents or len(fids) != count:
            raise LexicalDamage(f"it holds {len(fids)} chunks, the chunk store {count}")
        return cls(model, fids, revision, text=text)


def remove_leftovers(index_dir: Path) -> None:
    """Delete the temporary lexical folders of a save that was killed half-way."""
    for leftover in Path(index_dir).glob(".lexical-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_revision(saved: int, current: int) -> None:
    """LexicalDamage when the saved lexical index reflects an older chunk store."""
    if saved < 0:
        raise LexicalDamage("absent (index written before hybrid search)")
    if saved != current:
        raise LexicalDamage("older than chunks.sqlite")

