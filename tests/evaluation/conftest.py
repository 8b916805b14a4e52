"""Shared fixtures for the evaluation tests: small BEIR folders and STS files on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

TOPICS = ["protein folding", "interest rates", "river flood", "solar panel", "chess opening",
          "vaccine trial", "coral reef", "bread baking", "jet engine", "tax policy"]
FILLER = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def write_beir(folder: Path, corpus: list[dict], queries: list[dict], qrels: list[tuple],
               split: str = "test") -> Path:
    """Write a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (folder / "qrels" / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    """10 topical queries, each with 2 positives, plus 80 filler documents."""
    rng = np.random.default_rng(0)
    corpus, queries, qrels = [], [], []
    for i, topic in enumerate(TOPICS):
        queries.append({"_id": f"q{i}", "text": f"what is known about {topic}"})
        for j in range(2):
            corpus.append({"_id": f"pos{i}-{j}", "title": topic,
                           "text": f"a study of {topic} number {j}"})
            qrels.append((f"q{i}", f"pos{i}-{j}", 1))
        corpus.append({"_id": f"near{i}", "title": "", "text": f"{topic.split()[0]} remarks"})
    for k in range(80):
        words = rng.choice(FILLER, size=4)
        corpus.append({"_id": f"fill{k:02d}", "title": "", "text": " ".join(words)})
    return write_beir(tmp_path / "toy", corpus, queries, qrels)


@pytest.fixture
def sts_file(tmp_path: Path) -> Path:
    path = tmp_path / "sts" / "sts-dev.tsv"
    path.parent.mkdir()
    rows = ["score\tsentence1\tsentence2",
            "5.0\tA man is playing a guitar.\tA man plays the guitar.",
            "0.0\tA cat sleeps.\tInterest rates rose sharply.",
            "3.2\tA woman is cooking.\tA woman is preparing food.",
            "1.0\tThe river flooded.\tA dog runs in a park."]
    path.write_text("\n".join(rows) + "\n")
    return path


class BagOfWordsEmbedder:
    """A deterministic embedder for tests: hashed bag of words, L2-normalised."""

    dimension = 64
    model_name = "bag-of-words"
    fingerprint = "bow0"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def _embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, sum(map(ord, word)) % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        self.calls.append(("query", len(texts)))
        return self._embed(texts)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        self.calls.append(("document", len(texts)))
        return self._embed(texts)


@pytest.fixture
def bow() -> BagOfWordsEmbedder:
    return BagOfWordsEmbedder()


@pytest.fixture
def make_beir():
    """The :func:`write_beir` helper, for tests that build their own BEIR folder."""
    return write_beir
