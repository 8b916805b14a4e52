"""GraceIndexRetriever (LlamaIndex) over a grace-rag index: modes, MetadataFilters operators, ranks in metadata."""

import pytest
from index_support import ALL, small_index
from llama_index.core import QueryBundle
from llama_index.core.vector_stores.types import (
    FilterCondition, FilterOperator, MetadataFilter, MetadataFilters, VectorStoreQueryMode,
)

from grace_rag.errors import ConfigError
from grace_rag.integrations.llama_index import GraceEmbedding, GraceIndexRetriever


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny):
    return small_index(tmp_path_factory.mktemp("llama") / "ix", tiny)


def f(key, value, op=FilterOperator.EQ):
    return MetadataFilter(key=key, value=value, operator=op)


CASES = [
    (f("topic", "bees"), {"n0", "n2"}),
    (f("topic", "bees", FilterOperator.NE), {"n1", "n3", "n4"}),
    (f("year", 2021, FilterOperator.GT), {"n3", "n4"}),
    (f("year", 2021, FilterOperator.GTE), {"n2", "n3", "n4"}),
    (f("year", 2021, FilterOperator.LT), {"n0", "n1"}),
    (f("year", 2021, FilterOperator.LTE), {"n0", "n1", "n2"}),
    (f("year", 2020.5, FilterOperator.GT), {"n2", "n3", "n4"}),
    (f("topic", ["bees", "finance"], FilterOperator.IN), {"n0", "n2", "n3"}),
    (f("topic", ["bees", "finance"], FilterOperator.NIN), {"n1", "n4"}),
    (MetadataFilters(filters=[f("topic", "bees"), f("year", 2020, FilterOperator.GT)]), {"n2"}),
    (MetadataFilters(filters=[f("topic", "finance"), f("year", 2019)], condition=FilterCondition.OR), {"n0", "n3"}),
    (MetadataFilters(filters=[f("topic", "bees"), f("topic", "geology")], condition=FilterCondition.NOT), {"n3", "n4"}),
    (MetadataFilters(filters=[f("year", 2023), MetadataFilters(
        filters=[f("topic", "bees"), f("year", 2019, FilterOperator.GT)])], condition=FilterCondition.OR), {"n2", "n4"}),
    (MetadataFilters(filters=[f("source", "/notes/bees.txt")]), {"n0", "n2"}),  # a chunk column
    ({"year": {"$lte": 2019}}, {"n0"}),  # a dict works too
    (None, ALL),
]


@pytest.mark.parametrize(("filters", "expected"), CASES)
def test_each_llama_index_filter_operator(index_dir, filters, expected):
    wrapped = filters if filters is None or isinstance(filters, (MetadataFilters, dict)) else MetadataFilters(filters=[filters])
    retriever = GraceIndexRetriever(index_dir, filters=wrapped, mode="lexical", similarity_top_k=10)
    nodes = retriever.retrieve("bees honey magma interest volcano flowers")
    assert {n.node.node_id for n in nodes} == expected


def test_hybrid_nodes_carry_both_ranks_outside_the_llm_prompt(index_dir, tiny):
    retriever = GraceIndexRetriever(index_dir, encoder=GraceEmbedding(encoder=tiny), similarity_top_k=5)
    nodes = retriever.retrieve(QueryBundle("Bees store honey in wax combs for the winter."))
    assert len(nodes) == 5 and nodes[0].node.node_id == "n2"
    top = nodes[0].node.metadata
    assert top["dense_rank"] == 1 and top["lexical_rank"] == 1 and nodes[0].score == pytest.approx(max(n.score for n in nodes))
    assert "rationale" in top and "dense_rank" not in nodes[0].node.get_content(metadata_mode="llm")
    dense = GraceIndexRetriever(index_dir, encoder=tiny, mode=VectorStoreQueryMode.DEFAULT).retrieve("honey")
    assert all(n.node.metadata["lexical_rank"] is None for n in dense)
    sparse = GraceIndexRetriever(index_dir, mode=VectorStoreQueryMode.SPARSE).retrieve("magma")  # no model needed
    assert {n.node.node_id for n in sparse} == {"n1", "n4"}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"filters": MetadataFilters(filters=[f("topic", "be", FilterOperator.TEXT_MATCH)])}, "TEXT_MATCH on 'topic' is not supported"),
    ({"filters": MetadataFilters(filters=[f("colour", "red")])}, "unknown filter key 'colour'"),
    ({"filters": MetadataFilters(filters=[f("year", "2020", FilterOperator.GT)])}, "compares numbers"),
    ({"mode": "mmr"}, "unknown mode 'mmr'; valid values are: dense, lexical, hybrid"),
    ({"alpha": 2.0}, "alpha must be between 0 and 1"),
])
def test_bad_options_are_one_line_errors_at_construction(index_dir, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GraceIndexRetriever(index_dir, **kwargs)
