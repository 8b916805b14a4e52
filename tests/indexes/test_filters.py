"""Every filter operator on a small index, on both sides of the search, and the errors of bad filters."""

import numpy as np
import pytest

from grace_rag.errors import ConfigError
from grace_rag.indexes import Chunk, GraceIndex
from grace_rag.indexes.filters import Combine, Condition, Group, Op, parse_filter, to_sql

DIM = 16
# (id, source, year, lang); "c5" has no lang and "c6" no year: missing keys
ROWS = [("c0", "/d/a.md", 2019, "en"), ("c1", "/d/a.md", 2020, "fr"), ("c2", "/d/sub/b.txt", 2021, "en"),
        ("c3", "/d/sub/b.txt", 2022, "de"), ("c4", "/e/c.md", 2023, "en"), ("c5", "/e/c.md", 2024, None),
        ("c6", "/e/c.md", None, "fr")]


@pytest.fixture
def index(tmp_path, info):
    chunks = []
    for position, (cid, source, year, lang) in enumerate(ROWS):
        metadata = {k: v for k, v in {"year": year, "lang": lang}.items() if v is not None}
        chunks.append(Chunk(id=cid, text=f"bees and honey, chunk {cid}", source=source, position=position, metadata=metadata))
    vectors = np.random.default_rng(0).standard_normal((len(ROWS), DIM)).astype(np.float32)
    built = GraceIndex.create(tmp_path / "ix", info)
    built.add(chunks, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    built.save()
    yield built
    built.close()


def found(index, where) -> set[str]:
    """Ids matched on the dense side and on the lexical side (which must agree)."""
    dense = {h.id for h in index.search(np.ones(DIM, np.float32) / 4, k=100, where=where)}
    lexical = {h.id for h in index.search(text="honey bees", k=100, where=where)}
    assert dense == lexical
    return dense


CASES = [
    ({"lang": "en"}, {"c0", "c2", "c4"}),
    ({"lang": {"$eq": "en"}}, {"c0", "c2", "c4"}),
    ({"lang": {"$ne": "en"}}, {"c1", "c3", "c5", "c6"}),  # a missing key is "not equal"
    ({"year": {"$gt": 2021}}, {"c3", "c4", "c5"}),
    ({"year": {"$gte": 2021}}, {"c2", "c3", "c4", "c5"}),
    ({"year": {"$lt": 2021}}, {"c0", "c1"}),
    ({"year": {"$lte": 2021}}, {"c0", "c1", "c2"}),
    ({"year": {"$gte": 2020, "$lt": 2023}}, {"c1", "c2", "c3"}),
    ({"lang": ["fr", "de"]}, {"c1", "c3", "c6"}),
    ({"lang": {"$in": ["fr", "de"]}}, {"c1", "c3", "c6"}),
    ({"lang": {"$nin": ["fr", "de"]}}, {"c0", "c2", "c4", "c5"}),
    ({"$and": [{"lang": "en"}, {"year": {"$gt": 2019}}]}, {"c2", "c4"}),
    ({"$or": [{"lang": "de"}, {"year": 2019}]}, {"c0", "c3"}),
    ({"$not": {"lang": "en"}}, {"c1", "c3", "c5", "c6"}),
    ({"$or": [{"$and": [{"lang": "fr"}, {"year": {"$lt": 2021}}]}, {"source": "/e/c.md", "year": 2024}]}, {"c1", "c5"}),
    ({"lang": None}, {"c5"}),
    ({"source": "/d/a.md"}, {"c0", "c1"}),  # a column, not metadata
    ({"position": {"$gte": 5}}, {"c5", "c6"}),
    ({"id": {"$in": ["c0", "c6"]}}, {"c0", "c6"}),
    ({"lang": "en", "year": 2023}, {"c4"}),
    ({}, {r[0] for r in ROWS}),
]


@pytest.mark.parametrize(("where", "expected"), CASES)
def test_each_operator_selects_the_right_chunks_on_both_sides(index, where, expected):
    assert found(index, where) == expected


def test_filter_objects_work_as_dicts_do(index):
    flt = Group(Combine.OR, (Condition("year", Op.LT, 2020), Condition("lang", Op.EQ, "de")))
    assert found(index, flt) == {"c0", "c3"}


def test_unknown_key_is_one_line_listing_the_keys(index):
    with pytest.raises(ConfigError) as err:
        index.search(np.ones(DIM, np.float32), k=3, where={"language": "en"})
    message = str(err.value)
    assert "unknown filter key 'language'" in message and "\n" not in message
    assert "keys in this index: content_hash, id, lang, position, rationale, source, text, year" in message


@pytest.mark.parametrize(("where", "match"), [
    ({"year": {"$gt": "2020"}}, "compares numbers"),
    ({"year": {"$gt": True}}, "compares numbers"),
    ({"lang": {"$like": "e%"}}, r"unknown filter operator '\$like'.*\$eq"),
    ({"$xor": []}, "unknown filter operator"),
    ({"lang": {"$in": "en"}}, "needs a list"),
    ({"lang": {"a": 1}}, "unknown filter operator"),
    ({"$or": "lang"}, "list of filter dicts"),
    ({"lang": {"$eq": [1, [2]]}}, "compares strings, numbers"),
    ("lang=en", "a filter is a dict"),
])
def test_bad_filters_are_one_line_config_errors(index, where, match):
    with pytest.raises(ConfigError, match=match):
        index.search(np.ones(DIM, np.float32), k=3, where=where)


def test_sql_is_parameterised_and_empty_groups_are_neutral():
    clause, params = to_sql(parse_filter({"lang": "x'); DROP TABLE chunks; --"}))
    assert "DROP" not in clause and params[-1] == "x'); DROP TABLE chunks; --"
    assert to_sql(Group(Combine.AND, ()))[0] == "1" and to_sql(Group(Combine.OR, ()))[0] == "0"
    assert to_sql(None) == ("1", [])


def test_delete_source_removes_a_file_or_a_folder_and_stays_searchable(index, tmp_path):
    assert index.delete_source("/d/a.md") == 2
    assert index.delete_source("/d") == 2  # everything under /d/ (here /d/sub/b.txt)
    assert index.delete_source("/nowhere") == 0
    assert found(index, {}) == {"c4", "c5", "c6"}
    index.save()
    index.close()
    with GraceIndex.open(tmp_path / "ix") as reopened:
        assert found(reopened, {}) == {"c4", "c5", "c6"}
        assert reopened.search(text="honey", k=10, mode="lexical")[0].lexical_rank == 1
