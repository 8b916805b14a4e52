"""Every file of an index damaged four ways (bytes flipped, truncated, emptied, another version).

Files derived from chunks.sqlite (index.faiss, manifest.json, every file of lexical/, write.lock)
are repaired: the next command succeeds with the same hits as the intact index, says what it
rebuilt, and leaves files that match their checksums, so the command after it warns about nothing.
What cannot be rebuilt (chunks.sqlite itself, a manifest of a newer format) is one line naming the
file and the safe fix, and the directory is left exactly as it was.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pytest
from robustness_support import changes, edit_json, flip, one_line, run_sql, snapshot, truncate
from typer.testing import CliRunner

from grace_rag.cli.app import app
from grace_rag.indexes.files import directory_digest, file_checksum

pytestmark = pytest.mark.bad_input
runner = CliRunner()
LEXICAL = ["lexical/fids.npy", "lexical/params.index.json", "lexical/vocab.index.json", "lexical/data.csc.index.npy",
           "lexical/indices.csc.index.npy", "lexical/indptr.csc.index.npy"]
DERIVED = ["index.faiss", *LEXICAL, "write.lock"]


def other_version(name: str) -> Callable[[Path], None]:
    """A well-formed file of another version or another index in place of ``name``."""
    def damage(path: Path) -> None:
        if name == "index.faiss":
            faiss.write_index(faiss.IndexIDMap2(faiss.IndexFlatIP(32)), str(path))  # valid, empty, not this index
        elif name == "manifest.json":
            edit_json(path, lambda m: m.update(format_version=99))
        elif name == "chunks.sqlite":
            run_sql(path, "INSERT OR REPLACE INTO meta VALUES ('store_version', '99')")
        elif name.endswith(".json"):
            edit_json(path, lambda d: d.update({"version": "99.0"}) if isinstance(d, dict) else None)
        elif name.endswith(".npy"):
            np.save(path, np.load(path).astype(np.float64), allow_pickle=False)  # another dtype, same values
        else:
            path.write_text("pid 99999\n")
    return damage


DAMAGES = {
    "flipped": lambda path: flip(path, start=0, step=7),
    "truncated": lambda path: truncate(path, 0.5),
    "emptied": lambda path: path.write_bytes(b""),
}
REPAIRED = [(name, kind) for name in DERIVED for kind in (*DAMAGES, "other-version")]
REPAIRED += [("manifest.json", kind) for kind in DAMAGES]
REFUSED = {  # (file, damage): fragment of the one-line error
    ("manifest.json", "other-version"): "manifest.json has index format version 99",
    ("chunks.sqlite", "flipped"): "chunks.sqlite is damaged",
    ("chunks.sqlite", "truncated"): "chunks.sqlite is damaged",
    ("chunks.sqlite", "emptied"): "chunks.sqlite is damaged (it is empty: 0 bytes)",
    ("chunks.sqlite", "other-version"): "chunks.sqlite has store version 99",
}


def damage(index: Path, name: str, kind: str) -> None:
    path = index / name
    (other_version(name) if kind == "other-version" else DAMAGES[kind])(path)


def query(index: str, model: Path, text: str = "lava flows from volcanoes") -> tuple[int, str, str]:
    result = runner.invoke(app, ["query", text, "--index", index, "--model", str(model), "--device", "cpu",
                                 "-k", "5", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stdout, result.stderr


def hits(stdout: str) -> list[tuple]:
    return [(h["id"], h["dense_rank"], h["lexical_rank"], round(h["score"], 4)) for h in json.loads(stdout)["hits"]]


@pytest.mark.parametrize(("name", "kind"), REPAIRED, ids=[f"{n}-{k}" for n, k in REPAIRED])
def test_a_damaged_derived_file_is_rebuilt_from_the_store(name, kind, work, model_dir, caplog):
    shutil.copytree(work / "ix", work / "intact")
    code, want, _ = query("intact", model_dir)
    assert code == 0
    damage(work / "ix", name, kind)
    caplog.set_level(logging.WARNING)
    code, got, err = query("ix", model_dir)
    assert code == 0 and "Traceback" not in err, err
    assert hits(got) == hits(want)
    manifest = json.loads((work / "ix" / "manifest.json").read_text())
    assert manifest["faiss_digest"] == file_checksum(work / "ix" / "index.faiss")
    assert manifest["lexical"]["digest"] == directory_digest(work / "ix" / "lexical")
    if name != "write.lock":  # the lock file's content means nothing: there is nothing to repair
        assert any(Path(name).parts[0].replace("lexical", "lexical index") in m for m in caplog.messages), caplog.messages
    caplog.clear()
    assert query("ix", model_dir)[0] == 0 and not caplog.messages  # repaired for good: no warning the next time


@pytest.mark.parametrize(("name", "kind"), list(REFUSED), ids=[f"{n}-{k}" for n, k in REFUSED])
def test_damage_that_cannot_be_rebuilt_is_one_line_and_touches_nothing(name, kind, work, model_dir):
    damage(work / "ix", name, kind)
    before = snapshot(work / "ix")
    code, _, err = query("ix", model_dir)
    assert code == 1
    line = one_line(err)
    assert REFUSED[(name, kind)] in line and ("restore" in line or "upgrade" in line), line
    assert "delete the index" not in line and "re-index" not in line
    assert not changes(before, snapshot(work / "ix"))
