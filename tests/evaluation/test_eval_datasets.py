"""Loaders: BEIR folders and STS files load, and malformed files fail with file:line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grace_rag.errors import DataError
from grace_rag.evaluation.datasets import BeirDataset, StsDataset, load_beir, load_dataset, load_sts


def test_load_beir(beir_dir: Path):
    dataset = load_beir(beir_dir, "test")
    assert len(dataset.queries) == 10 and len(dataset.corpus) == 110
    assert dataset.qrels["q0"] == {"pos0-0": 1, "pos0-1": 1}
    assert dataset.corpus["pos0-0"] == "protein folding a study of protein folding number 0"
    assert dataset.subset is None


def test_only_judged_queries_are_kept(beir_dir: Path):
    with (beir_dir / "queries.jsonl").open("a") as handle:
        handle.write('{"_id": "unjudged", "text": "nobody asked"}\n')
    assert "unjudged" not in load_beir(beir_dir).queries


def test_missing_split_lists_available_ones(beir_dir: Path):
    with pytest.raises(DataError, match=r"split 'dev' not found \(available splits: test\)"):
        load_beir(beir_dir, "dev")


def _append(path: Path, text: str) -> int:
    """Append a line; return its 1-based line number."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [text]) + "\n")
    return len(lines) + 1


@pytest.mark.parametrize(("file", "line", "message"), [
    ("corpus.jsonl", "{not json", "invalid JSON"),
    ("corpus.jsonl", '["a", "list"]', "expected a JSON object"),
    ("corpus.jsonl", '{"title": "t", "text": "no id"}', "field '_id' must be a string"),
    ("corpus.jsonl", '{"_id": "pos0-0", "text": "again"}', "duplicate _id 'pos0-0'"),
    ("queries.jsonl", '{"_id": "qx", "text": null}', "field 'text' must be a string"),
    ("qrels/test.tsv", "q0\tpos0-0", "expected 3 tab-separated columns"),
    ("qrels/test.tsv", "q0\tpos0-0\thigh", "score must be an integer"),
    ("qrels/test.tsv", "q0\tnope\t1", "corpus id 'nope' is not in corpus.jsonl"),
    ("qrels/test.tsv", "qq\tpos0-0\t1", "query id 'qq' is not in queries.jsonl"),
])
def test_malformed_beir_files_name_file_and_line(beir_dir: Path, file: str, line: str,
                                                 message: str):
    path = beir_dir / file
    number = _append(path, line)
    with pytest.raises(DataError, match=re.escape(f"{path}:{number}: {message}")):
        load_beir(beir_dir)


def test_missing_corpus_file(beir_dir: Path):
    (beir_dir / "corpus.jsonl").unlink()
    with pytest.raises(DataError, match="corpus.jsonl: file not found"):
        load_beir(beir_dir)


def test_load_sts_skips_header(sts_file: Path):
    dataset = load_sts(sts_file)
    assert dataset.scores == [5.0, 0.0, 3.2, 1.0]
    assert dataset.pairs[0] == ("A man is playing a guitar.", "A man plays the guitar.")
    assert dataset.split == "dev"


@pytest.mark.parametrize(("line", "message"), [
    ("4.0\tonly one sentence", "expected 3 tab-separated columns"),
    ("high\ta\tb", "score must be a number, got 'high'"),
    ("nan\ta\tb", "score must be finite"),
    ("1.0\ta\tb\tc", "got 4"),
])
def test_malformed_sts_lines_name_file_and_line(sts_file: Path, line: str, message: str):
    number = _append(sts_file, line)
    with pytest.raises(DataError, match=re.escape(f"{sts_file}:{number}: ") + ".*"
                       + re.escape(message)):
        load_sts(sts_file)


def test_load_dataset_detects_the_kind(beir_dir: Path, sts_file: Path, tmp_path: Path):
    assert isinstance(load_dataset(beir_dir), BeirDataset)
    assert isinstance(load_dataset(sts_file), StsDataset)
    assert isinstance(load_dataset(sts_file.parent, "dev"), StsDataset)
    with pytest.raises(DataError, match="no STS file for split 'test'"):
        load_dataset(sts_file.parent, "test")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="not a dataset"):
        load_dataset(empty)


def test_real_scifact_dev_loads():
    folder = Path("/work/shared/data/scifact")
    if not folder.is_dir():
        pytest.skip("shared SciFact copy not present")
    dataset = load_beir(folder, "dev")
    assert len(dataset.queries) == 150 and len(dataset.corpus) == 5183
