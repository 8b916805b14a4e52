"""The small pure helpers behind the CLI commands."""

import pytest

from pathlib import Path

from grace_rag.config import EncoderConfig
from grace_rag.errors import ConfigError
from grace_rag.indexes.filters import Combine, Condition, Group, Op
from grace_rag.indexes.service import parse_where, source_forms, stored_settings


def test_where_values_are_read_as_json_when_they_parse():
    assert parse_where(["lang=en", "year>=2020", "draft=false", "tags=[1, 2]", "note=a=b", "n!=3", "x<1.5"]) == Group(
        Combine.AND, (Condition("lang", Op.EQ, "en"), Condition("year", Op.GTE, 2020), Condition("draft", Op.EQ, False),
                      Condition("tags", Op.IN, [1, 2]), Condition("note", Op.EQ, "a=b"), Condition("n", Op.NE, 3),
                      Condition("x", Op.LT, 1.5)))
    assert parse_where(["lang=en"]) == Condition("lang", Op.EQ, "en")
    assert parse_where(["tags!=[1]"]) == Condition("tags", Op.NIN, [1])
    assert parse_where(None) is None


def test_source_matches_as_given_or_from_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    absolute = (tmp_path / "docs" / "a.md").as_posix()
    assert parse_where(["source=docs/a.md"]) == Condition("source", Op.IN, ["docs/a.md", absolute])
    assert parse_where(["source!=docs/a.md"]) == Condition("source", Op.NIN, ["docs/a.md", absolute])
    assert source_forms(absolute) == [absolute] and source_forms("x") == ["x", str(Path("x").resolve())]


@pytest.mark.parametrize("bad", ["novalue", "=x", "year>=abc"])
def test_malformed_where_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match="KEY=VALUE|compares numbers"):
        parse_where([bad])


def test_a_new_index_directory_has_no_stored_settings(tmp_path):
    assert stored_settings(tmp_path / "nothing") == (None, {})


def test_an_index_from_before_quantization_existed_is_read_as_float32(tmp_path, model_dir, monkeypatch):
    """A manifest whose settings lack ``quantization`` was built as loaded (float32 on a CPU): on a
    machine where the default ``auto`` means bf16, the index still gets its own float32 encoder back."""
    import json

    from grace_rag.indexes import GraceIndex
    from grace_rag.indexes.ingest import IngestConfig
    from grace_rag.indexes.service import IndexRequest, index_folder, load_encoder, load_recorded_encoder

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Bees dance to show where the flowers are.")
    encoder = load_encoder(str(model_dir), EncoderConfig(cache=False, max_rationale_tokens=2), "cpu")
    index_folder(IndexRequest(path=docs, index_dir=tmp_path / "idx", ingest=IngestConfig(chunk_size=64)), encoder=encoder)
    manifest = tmp_path / "idx" / "manifest.json"
    data = json.loads(manifest.read_text())
    assert data["encoder"]["settings"].pop("quantization") == "none"
    manifest.write_text(json.dumps(data))
    monkeypatch.setenv("GRACE_RAG_NATIVE_BF16", "1")
    with GraceIndex.open(tmp_path / "idx") as index:
        recorded = index.manifest.encoder
        again = load_recorded_encoder(index.path, recorded, "cpu")
    assert recorded.settings["quantization"] == "none"
    assert again.config.quantization.value == "none" and again.fingerprint == recorded.fingerprint
