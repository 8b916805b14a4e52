"""Retriever: the index's own model encodes the query; the index only stores and searches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from grace_rag.config import EncoderConfig
from grace_rag.errors import ConfigError, GraceIndexError
from grace_rag.indexes import GraceIndex
from grace_rag.indexes.ingest import Indexer
from grace_rag.indexes.retriever import Retriever
from grace_rag.testing import tiny_encoder

DOCS = {"bees.txt": "Honeybees dance to tell their sisters where the flowers are.",
        "volcano.md": "A volcano erupts when molten rock and gas escape through the crust.",
        "interest.txt": "Compound interest is earned on the principal and on the interest already added."}
BEFORE = Path(__file__).parents[1] / "data" / "index-before-22"


@pytest.fixture(scope="module")
def built(tmp_path_factory, model_dir):
    """An index of DOCS built with the tiny model directory (its name is recorded, so it can be loaded again)."""
    from grace_rag.encoder import GraceEncoder

    root = tmp_path_factory.mktemp("retriever")
    (root / "docs").mkdir()
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text)
    encoder = GraceEncoder(str(model_dir), EncoderConfig(max_rationale_tokens=3, cache=False), device="cpu")
    with GraceIndex.open_or_create(root / "index", encoder) as index:
        Indexer(index, encoder).run(root / "docs")
    return root / "index", encoder


def test_search_encodes_with_the_index_model_and_ranks_like_the_index(built):
    path, encoder = built
    with Retriever.open(path, device="cpu") as retriever:
        result = retriever.search("molten rock escaping", k=2, mode="dense")
        assert retriever.encoder.fingerprint == encoder.fingerprint  # the recorded model and settings
        encoding = encoder.encode(["molten rock escaping"], role="query")
        direct = retriever.index.search(encoding.vectors[0], k=2)
        assert [h.id for h in result.hits] == [h.id for h in direct]
        assert np.allclose([h.score for h in result.hits], [h.score for h in direct], atol=1e-6)
        assert result.query_rationale == encoding.rationales[0]
        hybrid = retriever.search("molten rock", k=3)  # hybrid by default, filters on both sides
        assert hybrid.mode.value == "hybrid" and hybrid.hits[0].source.endswith("volcano.md")
        only_md = retriever.search("molten rock", k=3, where={"extension": ".txt"})
        assert {Path(h.source).suffix for h in only_md.hits} == {".txt"}


def test_lexical_search_loads_no_model(built, monkeypatch):
    path, _ = built
    import grace_rag.indexes.retriever as module

    monkeypatch.setattr(module, "load_recorded_encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    with Retriever.open(path) as retriever:
        result = retriever.search("honeybees dance", k=1, mode="lexical")
    assert result.hits[0].source.endswith("bees.txt") and result.query_rationale == ""
    assert result.to_dict() == {"query": "honeybees dance", "mode": "lexical",
                                "hits": [{k: v for k, v in result.hits[0].to_dict().items() if k != "rationale"}]}


def test_an_encoder_or_settings_that_build_other_vectors_are_refused(built):
    path, _ = built
    with pytest.raises(GraceIndexError, match="fingerprint"):
        Retriever.open(path, encoder=tiny_encoder(EncoderConfig(max_rationale_tokens=3, cache=False)))
    with Retriever.open(path, settings=EncoderConfig(pooling="max"), device="cpu") as retriever:
        with pytest.raises(GraceIndexError, match="the settings differ .*pooling='mean'"):
            retriever.search("bees", mode="dense")
    with Retriever.open(path, settings=EncoderConfig(batch_size=2), device="cpu") as retriever:
        assert retriever.search("bees", mode="dense").hits  # a runtime knob changes no vector


def test_bad_queries_and_filters_fail_before_any_model_loads(built):
    path, _ = built
    with Retriever.open(path) as retriever:
        with pytest.raises(GraceIndexError, match="the query is empty"):
            retriever.search("  ")
        with pytest.raises(ConfigError, match="unknown filter key 'lang'"):
            retriever.search("bees", where={"lang": "en"})
        with pytest.raises(ConfigError, match="unknown mode 'both'"):
            retriever.search("bees", mode="both")
        assert retriever._encoder is None


BEFORE_DOCS = {  # the texts tests/data/index-before-22/build.py indexed
    "bees.txt": "Honeybees perform a waggle dance to tell their sisters where the flowers are.",
    "volcano.md": "A volcano erupts when molten rock, gases and ash escape through the crust.",
    "interest.txt": "Compound interest is earned on the principal and on the interest already added."}


def _answers(retriever: Retriever, key: str) -> tuple[str | None, list[dict]]:
    mode, _, query = key.partition(":")
    result = retriever.search(query, 3, mode=mode)
    return result.query_rationale, [hit.to_dict() for hit in result.hits]


def _assert_same_hits(got: list[dict], want: list[dict], key: str) -> None:
    assert [h["id"] for h in got] == [h["id"] for h in want], key
    for mine, theirs in zip(got, want):
        assert {k: v for k, v in mine.items() if not k.endswith("score")} == \
               {k: v for k, v in theirs.items() if not k.endswith("score")}, key
        for name in ("score", "dense_score", "lexical_score"):
            assert mine[name] == pytest.approx(theirs[name], abs=1e-6), (key, name)


def test_an_index_written_before_this_version_loads_and_answers_identically(tmp_path):
    """The fixture was written by grace-rag before issue 22 (tests/data/index-before-22/build.py, commit 3f2ba9f).

    Dense answers must equal the recorded ones. The lexical side's stop-word list changed after the
    recording (issue 21: question words are stop words now), and an index whose BM25 files were built
    with the old list rebuilds them from its chunks: so lexical and hybrid answers must equal those of
    an index of the same documents written today, and the rebuilt BM25 must not change the stored chunks."""
    shutil.copytree(BEFORE / "index", tmp_path / "index")
    expected = json.loads((BEFORE / "expected.json").read_text())
    encoder = tiny_encoder(EncoderConfig(max_rationale_tokens=4, query_instruction="Find the passage that answers this.",
                                         cache=False))
    assert encoder.fingerprint == expected["fingerprint"]  # the fingerprint payload is unchanged
    (tmp_path / "docs").mkdir()
    for name, text in BEFORE_DOCS.items():
        (tmp_path / "docs" / name).write_text(text)
    with GraceIndex.open_or_create(tmp_path / "today", encoder) as index:
        Indexer(index, encoder).run(tmp_path / "docs")
    with Retriever.open(tmp_path / "index", encoder=encoder) as old, \
            Retriever.open(tmp_path / "today", encoder=encoder) as today:
        for key, want in expected["queries"].items():
            rationale, got = _answers(old, key)
            assert rationale == want["query_rationale"], key
            if key.startswith("dense:"):
                _assert_same_hits(got, want["hits"], key)
            else:
                assert [h["id"] for h in got] == [h["id"] for h in want["hits"]], key
                fresh = _answers(today, key)[1]  # same texts under another folder: compare file names, scores
                assert [Path(h["id"]).name for h in got] == [Path(h["id"]).name for h in fresh], key
                for mine, theirs in zip(got, fresh):
                    for name in ("score", "dense_score", "lexical_score"):
                        assert mine[name] == pytest.approx(theirs[name], abs=1e-6), (key, name)
