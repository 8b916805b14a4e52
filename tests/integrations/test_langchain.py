"""GraceEmbeddings against LangChain's standard test suites and real vector stores."""

import importlib
import sys

import numpy as np
import pytest
from langchain_community.vectorstores import FAISS
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from pydantic import ValidationError

from grace_rag.integrations.langchain import GraceEmbeddings
from frameworks_support import DOCS, QUESTIONS, Counting, tiny_encoder_once


class TestGraceEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self):
        return GraceEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"encoder": tiny_encoder_once()}


class TestGraceEmbeddingsStandard(EmbeddingsIntegrationTests):
    """The standard suite on the tiny encoder (the real model is exercised by the FAISS test below)."""

    @property
    def embeddings_class(self):
        return GraceEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"encoder": tiny_encoder_once()}


def test_importable_lazily_from_the_package():
    import grace_rag

    assert grace_rag.GraceEmbeddings is GraceEmbeddings


def test_unknown_arguments_are_rejected(tiny):
    with pytest.raises(ValidationError):
        GraceEmbeddings(encoder=tiny, temperature_typo=0.5)


def test_documents_and_queries_use_their_roles(tiny):
    counting = Counting(tiny)
    embeddings = GraceEmbeddings(encoder=counting)
    vectors = embeddings.embed_documents(["one", "two"])
    embeddings.embed_query("three")
    assert counting.calls == [(["one", "two"], "document"), (["three"], "query")]
    np.testing.assert_allclose(vectors, tiny.encode(["one", "two"]).vectors, atol=1e-6)


def test_in_memory_vector_store_returns_the_matching_text(tiny):
    store = InMemoryVectorStore.from_texts(list(DOCS.values()), GraceEmbeddings(encoder=tiny), metadatas=[{"key": k} for k in DOCS])
    assert store.similarity_search(DOCS["interest"], k=1)[0].metadata["key"] == "interest"


def test_langchain_community_faiss(tiny):
    store = FAISS.from_texts(list(DOCS.values()), GraceEmbeddings(encoder=tiny), metadatas=[{"key": k} for k in DOCS])
    docs = store.similarity_search(DOCS["bees"], k=3)
    assert docs[0].metadata["key"] == "bees" and len(docs) == 3


def test_explain_gives_one_rationale_per_text(tiny):
    assert len(GraceEmbeddings(encoder=tiny).explain(["a", "b"])) == 2


def test_missing_langchain_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "langchain_core.embeddings", None)
    monkeypatch.delitem(sys.modules, "grace_rag.integrations.langchain")
    with pytest.raises(ImportError, match=r"pip install 'grace-rag\[frameworks\]'"):
        importlib.import_module("grace_rag.integrations.langchain")


@pytest.mark.integration
def test_real_model_answers_questions_through_faiss(real_encoder):
    store = FAISS.from_texts(list(DOCS.values()), GraceEmbeddings(encoder=real_encoder), metadatas=[{"key": k} for k in DOCS])
    assert store.similarity_search(QUESTIONS["volcano"], k=1)[0].metadata["key"] == "volcano"


# -- HuggingFaceEmbeddings' argument names, pickling and round trips -----------------------------------
def test_every_encoder_config_field_is_a_declared_field():
    import dataclasses

    from grace_rag import EncoderConfig

    assert [f.name for f in dataclasses.fields(EncoderConfig) if f.name not in GraceEmbeddings.model_fields] == []


def test_hugging_face_argument_names_reach_the_encoder(model_dir, tmp_path):
    embeddings = GraceEmbeddings(
        model_name=str(model_dir), cache_folder=str(tmp_path / "c"), show_progress=True,
        model_kwargs={"device": "cpu", "layer": "penultimate", "max_rationale_tokens": 2},
        encode_kwargs={"batch_size": 3, "normalize_embeddings": True, "prompt": "Describe."},
        query_encode_kwargs={"prompt": "Find."},
    )
    config = embeddings.encoder.config
    assert (config.layer.value, config.max_rationale_tokens, config.batch_size, config.show_progress) == ("penultimate", 2, 3, True)
    assert (config.document_instruction, config.query_instruction) == ("Describe.", "Find.")
    assert embeddings.encoder.device == "cpu" and embeddings.layer == "penultimate"
    embeddings.embed_query("a question")
    assert (tmp_path / "c" / "cache.sqlite").is_file()
    assert GraceEmbeddings(model=str(model_dir), device="cpu").model_name == str(model_dir)


@pytest.mark.parametrize("kwargs, message", [
    ({"model_kwargs": {"layer": "last"}, "layer": "penultimate"}, "layer is given twice"),
    ({"model_kwargs": {"device": "cuda"}, "device": "cpu"}, "device is given twice"),
    ({"model_kwargs": {"trust_remote_code": True}}, "model_kwargs does not take 'trust_remote_code'"),
    ({"encode_kwargs": {"normalize_embeddings": False}}, "always L2-normalised"),
    ({"query_encode_kwargs": {"batch_size": 4}}, "accepted keys: normalize_embeddings, prompt"),
])
def test_contradictory_or_unknown_settings_are_errors(model_dir, kwargs, message):
    from grace_rag.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        GraceEmbeddings(model_name=str(model_dir), **kwargs)


def test_unsupported_hugging_face_arguments_are_rejected(model_dir):
    with pytest.raises(ValidationError, match="multi_process"):
        GraceEmbeddings(model_name=str(model_dir), multi_process=True)


def test_pickle_and_model_dump_keep_every_setting(model_dir):
    import pickle

    embeddings = GraceEmbeddings(model_name=str(model_dir), max_rationale_tokens=2, cache=False,
                                 model_kwargs={"device": "cpu", "pooling": "max"})
    blob = pickle.dumps(embeddings)
    assert len(blob) < 20_000  # settings only: the model is loaded again
    for again in (pickle.loads(blob), GraceEmbeddings(**embeddings.model_dump())):
        assert again.fingerprint == embeddings.fingerprint
        assert again.encoder.config == embeddings.encoder.config
        np.testing.assert_allclose(again.embed_documents(list(DOCS.values())), embeddings.embed_documents(list(DOCS.values())), atol=1e-6)
    default = GraceEmbeddings(model_name=str(model_dir), device="cpu", cache=False)
    assert default.fingerprint != embeddings.fingerprint


def test_an_embeddings_object_using_the_sqlite_cache_pickles(model_dir):
    import pickle

    embeddings = GraceEmbeddings(model_name=str(model_dir), device="cpu")  # cache=True: an open SQLite connection
    vector = embeddings.embed_query("cached question")
    again = pickle.loads(pickle.dumps(embeddings))
    assert again.cache is True and again.embed_query("cached question") == vector
