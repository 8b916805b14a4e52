"""Fixtures of the bad-input suite: a small index built once on the tiny model, copied for every case."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "docs"
DOCS = ("volcanoes.txt", "bridges.md")
TRIPLETS = [{"query": "cat sleeps mat", "positive": "cat sleeps mat again", "negative": "river flooded rain"},
            {"query": "proteins fold cell", "positive": "proteins fold again", "negative": "fox jumps dog"}]


@pytest.fixture(scope="session")
def built(tmp_path_factory, model_dir) -> Path:
    """``docs/`` (two example files) and ``ix/``, their index on the tiny model, built once."""
    from grace_rag.config import EncoderConfig
    from grace_rag.indexes.ingest import IngestConfig
    from grace_rag.indexes.service import IndexRequest, index_folder, load_encoder

    root = tmp_path_factory.mktemp("built")
    (root / "docs").mkdir()
    for name in DOCS:
        shutil.copy(EXAMPLES / name, root / "docs" / name)
    old = os.environ.get("GRACE_RAG_HOME")
    os.environ["GRACE_RAG_HOME"] = str(root / "home")
    try:
        encoder = load_encoder(str(model_dir), EncoderConfig(cache=False, max_rationale_tokens=4), "cpu")
        request = IndexRequest(path=root / "docs", index_dir=root / "ix", ingest=IngestConfig(chunk_size=64))
        index_folder(request, encoder=encoder)
    finally:
        if old is None:
            os.environ.pop("GRACE_RAG_HOME", None)
        else:
            os.environ["GRACE_RAG_HOME"] = old
    shutil.rmtree(root / "home", ignore_errors=True)
    return root


@pytest.fixture
def work(tmp_path: Path, built: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of ``docs/`` and ``ix/`` plus ``good.jsonl`` (valid triplets) as the current folder."""
    for name in ("docs", "ix"):
        shutil.copytree(built / name, tmp_path / name)
    (tmp_path / "good.jsonl").write_text("".join(json.dumps(t) + "\n" for t in TRIPLETS))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory) -> Path:
    """Another tiny random Llama (other weights, same shape): a model that did not build the index."""
    from grace_rag.testing import tiny_backbone

    path = tmp_path_factory.mktemp("other-model")
    backbone = tiny_backbone(seed=1)
    backbone.model.save_pretrained(path)
    backbone.tokenizer.save_pretrained(path)
    return path
