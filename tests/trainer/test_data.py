"""Data loading: triplets, BEIR folders with BM25 negatives, plain corpora, and file:line errors."""

import json

import pytest

from grace_rag.errors import DataError
from grace_rag.trainer.data import Triplet, beir_triplets, load_supervised, load_texts, load_triplets


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_triplets_with_string_or_list_negative(tmp_path):
    f = write_jsonl(tmp_path / "t.jsonl", [
        {"query": "q1", "positive": "p1", "negative": "n1"},
        "",
        {"query": "q2", "positive": "p2", "negative": ["n2", "n3"]},
    ])
    assert load_triplets(f) == [Triplet("q1", "p1", ("n1",)), Triplet("q2", "p2", ("n2", "n3"))]


@pytest.mark.parametrize("bad_line, words", [
    ('{"query": "q", "positive": "p", "negative": "n"', "invalid JSON"),
    ({"query": "q", "negative": "n"}, "missing field 'positive'"),
    ({"query": "q", "positive": 3, "negative": "n"}, "'positive' must be a string"),
    ({"query": " ", "positive": "p", "negative": "n"}, "'query' is empty"),
    ({"query": "q", "positive": "p", "negative": []}, "non-empty list"),
    ([1, 2], "expected a JSON object"),
])
def test_malformed_triplets_name_file_and_line(tmp_path, bad_line, words):
    good = {"query": "q", "positive": "p", "negative": "n"}
    f = write_jsonl(tmp_path / "t.jsonl", [good, good, bad_line, good])
    with pytest.raises(DataError, match=f"t.jsonl:3: .*{words}"):
        load_triplets(f)


def test_empty_and_missing(tmp_path):
    with pytest.raises(DataError, match="no training pairs"):
        load_triplets(write_jsonl(tmp_path / "e.jsonl", [""]))
    with pytest.raises(DataError, match="no such file"):
        load_supervised(tmp_path / "nope.jsonl")


def make_beir(root):
    write_jsonl(root / "corpus.jsonl", [
        {"_id": "d1", "title": "Cats", "text": "cats purr and sleep"},
        {"_id": "d2", "title": "Dogs", "text": "dogs bark at cats loudly"},
        {"_id": "d3", "title": "Rain", "text": "weather forecast rain"},
        {"_id": "d4", "title": "Stocks", "text": "markets fell today"},
    ])
    write_jsonl(root / "queries.jsonl", [{"_id": "q1", "text": "why do cats purr"},
                                         {"_id": "q2", "text": "will it rain"}])
    (root / "qrels").mkdir()
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")
    return root


def test_beir_triplets_use_bm25_hard_negatives(tmp_path):
    triplets = beir_triplets(make_beir(tmp_path), "train", negatives_per_query=1)
    by_query = {t.query: t for t in triplets}
    cat = by_query["why do cats purr"]
    assert cat.positive == "Cats cats purr and sleep"
    assert cat.negatives == ("Dogs dogs bark at cats loudly",)  # the only other doc sharing "cats"
    assert load_supervised(tmp_path) == triplets


def test_beir_bad_qrels_line(tmp_path):
    root = make_beir(tmp_path)
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\n")
    with pytest.raises(DataError, match="train.tsv:2: expected 3 tab-separated columns"):
        beir_triplets(root)


def test_unsupervised_sources(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("first passage\n\n  second passage \n")
    assert load_texts(txt) == ["first passage", "second passage"]
    jl = write_jsonl(tmp_path / "b.jsonl", [{"text": "x"}, {"text": "y"}])
    assert load_texts(jl) == ["x", "y"]
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "one.md").write_text("# Title\nbody\n")
    write_jsonl(folder / "two.jsonl", [{"text": "z"}])
    assert load_texts(folder) == ["# Title\nbody", "z"]
    bad = write_jsonl(tmp_path / "c.jsonl", [{"text": "x"}, {"body": "y"}])
    with pytest.raises(DataError, match="c.jsonl:2: missing field 'text'"):
        load_texts(bad)
    (tmp_path / "beir").mkdir()
    assert len(load_texts(make_beir(tmp_path / "beir"))) == 4
