"""`grace-rag index / query / info` through typer's CliRunner, on a tiny model saved to disk."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grace_rag.cli.app import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "docs"
DOCS = ["honeybees.html", "volcanoes.txt", "python_decorators.md"]
runner = CliRunner()


@pytest.fixture
def docs(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GRACE_RAG_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in DOCS:
        shutil.copy(EXAMPLES / name, folder / name)
    return folder


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def index(docs: Path, model_dir: Path, *extra: str):
    return invoke("index", docs, "--model", model_dir, "--rationale-tokens", "4", "--chunk-size", "96", *extra)


def one_red_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0]), result.stderr
    return errors[0]


@pytest.mark.parametrize("command", ["index", "query", "info"])
def test_every_command_has_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "--index" in result.output


def test_index_then_query_and_info_in_the_default_directory(docs, model_dir):
    result = index(docs, model_dir, "--quiet")
    assert result.exit_code == 0, result.output
    assert Path(".grace-index/manifest.json").exists()
    info = json.loads(invoke("info", "--json").stdout)
    assert info["files"] == 3 and info["chunks"] > 3 and info["model"] == str(model_dir)
    assert info["factory"] == "Flat" and info["sizes_bytes"]["index.faiss"] > 0

    text = (docs / "volcanoes.txt").read_text().split("\n\n")[0]
    payload = json.loads(invoke("query", text[:200], "-k", "2", "--json").stdout)
    assert payload["query"] == text[:200] and len(payload["hits"]) == 2
    assert set(payload["hits"][0]) >= {"id", "score", "source", "text"}
    assert payload["hits"][0]["source"].endswith("volcanoes.txt")
    assert "rationale" not in payload["hits"][0]


def test_index_reports_and_second_run_embeds_nothing(docs, model_dir):
    first = json.loads(index(docs, model_dir, "--json").stdout)
    assert first["files_indexed"] == 3 and first["chunks_added"] == first["chunks_embedded"] > 0
    (docs / "volcanoes.txt").unlink()
    second = json.loads(index(docs, model_dir, "--json").stdout)
    assert second["chunks_embedded"] == 0 and second["files_removed"] == 1 and second["chunks_removed"] > 0
    text = invoke("info").stdout
    assert "files           2" in text and "index.faiss" in text


def test_progress_and_human_summary(docs, model_dir):
    (docs / "broken.pdf").write_bytes(b"not a pdf at all")
    result = index(docs, model_dir, "--index", "ix")
    assert result.exit_code == 0
    assert "4 files: 3 new or changed" in result.stdout and "1 skipped" in result.stdout
    assert "skipped docs/broken.pdf" in result.stdout
    assert "embedding" in result.stderr  # the progress bar


def test_query_explain_and_filter(docs, model_dir):
    index(docs, model_dir, "--quiet")
    result = invoke("query", "bees", "--explain", "-k", "3")
    assert result.exit_code == 0 and "query rationale:" in result.stdout and result.stdout.count("why:") == 3
    payload = json.loads(invoke("query", "bees", "--where", "extension=.md", "--explain", "--json").stdout)
    assert payload["hits"] and {Path(h["source"]).suffix for h in payload["hits"]} == {".md"}
    assert "query_rationale" in payload and all("rationale" in h for h in payload["hits"])


def test_a_different_encoder_is_refused_naming_both_models(docs, model_dir):
    index(docs, model_dir, "--quiet")
    line = one_red_line(index(docs, model_dir, "--quiet", "--rationale-tokens", "2"))
    assert "was built with model" in line and line.count(str(model_dir)) == 2
    assert "max_rationale_tokens=4" in line


def test_missing_path_is_one_clear_line(docs, model_dir):
    assert "does not exist" in one_red_line(index(docs / "nope", model_dir))


def test_empty_folder_is_one_clear_line(docs, model_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no files to index" in one_red_line(index(tmp_path / "empty", model_dir))


def test_missing_foreign_and_corrupted_indexes_are_one_clear_line(docs, model_dir, tmp_path):
    assert "no index at" in one_red_line(invoke("query", "x"))
    assert "not a grace-rag index" in one_red_line(invoke("info", "--index", docs))
    index(docs, model_dir, "--quiet")
    Path(".grace-index/manifest.json").write_text("{broken")
    assert "manifest.json is corrupted" in one_red_line(invoke("query", "bees"))
    assert "corrupted" in one_red_line(invoke("info"))
    assert "empty" in one_red_line(invoke("query", "  ", "--index", "whatever"))
