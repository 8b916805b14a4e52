"""Hybrid search in GraceIndex: the lexical part in step with the store, on disk and after damage; modes; ranks."""

import json
import logging

import numpy as np
import pytest

from grace_rag.errors import ConfigError
from grace_rag.evaluation.adapters import BM25Retriever
from grace_rag.indexes import Chunk, GraceIndex
from grace_rag.indexes.grace_index import MANIFEST_FILE
from grace_rag.indexes.lexical import FIDS_FILE, LEXICAL_DIR

DIM = 16
TEXTS = [
    "Honeybees dance to show where flowers are.",
    "Volcanoes erupt when magma rises through the crust.",
    "Sourdough bread rises because wild yeast makes gas.",
    "The waggle dance of bees encodes distance and direction.",
    "Black holes bend light around them.",
    "Magma chambers feed volcanic eruptions for centuries.",
]


def unit(n: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def path(tmp_path, info):
    index = GraceIndex.create(tmp_path / "ix", info)
    index.add([Chunk(id=f"c{i}", text=t, source=f"/docs/{i % 2}.txt", position=i) for i, t in enumerate(TEXTS)], unit(len(TEXTS)))
    index.save()
    index.close()
    return tmp_path / "ix"


def lexical_ids(index, text="bees dance", k=10):
    return [h.id for h in index.search(text=text, k=k, mode="lexical")]


def lexical_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "lexical" in r.getMessage()]


def test_lexical_mode_ranks_by_bm25_and_only_returns_word_matches(path):
    with GraceIndex.open(path) as index:
        hits = index.search(text="bees dance", k=10)  # a text alone means lexical
        assert [h.id for h in hits] == ["c3", "c0"]
        assert [h.lexical_rank for h in hits] == [1, 2] and hits[0].score == hits[0].lexical_score > hits[1].score > 0
        assert all(h.dense_rank is None and h.dense_score is None for h in hits)
        assert index.search(text="the of and", k=5) == []  # stopwords only: no lexical match


def test_lexical_scores_equal_bm25s_with_the_same_settings(path):
    """The index's BM25 is bm25s's (k1, b, stemmer); its stop list is NLTK's (the evaluation baseline keeps bm25s's)."""
    import Stemmer
    from bm25s.tokenization import Tokenizer

    from grace_rag.indexes.lexical import B, K1, STOPWORDS

    baseline = BM25Retriever()
    baseline._tokenizer = Tokenizer(stemmer=Stemmer.Stemmer("english"), stopwords=STOPWORDS)
    assert (K1, B) == (baseline._bm25s.BM25().k1, baseline._bm25s.BM25().b)
    baseline.index(TEXTS)
    positions, scores = baseline.search(["magma volcano eruptions"], k=3)
    with GraceIndex.open(path) as index:
        hits = index.search(text="magma volcano eruptions", k=3)
    assert [h.id for h in hits] == [f"c{p}" for p in positions[0][: len(hits)]]
    np.testing.assert_allclose([h.score for h in hits], scores[0][: len(hits)], rtol=1e-5)


def test_hybrid_hits_report_both_sides(path):
    vectors = unit(len(TEXTS))
    with GraceIndex.open(path) as index:
        hits = index.search(vectors[3], text="volcano magma", k=6)  # dense favours c3, lexical c1 and c5
        by_id = {h.id: h for h in hits}
        assert len(hits) == 6 and by_id["c3"].dense_rank == 1 and by_id["c3"].dense_score == pytest.approx(1.0, abs=1e-5)
        assert {by_id["c1"].lexical_rank, by_id["c5"].lexical_rank} == {1, 2}
        assert by_id["c3"].lexical_rank is None and by_id["c0"].lexical_rank is None
        assert all(h.dense_rank is not None for h in hits)  # every chunk is a dense candidate here
        dense = index.search(vectors[3], k=3)
        assert dense[0].id == "c3" and dense[0].lexical_rank is None and dense[0].score == dense[0].dense_score


def test_modes_need_their_inputs(path):
    with GraceIndex.open(path) as index:
        with pytest.raises(ConfigError, match="hybrid search needs the query text"):
            index.search(unit(1)[0], k=3, mode="hybrid")
        with pytest.raises(ConfigError, match="dense search needs a query vector"):
            index.search(text="bees", k=3, mode="dense")
        with pytest.raises(ConfigError, match="unknown mode 'both'; valid values are: dense, lexical, hybrid"):
            index.search(unit(1)[0], text="bees", mode="both")
        assert index.search(text="bees dance", k=2, mode="lexical")[0].id == "c3"  # no encoder needed


def test_lexical_part_follows_add_upsert_delete_and_reload(path, caplog):
    with GraceIndex.open(path) as index:
        index.add([Chunk(id="new", text="Penguins huddle against the cold.")], unit(1, seed=5))
        assert lexical_ids(index, "penguins") == ["new"]
        index.upsert([Chunk(id="c3", text="Quantum computers use qubits.")], unit(1, seed=6))
        assert lexical_ids(index) == ["c0"] and lexical_ids(index, "qubits") == ["c3"]
        index.delete(["c0"])
        assert lexical_ids(index) == []
        assert index.delete_source("/docs/1.txt") == 2  # c1, c5 (c3 was replaced without a source)
        assert lexical_ids(index, "magma volcanoes") == []
        index.save()
        manifest = json.loads((path / MANIFEST_FILE).read_text())
        assert manifest["lexical"]["revision"] == index.store.revision
    caplog.clear()
    with GraceIndex.open(path) as reopened:
        assert lexical_ids(reopened, "penguins") == ["new"] and lexical_ids(reopened, "qubits") == ["c3"]
        assert len(reopened.lexical.current()) == len(reopened) == 4
    assert lexical_warnings(caplog) == []  # loaded from disk as saved


def test_changes_without_save_are_rebuilt_from_the_store(path, caplog):
    with GraceIndex.open(path) as index:
        index.add([Chunk(id="late", text="Glaciers carve valleys.")], unit(1, seed=9))  # then the process dies
    with GraceIndex.open(path) as reopened:
        assert lexical_ids(reopened, "glaciers valleys") == ["late"]
    assert any("older than chunks.sqlite" in m for m in lexical_warnings(caplog))


@pytest.mark.parametrize("damage", ["missing", "corrupt", "truncated", "fids"])
def test_a_missing_or_damaged_lexical_part_is_rebuilt_and_rewritten(path, caplog, damage):
    with GraceIndex.open(path) as index:
        expected = [(h.id, h.score) for h in index.search(text="bees dance magma", k=5)]
    folder = path / LEXICAL_DIR
    victim = next(p for p in sorted(folder.iterdir()) if p.suffix == ".npy" and p.name != FIDS_FILE)
    if damage == "missing":
        for item in folder.iterdir():
            item.unlink()
        folder.rmdir()
    elif damage == "corrupt":
        victim.write_bytes(b"\x00" * victim.stat().st_size)
    elif damage == "truncated":
        victim.write_bytes(victim.read_bytes()[:20])
    else:
        np.save(folder / FIDS_FILE, np.arange(3, dtype=np.int64), allow_pickle=False)
    caplog.clear()
    with GraceIndex.open(path) as index:
        assert [(h.id, h.score) for h in index.search(text="bees dance magma", k=5)] == expected
    warnings = lexical_warnings(caplog)
    assert len(warnings) == 1 and "building it from chunks.sqlite" in warnings[0] and "delete" not in warnings[0]
    caplog.clear()
    with GraceIndex.open(path) as index:  # rewritten: the next reader loads it silently
        assert [(h.id, h.score) for h in index.search(text="bees dance magma", k=5)] == expected
    assert lexical_warnings(caplog) == []


def test_an_index_written_before_hybrid_search_loads_and_gains_its_lexical_part(path, caplog):
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    del manifest["lexical"]  # the format before this change: no lexical record, no lexical/ folder
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))
    for item in (path / LEXICAL_DIR).iterdir():
        item.unlink()
    (path / LEXICAL_DIR).rmdir()
    caplog.clear()
    with GraceIndex.open(path) as index:
        assert index.search(unit(len(TEXTS))[2], k=1)[0].id == "c2"  # dense search needs nothing new
        assert lexical_warnings(caplog) == []
        assert lexical_ids(index) == ["c3", "c0"]
    warnings = lexical_warnings(caplog)
    assert len(warnings) == 1 and "written before hybrid search" in warnings[0]
    assert (path / LEXICAL_DIR / FIDS_FILE).exists()
    assert json.loads((path / MANIFEST_FILE).read_text())["lexical"]["revision"] >= 0


def test_an_empty_index_searches_to_nothing(tmp_path, info):
    with GraceIndex.create(tmp_path / "empty", info) as index:
        assert index.search(unit(1)[0], text="anything", k=3) == []
    with GraceIndex.open(tmp_path / "empty") as index:
        assert index.search(text="anything", k=3) == [] and index.lexical.current().fids.size == 0


def test_the_lexical_side_can_index_text_and_rationale_and_keeps_that_choice(tmp_path, info, caplog):
    """``set_lexical_text("text+rationale")``: a word only the rationale holds finds its chunk; the choice is in
    manifest.json and chunks.sqlite, survives reopening and a lost manifest, and "text" brings the old side back."""
    index = GraceIndex.create(tmp_path / "ix", info)
    index.add([Chunk(id="bees", text=TEXTS[0], rationale="pollinators foraging"),
               Chunk(id="bread", text=TEXTS[2], rationale="fermentation")], unit(2))
    index.save()
    assert lexical_ids(index, "pollinators") == []  # the default indexes the text only
    index.set_lexical_text("text+rationale")
    assert lexical_ids(index, "pollinators") == ["bees"] and lexical_ids(index, "yeast") == ["bread"]
    index.close()
    manifest = json.loads((tmp_path / "ix" / MANIFEST_FILE).read_text())
    assert manifest["lexical"]["text"] == "text+rationale"
    assert json.loads((tmp_path / "ix" / LEXICAL_DIR / "settings.json").read_text())["text"] == "text+rationale"
    with caplog.at_level(logging.INFO):
        with GraceIndex.open(tmp_path / "ix") as reopened:  # loaded from disk, not rebuilt
            assert lexical_ids(reopened, "fermentation") == ["bread"]
    assert not any("building the lexical index" in r.getMessage() for r in caplog.records)
    (tmp_path / "ix" / MANIFEST_FILE).unlink()  # recreated from chunks.sqlite: the choice is kept
    with GraceIndex.open(tmp_path / "ix") as recreated:
        assert recreated.manifest.lexical_text.value == "text+rationale"
        assert lexical_ids(recreated, "pollinators") == ["bees"]
        recreated.set_lexical_text("text")
        assert lexical_ids(recreated, "pollinators") == []
    with GraceIndex.open(tmp_path / "ix") as again, pytest.raises(ConfigError, match="lexical text"):
        again.set_lexical_text("rationale")
