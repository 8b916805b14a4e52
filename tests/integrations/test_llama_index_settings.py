"""GraceEmbedding's settings: declared fields, rejected unknowns, and every round trip keeps them."""

import dataclasses
import pickle

import numpy as np
import pytest
from llama_index.core import Document
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from pydantic import ValidationError

from frameworks_support import DOCS
from grace_rag import EncoderConfig
from grace_rag.errors import ConfigError
from grace_rag.integrations.llama_index import GraceEmbedding

#: non-default settings, so a round trip that fell back to defaults would show
SETTINGS = {"max_rationale_tokens": 2, "layer": "penultimate", "max_input_tokens": 96, "cache": False, "device": "cpu"}


@pytest.fixture(scope="module")
def embedding(model_dir):
    return GraceEmbedding(str(model_dir), **SETTINGS, embed_batch_size=3)


def vectors(model, texts):
    return np.array(model.get_text_embedding_batch(texts))


def test_every_encoder_config_field_is_a_declared_field():
    missing = [f.name for f in dataclasses.fields(EncoderConfig) if f.name not in GraceEmbedding.model_fields]
    assert missing == []
    for name in ("device", "cache_folder", "embed_batch_size", "model_name"):
        assert name in GraceEmbedding.model_fields


def test_settings_reach_the_encoder(model_dir, tmp_path):
    model = GraceEmbedding(str(model_dir), max_rationale_tokens=1, pooling="max", query_instruction="Find.",
                           text_instruction="Describe.", cache_folder=str(tmp_path / "c"), device="cpu")
    config = model.encoder.config
    assert (config.max_rationale_tokens, config.pooling.value, config.query_instruction, config.document_instruction) == (
        1, "max", "Find.", "Describe.")
    assert model.document_instruction == "Describe." and model.max_input_tokens == EncoderConfig().max_input_tokens
    model.get_text_embedding("a text for the cache")
    assert (tmp_path / "c" / "cache.sqlite").is_file()
    assert model.fingerprint != GraceEmbedding(str(model_dir), device="cpu").fingerprint


def test_unknown_or_doubled_arguments_are_errors(model_dir):
    with pytest.raises(ValidationError, match="normalize"):
        GraceEmbedding(str(model_dir), normalize=False)
    with pytest.raises(ConfigError, match="document_instruction is given twice"):
        GraceEmbedding(str(model_dir), text_instruction="A.", document_instruction="B.")
    with pytest.raises(ConfigError, match="max_rationale_tokens"):
        GraceEmbedding(str(model_dir), config=EncoderConfig(max_rationale_tokens=4), max_rationale_tokens=8)


def test_an_adopted_encoder_refuses_settings_it_does_not_have(tiny):
    with pytest.raises(ConfigError, match="encoder= was given together with settings"):
        GraceEmbedding(encoder=tiny, max_rationale_tokens=tiny.config.max_rationale_tokens + 1)
    assert GraceEmbedding(encoder=tiny).max_rationale_tokens == tiny.config.max_rationale_tokens


def test_to_dict_and_from_dict_keep_every_setting(embedding):
    data = embedding.to_dict()
    assert {k: data[k] for k in ("max_rationale_tokens", "layer", "max_input_tokens", "cache")} == {
        "max_rationale_tokens": 2, "layer": "penultimate", "max_input_tokens": 96, "cache": False}
    again = GraceEmbedding.from_json(embedding.to_json())
    assert again.fingerprint == embedding.fingerprint and again.embed_batch_size == 3
    texts = list(DOCS.values())
    np.testing.assert_allclose(vectors(again, texts), vectors(embedding, texts), atol=1e-6)


def test_pickle_keeps_every_setting_and_not_the_model(embedding):
    blob = pickle.dumps(embedding)
    assert len(blob) < 20_000  # settings only: the weights are loaded again
    again = pickle.loads(blob)
    assert again.fingerprint == embedding.fingerprint
    assert again.encoder.config == embedding.encoder.config
    np.testing.assert_allclose(again.get_query_embedding("a query"), embedding.get_query_embedding("a query"), atol=1e-6)


def test_multiprocess_ingestion_gives_the_in_process_vectors(embedding, monkeypatch, tmp_path):
    """As a user runs it offline: no tiktoken cache chosen, and (here) tiktoken's default cache empty. The
    spawned workers unpickle SentenceSplitter's tiktoken tokenizer, which they would download (and hang
    offline) unless GraceEmbedding seeded tiktoken's cache with the copy llama-index-core ships."""
    import tempfile

    for name in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # workers inherit it: their default cache is empty
    monkeypatch.setattr(tempfile, "tempdir", None)
    documents = [Document(text=text, id_=key) for key, text in DOCS.items()]
    splitter = SentenceSplitter(chunk_size=24, chunk_overlap=0)
    nodes = IngestionPipeline(transformations=[splitter, embedding]).run(documents=documents, num_workers=2)
    assert len(nodes) >= 3
    expected = vectors(embedding, [node.get_content(metadata_mode="embed") for node in nodes])
    np.testing.assert_allclose(np.array([node.embedding for node in nodes]), expected, atol=1e-6)
    assert (tmp_path / "tmp" / "data-gym-cache").is_dir()
    default = GraceEmbedding(embedding.model_name, device="cpu", cache=False)
    assert not np.allclose(vectors(default, [nodes[0].get_content(metadata_mode="embed")])[0], expected[0], atol=1e-3)
