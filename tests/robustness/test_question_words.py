"""Question words do not rank chunks on the lexical side (issue 21, item 6), and older indexes follow.

The lexical side drops NLTK's English stop words (bm25s's ``en_plus``), which include "does",
"what", "how"; bm25s's default 33 did not, so "Does eating broccoli help the liver?" put a
one-line tail chunk ("And so it does.") first on the word "does". A ``lexical/`` folder written
before (tokenized with the short list, and without ``settings.json``) is rebuilt quietly.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from typer.testing import CliRunner

from grace_rag.cli.app import app
from grace_rag.indexes import Chunk, EncoderInfo, GraceIndex
from grace_rag.indexes.files import directory_digest
from grace_rag.indexes.lexical import LEXICAL_DIR, SETTINGS_FILE, STOPWORDS

runner = CliRunner()
TEXTS = [
    "Broccoli and the liver: sulforaphane in broccoli raises detoxifying enzymes in liver cells of mice.",
    "And so it does.",
    "Broccoli grows best in cool weather and needs rich soil.",
    "Steamed broccoli keeps more vitamin C than boiled broccoli.",
    "Broccoli is a cultivar of wild cabbage.",
    "The liver stores glycogen and makes bile.",
    "Volcanoes erupt when magma rises.",
    "Bridges carry loads across rivers.",
]
QUESTIONS = ["Does eating broccoli help the liver?", "How does broccoli help the liver?",
             "what does broccoli do to the liver", "Can broccoli help my liver?"]


@pytest.fixture
def ix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    vectors = np.random.default_rng(0).standard_normal((len(TEXTS), 8)).astype(np.float32)
    with GraceIndex.create(tmp_path / "ix", EncoderInfo("none", "f" * 32, 8)) as index:
        index.add([Chunk(id=f"c{i}", text=t, source=f"/d/{i}.txt") for i, t in enumerate(TEXTS)], vectors)
        index.save()
    return tmp_path / "ix"


def lexical(args: list[str]) -> list[str]:
    result = runner.invoke(app, ["query", *args, "--index", "ix", "--mode", "lexical", "--json", "-k", "3"])
    assert result.exit_code == 0, result.output
    return [hit["id"] for hit in json.loads(result.stdout)["hits"]]


@pytest.mark.bad_input
@pytest.mark.parametrize("question", QUESTIONS)
def test_a_question_word_does_not_put_a_tail_chunk_first(ix, question):
    assert lexical([question])[0] == "c0"
    assert "c1" not in lexical([question])


@pytest.mark.bad_input
@pytest.mark.parametrize("words", ["does", "what is it", "how do they", "Why would you?"])
def test_a_query_of_question_words_only_matches_nothing(ix, words):
    assert lexical([words]) == []


def test_an_index_written_with_the_old_stop_list_is_rebuilt_quietly(ix, caplog):
    """As grace-rag wrote lexical/ before: tokenized with bm25s's 33 words, no settings.json."""
    from grace_rag.indexes.lexical import LexicalIndex
    from grace_rag.indexes.manifest import read_manifest, write_manifest

    with GraceIndex.open(ix) as index:
        fids, texts = index.store.texts()
        revision = index.store.revision
    old = LexicalIndex.build(fids, texts, revision, stopwords="en")
    digest = old.save(ix)
    (ix / LEXICAL_DIR / SETTINGS_FILE).unlink()
    manifest = read_manifest(ix / "manifest.json")
    manifest.lexical_digest = directory_digest(ix / LEXICAL_DIR)
    assert manifest.lexical_digest != digest
    write_manifest(ix / "manifest.json", manifest)

    with caplog.at_level(logging.INFO, logger="grace_rag"):
        assert lexical(["Does eating broccoli help the liver?"])[0] == "c0"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("tokenized with other settings" in r.getMessage() for r in caplog.records)
    saved = json.loads((ix / LEXICAL_DIR / SETTINGS_FILE).read_text())  # rewritten by the reader: the lock was free
    assert saved["stopwords"] == STOPWORDS == "en_plus"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="grace_rag"):
        lexical(["liver"])
    assert not any("lexical" in r.getMessage() for r in caplog.records)  # loaded as saved from now on
