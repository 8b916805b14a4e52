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
