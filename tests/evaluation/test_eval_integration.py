"""One run of the harness on the real embedded model (a handful of texts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from grace_rag.config import EncoderConfig
from grace_rag.evaluation.adapters import load_model
from grace_rag.evaluation.datasets import load_beir
from grace_rag.evaluation.runner import evaluate_loaded

TOPICS = {
    "bio": ("How do proteins fold?", "Protein folding: chains of amino acids take a 3D shape."),
    "fin": ("Why did interest rates rise?", "The central bank raised rates to fight inflation."),
    "geo": ("What caused the valley flood?", "Three days of heavy rain made the river overflow."),
    "ast": ("How far away is the Moon?", "The Moon orbits Earth at about 384,000 kilometres."),
}


@pytest.mark.integration
def test_default_model_ranks_topical_documents(tmp_path: Path, make_beir):
    corpus = [{"_id": key, "title": "", "text": doc} for key, (_, doc) in TOPICS.items()]
    queries = [{"_id": f"q-{key}", "text": query} for key, (query, _) in TOPICS.items()]
    qrels = [(f"q-{key}", key, 1) for key in TOPICS]
    dataset = load_beir(make_beir(tmp_path / "tiny", corpus, queries, qrels))
    loaded = load_model("default", EncoderConfig(max_rationale_tokens=16, cache=False))
    row = evaluate_loaded(loaded, dataset)
    assert row["model"] == "default[rt=16]" and row["docs_per_s"] > 0
    assert row["mrr@10"] >= 0.75  # chance is (1 + 1/2 + 1/3 + 1/4) / 4 = 0.52
