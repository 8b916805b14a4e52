"""GraceIndex round trips, index types, filters, the fingerprint guard and damaged files."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import grace_rag.indexes.factory as factory_module
import grace_rag.indexes.search as search_module
from grace_rag.errors import GraceIndexError
from grace_rag.indexes import Chunk, EncoderInfo, GraceIndex
from grace_rag.indexes.grace_index import INDEX_FILE, LOCK_FILE, MANIFEST_FILE, STORE_FILE
from grace_rag.indexes.lexical import LEXICAL_DIR
from grace_rag.indexes.store import SCHEMA, ChunkStore, store_state

FACTORIES = ["Flat", "HNSW32", "IVF4,Flat"]
DIM = 16


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def chunks(n: int, prefix: str = "c") -> list[Chunk]:
    return [Chunk(id=f"{prefix}{i}", text=f"text number {i}", source=f"doc{i % 3}.txt", position=i,
                  metadata={"lang": "en" if i % 2 else "fr", "year": 2000 + i % 5}) for i in range(n)]


def filled(path: Path, info: EncoderInfo, factory: str = "auto", n: int = 200) -> tuple[GraceIndex, np.ndarray]:
    index = GraceIndex.create(path, info, factory=factory)
    vectors = unit_vectors(n)
    index.add(chunks(n), vectors)
    index.save()
    return index, vectors


def ids(hits) -> list[str]:
    return [h.id for h in hits]


@pytest.mark.parametrize("factory", FACTORIES)
def test_a_vector_finds_itself_and_reload_returns_the_same_hits(tmp_path, info, factory):
    index, vectors = filled(tmp_path / "ix", info, factory)
    before = [ids(index.search(vectors[i], k=5)) for i in range(0, 200, 20)]
    assert all(hits[0] == f"c{i}" for hits, i in zip(before, range(0, 200, 20)))
    index.close()
    reopened = GraceIndex.open(tmp_path / "ix", encoder=info)
    assert reopened.manifest.factory == factory
    assert [ids(reopened.search(vectors[i], k=5)) for i in range(0, 200, 20)] == before
    hit = reopened.search(vectors[7], k=1)[0]
    assert (hit.text, hit.source, hit.position, hit.metadata) == ("text number 7", "doc1.txt", 7, {"lang": "en", "year": 2002})
    assert hit.score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("factory", FACTORIES)
def test_upsert_replaces_and_delete_removes_for_every_index_type(tmp_path, info, factory):
    index, vectors = filled(tmp_path / "ix", info, factory)
    new = unit_vectors(1, seed=99)[0]
    index.upsert([Chunk(id="c5", text="replaced text")], new[None, :])
    assert index.search(new, k=1)[0].id == "c5" and index.search(new, k=1)[0].text == "replaced text"
    assert "c5" not in ids(index.search(vectors[5], k=3))  # the old vector is gone
    assert index.delete(["c9", "c10", "missing"]) == 2
    assert "c9" not in ids(index.search(vectors[9], k=10))
    assert len(index) == 198
    index.save()
    index.close()
    reopened = GraceIndex.open(tmp_path / "ix")
    assert len(reopened) == 198 and reopened.search(new, k=1)[0].id == "c5"
    assert "c10" not in ids(reopened.search(vectors[10], k=10))


def test_adding_an_existing_id_is_an_error_and_changes_nothing(tmp_path, info):
    index, _ = filled(tmp_path / "ix", info, n=10)
    with pytest.raises(GraceIndexError, match="'c3' already exists"):
        index.add([Chunk(id="c3", text="again")], unit_vectors(1, seed=5))
    assert len(index) == 10 and index.get(["c3"])[0].text == "text number 3"


def test_wrong_dimension_is_an_error(tmp_path, info):
    index = GraceIndex.create(tmp_path / "ix", info)
    with pytest.raises(GraceIndexError, match="dimension 8, the index expects 16"):
        index.add([Chunk(id="a", text="a")], np.ones((1, 8), np.float32))


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize("exact_max", [0, 10_000])  # 0 forces the FAISS IDSelector path
def test_metadata_filter_returns_only_matching_chunks_best_first(tmp_path, info, monkeypatch, factory, exact_max):
    monkeypatch.setattr(search_module, "FILTER_EXACT_MAX", exact_max)
    index, vectors = filled(tmp_path / "ix", info, factory)
    hits = index.search(vectors[3], k=5, where={"lang": "en"})
    assert hits[0].id == "c3"
    assert all(h.metadata["lang"] == "en" for h in hits) and len(hits) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    hits = index.search(vectors[4], k=50, where={"lang": "fr", "year": [2000, 2004]})
    assert hits[0].id == "c4"
    assert {(h.metadata["lang"], h.metadata["year"]) for h in hits} <= {("fr", 2000), ("fr", 2004)}
    assert index.search(vectors[0], k=5, where={"lang": "de"}) == []


def test_filtered_search_agrees_with_brute_force(tmp_path, info):
    index, vectors = filled(tmp_path / "ix", info, "Flat")
    query = unit_vectors(1, seed=7)[0]
    mask = np.array([i % 2 == 1 for i in range(200)])
    expected = [f"c{i}" for i in np.argsort(-(vectors @ query))[:200] if mask[i]][:10]
    assert ids(index.search(query, k=10, where={"lang": "en"})) == expected


def test_fingerprint_guard_names_both_models(tmp_path, info):
    filled(tmp_path / "ix", info, n=5)[0].close()
    other = EncoderInfo(model_name="other-model", fingerprint="0" * 32, dimension=DIM)
    with pytest.raises(GraceIndexError) as err:
        GraceIndex.open(tmp_path / "ix", encoder=other)
    assert "fake-model" in str(err.value) and "other-model" in str(err.value)


def test_automatic_type_follows_the_corpus_as_it_grows(tmp_path, info, monkeypatch):
    monkeypatch.setattr(factory_module, "EXACT_MAX", 50)
    index = GraceIndex.create(tmp_path / "ix", info)
    index.add(chunks(40), unit_vectors(40))
    index.save()
    assert index.manifest.factory == "Flat"
    vectors = unit_vectors(100, seed=3)
    index.add(chunks(100, prefix="d"), vectors)
    index.save()
    assert index.manifest.factory == "HNSW32"
    assert json.loads((tmp_path / "ix" / MANIFEST_FILE).read_text())["factory"] == "HNSW32"
    assert index.search(vectors[42], k=1)[0].id == "d42"


def test_missing_faiss_file_is_rebuilt_from_the_store(tmp_path, info):
    index, vectors = filled(tmp_path / "ix", info, "HNSW32")
    expected = ids(index.search(vectors[11], k=5))
    index.close()
    (tmp_path / "ix" / INDEX_FILE).unlink()
    reopened = GraceIndex.open(tmp_path / "ix")
    assert ids(reopened.search(vectors[11], k=5))[0] == expected[0] == "c11"
    assert (tmp_path / "ix" / INDEX_FILE).exists()


def test_changes_without_save_are_recovered_from_the_store(tmp_path, info):
    index, vectors = filled(tmp_path / "ix", info, n=20)
    extra = unit_vectors(1, seed=42)
    index.add([Chunk(id="late", text="added after the last save")], extra)
    index.delete(["c0"])
    index.close()  # as if the process died here: index.faiss and manifest.json are stale
    reopened = GraceIndex.open(tmp_path / "ix")
    assert reopened.search(extra[0], k=1)[0].id == "late"
    assert "c0" not in ids(reopened.search(vectors[0], k=20)) and len(reopened) == 20


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped"])
def test_a_damaged_faiss_file_is_rebuilt_from_the_store(tmp_path, info, caplog, damage):
    index, vectors = filled(tmp_path / "ix", info, n=20)
    index.close()
    path = tmp_path / "ix" / INDEX_FILE
    data = bytearray(path.read_bytes())
    if damage == "garbage":
        data = bytearray(b"\x00garbage" * (len(data) // 8))
    elif damage == "truncated":
        data = data[:-100]
    else:  # same size, vector bytes changed: only the checksum can tell
        data[-200:-100] = bytes(b ^ 0x5A for b in data[-200:-100])
    path.write_bytes(bytes(data))
    with GraceIndex.open(tmp_path / "ix") as reopened:
        assert [m for m in caplog.messages if "index.faiss is damaged" in m and "rebuilding it" in m]
        assert reopened.search(vectors[3], k=1)[0].id == "c3"
        assert reopened.search(vectors[3], k=1)[0].score == pytest.approx(1.0, abs=1e-5)
    assert GraceIndex.open(tmp_path / "ix").manifest.faiss_digest  # rewritten with its checksum


@pytest.mark.parametrize("content", ["{not json", '{"format": "something-else"}', '{"format": "grace-rag-index", "format_version": 1}', ""])
def test_a_damaged_manifest_is_recreated_from_the_store(tmp_path, info, caplog, content):
    index, vectors = filled(tmp_path / "ix", info, n=5)
    index.close()
    (tmp_path / "ix" / MANIFEST_FILE).write_text(content)
    with GraceIndex.open(tmp_path / "ix", encoder=info) as reopened:
        assert reopened.search(vectors[2], k=1)[0].id == "c2"
    assert any("recreating it (and index.faiss, lexical/) from chunks.sqlite" in m for m in caplog.messages)
    assert json.loads((tmp_path / "ix" / MANIFEST_FILE).read_text())["encoder"]["fingerprint"] == info.fingerprint


def test_corrupted_sqlite_is_a_clear_error(tmp_path, info):
    filled(tmp_path / "ix", info, n=5)[0].close()
    path = tmp_path / "ix" / STORE_FILE
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(GraceIndexError, match="chunks.sqlite"):
        GraceIndex.open(tmp_path / "ix")


def test_damaged_sqlite_pages_are_a_clear_error(tmp_path, info):
    filled(tmp_path / "ix", info, n=300)[0].close()
    path = tmp_path / "ix" / STORE_FILE
    data = bytearray(path.read_bytes())
    data[4096:len(data)] = b"\xff" * (len(data) - 4096)  # keep the header, destroy every other page
    path.write_bytes(bytes(data))
    with pytest.raises(GraceIndexError, match="chunks.sqlite"):
        GraceIndex.open(tmp_path / "ix").search(unit_vectors(1)[0], k=3)


def test_a_directory_that_is_not_an_index_is_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("hello")
    with pytest.raises(GraceIndexError, match="not a grace-rag index"):
        GraceIndex.open(tmp_path / "notes")
    with pytest.raises(GraceIndexError, match="no index at"):
        GraceIndex.open(tmp_path / "missing")


def test_a_manifest_from_another_index_is_refused(tmp_path, info):
    filled(tmp_path / "a", info, n=5)[0].close()
    other = EncoderInfo(model_name="other", fingerprint="1" * 32, dimension=DIM)
    filled(tmp_path / "b", other, n=5)[0].close()
    (tmp_path / "a" / MANIFEST_FILE).write_bytes((tmp_path / "b" / MANIFEST_FILE).read_bytes())
    with pytest.raises(GraceIndexError, match="does not belong"):
        GraceIndex.open(tmp_path / "a")


def test_saving_leaves_no_temporary_files(tmp_path, info):
    index, _ = filled(tmp_path / "ix", info, n=5)
    index.save()
    assert {p.name for p in (tmp_path / "ix").iterdir()} == {INDEX_FILE, STORE_FILE, MANIFEST_FILE, LEXICAL_DIR, LOCK_FILE}
    sqlite3.connect(tmp_path / "ix" / STORE_FILE).execute("SELECT COUNT(*) FROM chunks").fetchone()


def test_info_reports_model_counts_and_sizes(tmp_path, info):
    index, _ = filled(tmp_path / "ix", info, n=12)
    facts = index.info()
    assert facts["model"] == "fake-model" and facts["fingerprint"] == "f" * 32
    assert facts["chunks"] == 12 and facts["factory"] == "Flat" and facts["dimension"] == DIM
    assert set(facts["sizes_bytes"]) == {INDEX_FILE, STORE_FILE, MANIFEST_FILE, LEXICAL_DIR + "/"}
    assert facts["total_bytes"] == sum(facts["sizes_bytes"].values()) > 0


def test_no_pickle_or_eval_on_the_load_path():
    import ast

    import grace_rag.indexes as package

    unsafe_modules = {"pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & unsafe_modules, path.name
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in unsafe_modules, path.name
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"eval", "exec"}, path.name


def test_a_manifest_lost_in_a_crash_is_recreated_from_the_store(tmp_path, info):
    index, vectors = filled(tmp_path / "ix", info, n=30)
    index.close()
    (tmp_path / "ix" / MANIFEST_FILE).unlink()
    reopened = GraceIndex.open(tmp_path / "ix", encoder=info)
    assert reopened.search(vectors[3], k=1)[0].id == "c3" and (tmp_path / "ix" / MANIFEST_FILE).exists()


@pytest.mark.parametrize("schema", ["", "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)", SCHEMA])
def test_a_store_killed_before_initialisation_is_started_again(tmp_path, info, schema):
    (tmp_path / "ix").mkdir()
    with sqlite3.connect(tmp_path / "ix" / STORE_FILE) as db:  # what a kill during creation can leave
        db.executescript(schema)
    db.close()
    with pytest.raises(GraceIndexError, match="not a grace-rag index"):
        GraceIndex.open(tmp_path / "ix")
    index = GraceIndex.open_or_create(tmp_path / "ix", info)
    index.add(chunks(3), unit_vectors(3))
    index.save()
    assert len(GraceIndex.open(tmp_path / "ix", encoder=info)) == 3


def test_forcing_a_factory_on_an_existing_index_rebuilds_it(tmp_path, info):
    index, vectors = filled(tmp_path / "ix", info, n=400)  # IVF8 trains on 8 x 39 vectors or more
    index.close()
    forced = GraceIndex.open_or_create(tmp_path / "ix", info, factory="IVF8,Flat")
    forced.save()
    forced.close()
    reopened = GraceIndex.open(tmp_path / "ix")
    assert reopened.manifest.factory == "IVF8,Flat" and reopened.search(vectors[8], k=1)[0].id == "c8"


def _killed_while_recording_the_encoder(path: Path) -> None:
    """The state a run killed inside its first write transaction leaves: the schema committed, the
    encoder record not, and a hot rollback journal next to the store (a child process spills the
    transaction to disk and dies without committing or rolling back)."""
    path.mkdir()
    ChunkStore(path / STORE_FILE, 16, create=True).close()
    child = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA cache_size=2'); db.execute('BEGIN IMMEDIATE')\n"
        "db.execute(\"INSERT INTO meta VALUES ('encoder', '{}')\")\n"
        "for _ in range(100): db.execute('INSERT INTO files (path, hash, chunks, indexed_at) VALUES (?, ?, 0, 0)', (os.urandom(8).hex(), os.urandom(3000).hex()))\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", child, str(path / STORE_FILE)], check=True)
    assert (path / f"{STORE_FILE}-journal").stat().st_size > 0


def test_a_store_killed_in_its_first_transaction_is_started_again(tmp_path, info):
    """Caught by test_crash_resume ("at creation"): the half-done transaction is rolled back, the store
    is found empty and unborn, and the next run creates the index as if nothing had happened."""
    path = tmp_path / "idx"
    _killed_while_recording_the_encoder(path)
    assert store_state(path / STORE_FILE) == "interrupted"
    with GraceIndex.open_or_create(path, info) as index:
        assert len(index) == 0 and index.manifest.encoder.fingerprint == info.fingerprint


def test_reading_a_store_killed_in_its_first_transaction_says_it_is_no_index(tmp_path, info):
    path = tmp_path / "idx"
    _killed_while_recording_the_encoder(path)
    with pytest.raises(GraceIndexError, match="is not a grace-rag index"):
        GraceIndex.open(path)
