"""The small pure helpers behind the CLI commands."""

import pytest

from grace_rag.errors import GraceIndexError
from grace_rag.indexes.service import parse_where, stored_settings


def test_where_values_are_read_as_json_when_they_parse():
    assert parse_where(["lang=en", "year=2020", "draft=false", "tags=[1, 2]", "note=a=b"]) == {
        "lang": "en", "year": 2020, "draft": False, "tags": [1, 2], "note": "a=b",
    }
    assert parse_where(None) == {}


@pytest.mark.parametrize("bad", ["novalue", "=x"])
def test_malformed_where_is_a_clear_error(bad):
    with pytest.raises(GraceIndexError, match="KEY=VALUE"):
        parse_where([bad])


def test_a_new_index_directory_has_no_stored_settings(tmp_path):
    assert stored_settings(tmp_path / "nothing") == (None, {})
