"""GraceIndexRetriever (LangChain) over a grace-rag index: the standard retriever suite, modes and dict filters."""

import pickle

import pytest
from index_support import ALL, small_index
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests
from pydantic import ValidationError

from grace_rag.errors import ConfigError
from grace_rag.integrations.langchain_retriever import GraceIndexRetriever
from frameworks_support import tiny_encoder_once


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return small_index(tmp_path_factory.mktemp("langchain") / "ix", tiny_encoder_once())


class TestGraceIndexRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _index(self, index_dir):
        self._dir = index_dir

    @property
    def retriever_constructor(self):
        return GraceIndexRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"index_dir": self._dir, "encoder": tiny_encoder_once()}

    @property
    def retriever_query_example(self) -> str:
        return "How do bees tell each other where flowers are?"


QUERY = "bees honey magma interest volcano flowers"
CASES = [
    ({"topic": "bees"}, {"n0", "n2"}),
    ({"topic": ["bees", "finance"]}, {"n0", "n2", "n3"}),
    ({"topic": {"$in": ["bees", "finance"]}}, {"n0", "n2", "n3"}),
    ({"topic": {"$nin": ["bees", "finance"]}}, {"n1", "n4"}),
    ({"topic": {"$ne": "bees"}}, {"n1", "n3", "n4"}),
    ({"year": {"$gt": 2021}}, {"n3", "n4"}),
    ({"year": {"$gte": 2021, "$lt": 2023}}, {"n2", "n3"}),
    ({"year": {"$lte": 2019}}, {"n0"}),
    ({"$or": [{"topic": "finance"}, {"year": 2019}]}, {"n0", "n3"}),
    ({"$and": [{"topic": "bees"}, {"year": {"$gt": 2020}}]}, {"n2"}),
    ({"$not": {"topic": "bees"}}, {"n1", "n3", "n4"}),
    ({"source": "/notes/bees.txt", "position": {"$gt": 0}}, {"n2"}),
    (None, ALL),
]


@pytest.mark.parametrize(("flt", "expected"), CASES)
def test_each_dict_filter_operator(index_dir, flt, expected):
    retriever = GraceIndexRetriever(index_dir=index_dir, k=10, mode="lexical", filter=flt)
    assert {d.id for d in retriever.invoke(QUERY)} == expected


def test_documents_carry_source_scores_and_both_ranks(index_dir):
    retriever = GraceIndexRetriever(index_dir=index_dir, encoder=tiny_encoder_once(), k=3)
    docs = retriever.invoke("Bees store honey in wax combs for the winter.")
    assert len(docs) == 3 and isinstance(docs[0], Document) and docs[0].id == "n2"
    meta = docs[0].metadata
    assert meta["source"] == "/notes/bees.txt" and meta["topic"] == "bees" and meta["dense_rank"] == 1 and meta["lexical_rank"] == 1
    assert {"score", "dense_score", "lexical_score", "rationale", "query_rationale"} <= set(meta)


def test_per_call_options_override_the_constructor(index_dir):
    retriever = GraceIndexRetriever(index_dir=index_dir, encoder=tiny_encoder_once(), k=5)
    docs = retriever.invoke("magma", k=1, mode="lexical", filter={"year": 2023})
    assert [d.id for d in docs] == ["n4"] and docs[0].metadata["dense_rank"] is None
    rrf = retriever.invoke("magma", fusion="rrf")
    assert rrf[0].metadata["score"] <= 2 / 61
    with pytest.raises(TypeError, match="per call you can pass"):
        retriever.invoke("magma", top_k=2)


def test_bad_settings_are_errors(index_dir):
    with pytest.raises(ValidationError, match="unknown mode 'sparse'; valid values are: dense, lexical, hybrid"):
        GraceIndexRetriever(index_dir=index_dir, mode="sparse")
    with pytest.raises(ValidationError, match="alpha must be between 0 and 1"):
        GraceIndexRetriever(index_dir=index_dir, alpha=-1)
    with pytest.raises(ValidationError):
        GraceIndexRetriever(index_dir=index_dir, top_k=3)
    with pytest.raises(ConfigError, match="unknown filter key 'colour'"):
        GraceIndexRetriever(index_dir=index_dir, mode="lexical", filter={"colour": "red"}).invoke("bees")


def test_a_lexical_retriever_pickles_before_use(index_dir):
    retriever = GraceIndexRetriever(index_dir=index_dir, mode="lexical", k=2)
    copy = pickle.loads(pickle.dumps(retriever))
    assert [d.id for d in copy.invoke("magma")] == [d.id for d in retriever.invoke("magma")]
