"""A second writer, configs, qrels and filters (issue 21, items 10, 13, 15).

A second writer stops at once with one line (no "interrupted run" warning, no Python advice); a
YAML config may not use aliases (a "billion laughs" file was printed in full); an error line is
never longer than 2,000 characters; qrels without a positive judgement are an error, not zeros;
a --where value that looks like JSON but is not is an error, not a literal string; train prints
no FutureWarning.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from robustness_support import changes, finish_mid_write, one_line, refused, snapshot, start_mid_write
from typer.testing import CliRunner

from grace_rag.cli.app import app
from grace_rag.indexes import GraceIndex

runner = CliRunner()
bad_input = pytest.mark.bad_input
TRAIN = ("train", "good.jsonl", "--out", "out", "-q")


# -- 13. a second writer ------------------------------------------------------------------------------------
@bad_input
@pytest.mark.slow
@pytest.mark.parametrize("args", [["index", "docs", "--index", "ix", "-q"], ["delete", "docs/x.md", "--index", "ix"],
                                  ["index", "docs", "--index", "ix", "--json", "--device", "cpu"]])
def test_a_second_writer_during_a_write_stops_at_once_with_one_line(work, args):
    writer = start_mid_write(work / "ix")  # the derived files look stale: it has not saved yet
    try:
        before = snapshot(work)
        started = time.monotonic()
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert result.stderr.strip() == one_line(result.stderr)  # no "interrupted run" warning above it
        assert "is being written by another grace-rag process" in result.stderr
        assert time.monotonic() - started < 10  # the index was not loaded first
        assert not changes(before, snapshot(work))
    finally:
        finish_mid_write(writer)


def _as_if_no_index_was_there(monkeypatch) -> None:
    """This run looks before the other one created the index: no lock file, no index (then sees it at create)."""
    from grace_rag.indexes import service

    real, calls = service.writer_lock, []
    monkeypatch.setattr(service, "writer_lock", lambda path: real(path) if calls.append(path) or len(calls) > 1 else None)
    monkeypatch.setattr(service.GraceIndex, "open_existing", classmethod(lambda cls, path, lock=None: None))


@bad_input
def test_the_loser_of_two_first_runs_is_told_to_wait_not_to_open_the_index(work, model_dir, monkeypatch):
    """Both runs found no index; the other created it first and is still writing."""

    first = runner.invoke(app, ["index", "docs", "--index", "fresh", "--model", str(model_dir), "--device", "cpu",
                                "--max-rationale-tokens", "2", "-q"])
    assert first.exit_code == 0, first.output
    writer = start_mid_write(work / "fresh")
    try:
        _as_if_no_index_was_there(monkeypatch)
        line = refused(["index", "docs", "--index", "fresh", "--model", model_dir, "--device", "cpu",
                        "--max-rationale-tokens", "2", "-q"], 1, "is being written by another grace-rag process",
                       work / "docs")
        assert "open it" not in line
    finally:
        finish_mid_write(writer)


def test_the_loser_of_two_first_runs_goes_on_when_the_winner_has_finished(work, model_dir, monkeypatch):
    args = ["index", "docs", "--index", "fresh", "--model", str(model_dir), "--device", "cpu",
            "--max-rationale-tokens", "2", "--json"]
    assert runner.invoke(app, args).exit_code == 0
    _as_if_no_index_was_there(monkeypatch)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["files_unchanged"] == 2


@bad_input
def test_creating_an_index_over_an_existing_one_in_python_names_the_call_to_use(work):
    from grace_rag.indexes.grace_index import IndexExistsError

    with GraceIndex.open(work / "ix") as index:
        info = index.manifest.encoder
    before = snapshot(work / "ix")
    with pytest.raises(IndexExistsError, match=r"open it \(GraceIndex.open\)"):
        GraceIndex.create(work / "ix", info)
    assert not changes(before, snapshot(work / "ix"))


# -- 10. YAML configs -----------------------------------------------------------------------------------------
BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"{b}: &{b} [{', '.join(['*' + a] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]
    + ["steps: *i"]) + "\n"
CONFIG_CASES = [
    ("yaml-billion-laughs", "c.yaml", BILLION_LAUGHS, "line 2: aliases (*a) are not supported in config files"),
    ("yaml-alias", "c.yaml", "batch_size: &n 4\nrollouts: *n\n", "line 2: aliases (*n) are not supported"),
    ("yaml-merge-key", "c.yml", "base: &b {steps: 3}\ntrain:\n  <<: *b\n", "aliases (*b) are not supported"),
    ("yaml-alias-in-a-list", "c.yaml", "x: &x a\nlora_target_modules: [*x, q_proj]\n", "aliases (*x)"),
    ("yaml-unclosed-bracket", "c.yaml", "steps: [1, 2\nbatch_size: 3\n", "cannot be parsed"),
    ("yaml-tab-indent", "c.yaml", "train:\n\tsteps: 3\n", "cannot be parsed"),
    ("huge-wrong-value", "c.toml", f'batch_size = "{"9" * 100_000}"\n', "more characters)"),
    ("huge-unknown-key", "c.toml", f'{"k" * 50_000} = 1\n', "more characters)"),
]


@bad_input
@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_files_are_one_short_line(case, work):
    _, name, content, fragment = case
    (work / name).write_text(content)
    line = refused([*TRAIN, "--config", name], 1, fragment, work)
    assert len(line) < 2_200


# -- 15. qrels, filters, warnings -------------------------------------------------------------------------------
def _beir(work: Path, qrels: str) -> None:
    (work / "b" / "qrels").mkdir(parents=True)
    (work / "b" / "corpus.jsonl").write_text('{"_id": "d1", "text": "bees dance"}\n{"_id": "d2", "text": "lava flows"}\n')
    (work / "b" / "queries.jsonl").write_text('{"_id": "q1", "text": "how do bees talk"}\n'
                                              '{"_id": "q2", "text": "where does lava go"}\n')
    (work / "b" / "qrels" / "test.tsv").write_text(qrels)


@bad_input
@pytest.mark.parametrize("qrels", ["q1\td1\t0\n", "query-id\tcorpus-id\tscore\nq1\td1\t0\nq2\td2\t0\n",
                                   "q1\td1\t-1\nq2\td1\t0\n"])
def test_qrels_without_a_positive_judgement_are_an_error_not_zeros(work, qrels):
    _beir(work, qrels)
    refused(["eval", "b", "-m", "bm25"], 1, "no positive judgement (score > 0) in this split", work)


def test_queries_without_a_positive_judgement_are_named_in_a_warning(work, caplog):
    _beir(work, "q1\td1\t1\nq2\td2\t0\n")
    result = runner.invoke(app, ["eval", "b", "-m", "bm25", "--json"])
    assert result.exit_code == 0, result.output
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("1 of 2 queries have no positive judgement" in message for message in warned), warned


@bad_input
@pytest.mark.parametrize("where", ['extension=[".md"', "extension=[.md]", 'position={"$gt": 1', "source=[docs/a.md",
                                   "extension!=[\".md\",", 'extension={"a"}'])
def test_a_where_value_that_looks_like_json_but_is_not_is_an_error(work, where):
    refused(["query", "lava", "--index", "ix", "--mode", "lexical", "--where", where], 1,
            "looks like JSON but is not valid JSON", work)


def test_a_where_value_quoted_as_a_json_string_may_start_with_a_bracket(work):
    result = runner.invoke(app, ["query", "lava", "--index", "ix", "--mode", "lexical", "--where", 'text="[draft"'])
    assert result.exit_code == 0, result.output


@bad_input
@pytest.mark.slow
def test_train_prints_no_future_warning(work, model_dir):
    """In a real process (pytest records warnings instead of printing them)."""
    import os
    import subprocess
    import sys

    grace_rag = str(Path(sys.executable).with_name("grace-rag"))
    done = subprocess.run([grace_rag, *TRAIN, "--model", str(model_dir), "--lora", "--steps", "1", "--batch-size", "2",
                           "--rollouts", "2", "--max-rationale-tokens", "2", "--max-input-tokens", "16",
                           "--length-penalty", "off"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
