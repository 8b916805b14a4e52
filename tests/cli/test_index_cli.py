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
    return invoke("index", docs, "--model", model_dir, "--max-rationale-tokens", "4", "--chunk-size", "96", *extra)


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
    line = one_red_line(index(docs, model_dir, "--quiet", "--max-rationale-tokens", "2"))
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
    Path(".grace-index/manifest.json").write_text("{broken")  # derived from chunks.sqlite: recreated, not fatal
    assert invoke("query", "bees", "--mode", "lexical").exit_code == 0
    assert json.loads(Path(".grace-index/manifest.json").read_text())["counts"]["files"] == 3
    assert "empty" in one_red_line(invoke("query", "  ", "--index", "whatever"))


def test_query_modes_report_each_sides_rank_in_json(docs, model_dir):
    index(docs, model_dir, "--quiet")
    lexical = json.loads(invoke("query", "magma eruption", "--mode", "lexical", "--json").stdout)
    assert lexical["mode"] == "lexical" and lexical["hits"]
    assert all(h["lexical_rank"] == i and h["dense_rank"] is None for i, h in enumerate(lexical["hits"], 1))
    assert Path(lexical["hits"][0]["source"]).name == "volcanoes.txt"
    hybrid = json.loads(invoke("query", "magma eruption", "-k", "3", "--json").stdout)
    assert hybrid["mode"] == "hybrid" and hybrid["fusion"]["fusion"] in {"rrf", "weighted"} and len(hybrid["hits"]) == 3
    assert all({"dense_rank", "dense_score", "lexical_rank", "lexical_score"} <= set(h) for h in hybrid["hits"])
    rrf = json.loads(invoke("query", "magma eruption", "--fusion", "rrf", "--json").stdout)
    assert rrf["fusion"]["fusion"] == "rrf" and rrf["hits"][0]["score"] <= 2 / 61
    weighted = json.loads(invoke("query", "magma eruption", "--alpha", "0", "--json").stdout)
    assert weighted["fusion"] == {**weighted["fusion"], "fusion": "weighted", "alpha": 0.0}
    lowest = min(h["score"] for h in lexical["hits"])  # min-max puts the weakest lexical matches at 0, with the misses
    top = sum(h["score"] > lowest for h in lexical["hits"])
    assert top and [h["id"] for h in weighted["hits"][:top]] == [h["id"] for h in lexical["hits"]][:top]
    dense = json.loads(invoke("query", "magma eruption", "--mode", "dense", "--json").stdout)
    assert all(h["lexical_rank"] is None and h["dense_rank"] == i for i, h in enumerate(dense["hits"], 1))
    human = invoke("query", "magma eruption", "-k", "2").stdout
    assert "dense #" in human and "lexical #" in human


def test_bad_mode_alpha_fusion_and_filter_keys_are_one_line(docs, model_dir):
    index(docs, model_dir, "--quiet")
    assert "unknown mode 'sparse'; valid values are: dense, lexical, hybrid" in one_red_line(invoke("query", "x", "--mode", "sparse"))
    assert "alpha must be between 0 and 1" in one_red_line(invoke("query", "x", "--alpha", "1.5"))
    assert "valid values are: rrf, weighted" in one_red_line(invoke("query", "x", "--fusion", "max"))
    line = one_red_line(invoke("query", "x", "--where", "language=en"))
    assert "unknown filter key 'language'" in line and "extension, file_name" in line and "source" in line
    assert "KEY=VALUE" in one_red_line(invoke("query", "x", "--where", "novalue"))


def test_where_reaches_source_and_numeric_columns(docs, model_dir):
    index(docs, model_dir, "--quiet")
    hits = json.loads(invoke("query", "bees", "--where", "source=docs/volcanoes.txt", "--json").stdout)["hits"]
    assert hits and {Path(h["source"]).name for h in hits} == {"volcanoes.txt"}
    hits = json.loads(invoke("query", "bees", "--where", "position>=1", "--where", "extension!=.md", "-k", "50", "--json").stdout)["hits"]
    assert hits and all(h["position"] >= 1 and not h["source"].endswith(".md") for h in hits)


def test_delete_removes_a_file_without_a_model_and_index_adds_it_back(docs, model_dir):
    index(docs, model_dir, "--quiet")
    result = invoke("delete", "docs/volcanoes.txt", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["removed_chunks"]["docs/volcanoes.txt"] > 0 and payload["files"] == 2
    assert not any("volcanoes" in h["source"] for h in json.loads(invoke("query", "magma", "--mode", "lexical", "--json").stdout)["hits"])
    assert "nothing in .grace-index comes from docs/nope.txt" in one_red_line(invoke("delete", "docs/nope.txt"))
    again = json.loads(index(docs, model_dir, "--json").stdout)
    assert again["files_indexed"] == 1 and again["chunks_added"] == payload["removed_chunks"]["docs/volcanoes.txt"]


def test_encoder_settings_are_recorded_and_queries_reuse_them(docs, model_dir):
    result = index(docs, model_dir, "--quiet", "--layer", "penultimate", "--pooling", "max")
    assert result.exit_code == 0, result.output
    settings = json.loads(Path(".grace-index/manifest.json").read_text())["encoder"]["settings"]
    assert (settings["layer"], settings["pooling"], settings["max_rationale_tokens"]) == ("penultimate", "max", 4)
    assert json.loads(invoke("query", "bees", "--mode", "dense", "--json").stdout)["hits"]  # no options needed
    assert json.loads(invoke("index", docs, "--json").stdout)["chunks_embedded"] == 0  # the index knows its settings
    line = one_red_line(invoke("index", docs, "--layer", "last"))
    assert "settings differ" in line and "layer='penultimate'" in line
    wrong = index(docs, model_dir, "--index", "other", "--pooling", "median")  # a usage error: exit 2, one line
    assert wrong.exit_code == 2 and "'median' is not one of 'mean', 'last'" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1


def test_help_lists_the_encoder_choices_from_the_config():
    from grace_rag.config import Layer, Pooling

    text = " ".join(invoke("index", "--help").output.split())
    assert all(p.value in text for p in Pooling) and all(layer.value in text for layer in Layer)


def test_quiet_hides_only_the_progress_bar(docs, model_dir):
    result = index(docs, model_dir, "-q")
    assert result.exit_code == 0 and "3 files: 3 new or changed" in result.stdout and "embedding" not in result.stderr


def test_an_unchanged_folder_needs_no_model(docs, model_dir, tmp_path):
    own_model = tmp_path / "model"
    shutil.copytree(model_dir, own_model)
    assert index(docs, own_model, "--quiet").exit_code == 0
    shutil.rmtree(own_model)  # the index's model is gone: only work that needs it can fail
    again = invoke("index", docs, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["files_unchanged"] == 3
    assert json.loads(invoke("query", "bees", "--mode", "lexical", "--json").stdout)["hits"]
    (docs / "volcanoes.txt").unlink()
    assert json.loads(invoke("index", docs, "--json").stdout)["files_removed"] == 1  # removals need no model
    (docs / "new.txt").write_text("Penguins huddle against the cold.")
    assert "does not exist" in one_red_line(invoke("index", docs))


def test_lexical_text_option_is_recorded_kept_and_shown_and_a_bad_value_is_refused(docs, model_dir):
    from grace_rag.indexes import GraceIndex

    assert index(docs, model_dir, "--quiet", "--lexical-text", "text+rationale").exit_code == 0
    with GraceIndex.open(".grace-index") as built:
        assert built.manifest.lexical_text.value == "text+rationale"
    assert json.loads(invoke("info", "--json").stdout)["lexical_text"] == "text+rationale"
    assert "BM25 (bm25s) over text+rationale" in invoke("info").stdout
    assert index(docs, model_dir, "--quiet").exit_code == 0  # a later run keeps the recorded choice
    with GraceIndex.open(".grace-index") as kept:
        assert kept.manifest.lexical_text.value == "text+rationale"
    result = index(docs, model_dir, "--quiet", "--lexical-text", "rationale")
    assert result.exit_code == 2 and "text+rationale" in result.output
