"""The subset builder is deterministic, keeps every positive, and adds BM25 hard negatives."""

from __future__ import annotations

from pathlib import Path

import pytest

from grace_rag.errors import ConfigError
from grace_rag.evaluation.datasets import load_beir, load_sts
from grace_rag.evaluation.subset import SubsetSpec, build_subset, subset_sts


def test_same_spec_gives_the_same_subset(beir_dir: Path):
    dataset = load_beir(beir_dir)
    first = build_subset(dataset, SubsetSpec(n_queries=4, corpus_size=30, seed=3))
    second = build_subset(load_beir(beir_dir), SubsetSpec(n_queries=4, corpus_size=30, seed=3))
    assert first.corpus == second.corpus and first.queries == second.queries
    assert first.qrels == second.qrels and first.subset == second.subset


def test_other_seed_gives_another_subset(beir_dir: Path):
    dataset = load_beir(beir_dir)
    digests = {build_subset(dataset, SubsetSpec(n_queries=3, seed=s)).subset["digest"]
               for s in range(4)}
    assert len(digests) > 1


def test_every_positive_is_kept(beir_dir: Path):
    dataset = load_beir(beir_dir)
    for seed in range(3):
        subset = build_subset(dataset, SubsetSpec(n_queries=5, corpus_size=20, seed=seed))
        assert len(subset.queries) == 5
        for qid in subset.queries:
            assert subset.qrels[qid] == dataset.qrels[qid]
            assert all(doc in subset.corpus for doc in dataset.qrels[qid])


def test_positives_are_kept_past_the_target_size(beir_dir: Path):
    subset = build_subset(load_beir(beir_dir), SubsetSpec(n_queries=10, corpus_size=5))
    assert len(subset.corpus) == 20  # 10 queries x 2 positives, nothing else
    assert subset.subset["bm25_distractors"] == 0 and subset.subset["random_fill"] == 0


def test_bm25_distractors_then_random_fill(beir_dir: Path):
    dataset = load_beir(beir_dir)
    spec = SubsetSpec(n_queries=3, corpus_size=25, distractors_per_query=1, seed=1)
    subset = build_subset(dataset, spec)
    for qid in subset.queries:  # the lexical near-miss of each topic is its hard negative
        assert f"near{qid[1:]}" in subset.corpus
    info = subset.subset
    assert info["positives"] == 6 and info["bm25_distractors"] == 3
    assert info["random_fill"] == 16 and len(subset.corpus) == 25
    assert info["source"] == "toy/test" and len(info["digest"]) == 12


def test_asking_for_more_queries_than_exist_takes_all(beir_dir: Path):
    subset = build_subset(load_beir(beir_dir), SubsetSpec(n_queries=99))
    assert len(subset.queries) == 10


@pytest.mark.parametrize("kwargs", [{"n_queries": 0}, {"n_queries": 2, "corpus_size": 0},
                                    {"n_queries": 2, "distractors_per_query": -1}])
def test_invalid_specs_rejected(kwargs):
    with pytest.raises(ConfigError):
        SubsetSpec(**kwargs)


def test_sts_subset_deterministic(sts_file: Path):
    dataset = load_sts(sts_file)
    first, second = subset_sts(dataset, 3, seed=2), subset_sts(dataset, 3, seed=2)
    assert first.pairs == second.pairs and first.scores == second.scores
    assert first.subset["n_pairs"] == 3
    assert all(pair in dataset.pairs for pair in first.pairs)


def test_real_scifact_subset_keeps_positives():
    folder = Path("/work/shared/data/scifact")
    if not folder.is_dir():
        pytest.skip("shared SciFact copy not present")
    dataset = load_beir(folder, "dev")
    subset = build_subset(dataset, SubsetSpec(n_queries=20, corpus_size=200, seed=0))
    assert len(subset.queries) == 20 and len(subset.corpus) == 200
    assert all(doc in subset.corpus for qid in subset.queries for doc in dataset.qrels[qid])
