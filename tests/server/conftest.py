"""A small grace-rag index built with the tiny model (saved as a model directory, so a server process can load it)."""

from __future__ import annotations

from pathlib import Path

import pytest

DOCS = {
    "bees": "Honeybees perform a waggle dance to tell their sisters where the flowers are.",
    "volcano": "A volcano erupts when molten rock, gases and ash escape through the crust.",
    "interest": "Compound interest is earned on the principal and on the interest already added.",
}
#: index settings: a query instruction of its own, so query and document vectors differ
SETTINGS = {"max_rationale_tokens": 4, "query_instruction": "Find the passage that answers this question."}


@pytest.fixture(scope="session")
def served_index(model_dir, tmp_path_factory) -> Path:
    """An index of DOCS (one file each) built with the tiny model directory."""
    from grace_rag import EncoderConfig, GraceEncoder
    from grace_rag.indexes import GraceIndex
    from grace_rag.indexes.ingest import Indexer

    root = tmp_path_factory.mktemp("served")
    (root / "docs").mkdir()
    for key, text in DOCS.items():
        (root / "docs" / f"{key}.txt").write_text(text)
    encoder = GraceEncoder(str(model_dir), config=EncoderConfig(**SETTINGS, cache=False), device="cpu")
    with GraceIndex.open_or_create(root / "index", encoder) as index:
        Indexer(index, encoder).run(root / "docs")
    return root / "index"


@pytest.fixture(scope="session")
def index_encoder(served_index):
    """The encoder a server for ``served_index`` uses (the index's model and settings), in this process."""
    from grace_rag.config import EncoderConfig
    from grace_rag.indexes.service import load_recorded_encoder, open_index

    with open_index(served_index) as index:
        recorded = index.manifest.encoder
    return load_recorded_encoder(served_index, recorded, "cpu", EncoderConfig(cache=False))
