"""Shared fixtures: a small triplet set over the tiny test tokenizer's vocabulary."""

import json

import pytest

from grace_rag.trainer.data import Triplet

WORDS = ["cat sleeps mat", "proteins fold cell", "interest rates bank", "river flooded rain",
         "fox jumps dog", "central bank inflation"]


@pytest.fixture
def triplets():
    return [Triplet(w, w + " again", (WORDS[(i + 2) % len(WORDS)],)) for i, w in enumerate(WORDS)]


@pytest.fixture
def triplet_file(tmp_path, triplets):
    path = tmp_path / "triplets.jsonl"
    path.write_text("".join(json.dumps({"query": t.query, "positive": t.positive, "negative": t.negatives[0]}) + "\n"
                            for t in triplets))
    return path
