"""Bad input to every `grace-rag` command: one line, the right exit code, nothing written.

Each case is run in-process (typer's CliRunner) in a fresh copy of a small index (``ix/``) and its
documents (``docs/``), after an optional ``setup`` that plants the bad input. The case passes when
the exit code is the expected one, stderr is exactly one ``error:`` line (no traceback) holding the
expected fragment, and neither the working folder (index, documents, data) nor the model folder
changed by a byte or a permission bit.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from grace_rag.config import EncoderConfig
from grace_rag.cli.app import app
from robustness_support import changes, edit_json, flip, one_line, run_sql, snapshot, truncate

pytestmark = pytest.mark.bad_input
BAD = "caf\udce9"  # how Python hands over the bytes b"caf\xe9" (Latin-1, not UTF-8) from argv or a file name
LATIN1 = "Caf\u00e9 au lait\n".encode("latin-1")
runner = CliRunner()
Setup = Callable[[Path, Path], None]  # (work folder, model folder)


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # "{model}" and "{other}" are replaced by the tiny model folders
    code: int
    fragment: str
    setup: Setup | None = None
    cpu_only: bool = False  # the input is only bad where PyTorch has no CUDA


def write(name: str, content: bytes | str) -> Setup:
    def setup(work: Path, model: Path) -> None:
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return setup


def both(*setups: Setup) -> Setup:
    def setup(work: Path, model: Path) -> None:
        for step in setups:
            step(work, model)
    return setup


def manifest(change: Callable[[dict], object]) -> Setup:
    return lambda work, model: edit_json(work / "ix" / "manifest.json", change)


def store(sql: str, params: tuple = ()) -> Setup:
    return lambda work, model: run_sql(work / "ix" / "chunks.sqlite", sql, params)


def model_copy(change: Callable[[Path], object]) -> Setup:
    """A copy of the tiny model in ``work/m``, then ``change(work/m)``."""
    def setup(work: Path, model: Path) -> None:
        shutil.copytree(model, work / "m")
        change(work / "m")
    return setup


def beir(corpus: bytes | None = None, queries: bytes | None = None, qrels: bytes | None = None) -> Setup:
    """A valid two-document BEIR folder ``work/b``, with any file replaced by the bytes given."""
    good_corpus = b'{"_id": "d1", "title": "", "text": "bees dance"}\n{"_id": "d2", "title": "", "text": "lava flows"}\n'
    good_queries = b'{"_id": "q1", "text": "how do bees talk"}\n'
    good_qrels = b"query-id\tcorpus-id\tscore\nq1\td1\t1\n"

    def setup(work: Path, model: Path) -> None:
        (work / "b" / "qrels").mkdir(parents=True)
        (work / "b" / "corpus.jsonl").write_bytes(good_corpus if corpus is None else corpus)
        (work / "b" / "queries.jsonl").write_bytes(good_queries if queries is None else queries)
        (work / "b" / "qrels" / "test.tsv").write_bytes(good_qrels if qrels is None else qrels)
    return setup


def sts(content: bytes) -> Setup:
    return write("sts-test.tsv", content)


def hold_lock(work: Path, model: Path) -> None:
    from grace_rag.indexes.lock import WriteLock

    lock = WriteLock(work / "ix")
    lock.acquire()
    HELD.append(lock)


HELD: list = []
IX = ("--index", "ix")
TINY = ("--model", "{model}", "--device", "cpu")
NEW = ("--index", "new", *TINY, "--max-rationale-tokens", "4", "-q")
TRAIN = ("train", "good.jsonl", "--out", "out", "-q")

QUERY_CASES = [
    Case("query-empty-text", ("query", "", *IX), 1, "the query is empty"),
    Case("query-blank-text", ("query", "  \t ", *IX), 1, "the query is empty"),
    Case("query-text-not-utf8", ("query", BAD, *IX), 1, "the TEXT argument is not valid UTF-8"),
    Case("query-text-lone-surrogate", ("query", "x\ud800y", *IX), 1, "not valid UTF-8"),
    Case("query-k-zero", ("query", "lava", "-k", "0", *IX), 2, "greater than or equal to 1"),
    Case("query-k-negative", ("query", "lava", "-k", "-3", *IX), 2, "--top-k"),
    Case("query-k-not-a-number", ("query", "lava", "-k", "five", *IX), 2, "valid integer"),
    Case("query-mode-unknown", ("query", "lava", "--mode", "fuzzy", *IX), 1, "unknown mode 'fuzzy'"),
    Case("query-fusion-unknown", ("query", "lava", "--fusion", "max", *IX), 1, "unknown fusion 'max'"),
    Case("query-alpha-above-one", ("query", "lava", "--alpha", "1.5", *IX), 1, "alpha must be between 0 and 1"),
    Case("query-alpha-negative", ("query", "lava", "--alpha", "-0.1", *IX), 1, "alpha must be between 0 and 1"),
    Case("query-alpha-nan", ("query", "lava", "--alpha", "nan", *IX), 1, "alpha must be between 0 and 1"),
    Case("query-alpha-not-a-number", ("query", "lava", "--alpha", "high", *IX), 2, "--alpha"),
    Case("query-alpha-with-rrf", ("query", "lava", "--fusion", "rrf", "--alpha", "0.3", *IX), 1, "drop alpha"),
    Case("query-missing-text", ("query",), 2, "Missing argument"),
    Case("query-unknown-option", ("query", "lava", "--colour", *IX), 2, "No such option: --colour"),
    Case("where-no-operator", ("query", "lava", "--where", "extension", *IX), 1, "--where expects KEY=VALUE"),
    Case("where-empty", ("query", "lava", "--where", "", *IX), 1, "--where expects KEY=VALUE"),
    Case("where-no-key", ("query", "lava", "--where", "=.md", *IX), 1, "--where expects KEY=VALUE"),
    Case("where-blank-key", ("query", "lava", "--where", "  =.md", *IX), 1, "a filter key must be a non-empty string"),
    Case("where-unknown-key", ("query", "lava", "--where", "lang=en", *IX), 1, "unknown filter key 'lang'"),
    Case("where-quote-in-key", ("query", "lava", "--where", 'ext"ension=.md', *IX), 1, "unknown filter key 'ext\"ension'"),
    Case("where-object-value", ("query", "lava", "--where", 'extension={"a":1}', *IX), 1,
         "compares strings, numbers, booleans or null"),
    Case("where-list-of-lists", ("query", "lava", "--where", 'extension=[[".md"]]', *IX), 1, "compares strings"),
    Case("where-list-of-objects", ("query", "lava", "--where", 'extension=[{"a":1}]', *IX), 1, "compares strings"),
    Case("where-order-on-text", ("query", "lava", "--where", "position>abc", *IX), 1, "compares numbers"),
    Case("where-order-on-list", ("query", "lava", "--where", "position>=[1,2]", *IX), 1, "got [1, 2]"),
    Case("where-order-on-bool", ("query", "lava", "--where", "position<true", *IX), 1, "compares numbers"),
    Case("where-ne-object", ("query", "lava", "--where", 'position!={"$gt":1}', *IX), 1, "compares strings"),
    Case("where-not-utf8", ("query", "lava", "--where", f"extension={BAD}", *IX), 1, "--where is not valid UTF-8"),
    Case("query-index-missing", ("query", "lava", "--index", "nope"), 1, "no index at nope"),
    Case("query-index-is-a-file", ("query", "lava", "--index", "docs/volcanoes.txt"), 1, "no index at"),
    Case("query-index-user-folder", ("query", "lava", "--index", "docs"), 1, "not a grace-rag index"),
    Case("query-index-empty-folder", ("query", "lava", "--index", "empty"), 1, "not a grace-rag index",
         lambda work, model: (work / "empty").mkdir()),
    Case("query-model-empty", ("query", "lava", *IX, "--model", ""), 1, "the model name is empty"),
    Case("query-model-etc-passwd", ("query", "lava", *IX, "--model", "/etc/passwd"), 1, "is a file but not a model"),
    Case("query-model-missing-path", ("query", "lava", *IX, "--model", "./nope"), 1, "does not exist"),
    Case("query-model-other-weights", ("query", "lava", *IX, "--model", "{other}", "--device", "cpu"), 1,
         "was built with model"),
    Case("query-recorded-model-gone", ("query", "lava", *IX, "--device", "cpu"), 1,
         "which cannot be loaded now", lambda work, model: _index_with_vanished_model(work, model)),
    Case("query-device-unknown", ("query", "lava", *IX, "--device", "tpu"), 1, "unknown device 'tpu'"),
    Case("query-device-cuda-index", ("query", "lava", *IX, "--device", "cuda:7"), 1, "device 'cuda:7'"),
    Case("query-device-not-utf8", ("query", "lava", *IX, "--device", BAD), 1, "--device is not valid UTF-8"),
]

INDEX_FILE_CASES = [
    Case("manifest-newer-version", ("info", *IX), 1, "upgrade grace-rag",
         manifest(lambda m: m.update(format_version=99))),
    Case("manifest-version-not-a-number", ("info", *IX), 1, "delete only manifest.json",
         manifest(lambda m: m.update(format_version="one"))),
    Case("manifest-edited-dimension", ("info", *IX), 1, "dimension: the manifest says 64",
         manifest(lambda m: (m.update(dimension=64), m["encoder"].update(dimension=64)))),
    Case("manifest-edited-fingerprint", ("info", *IX), 1, "does not belong to",
         manifest(lambda m: m["encoder"].update(fingerprint="0" * 32))),
    Case("manifest-edited-model", ("query", "lava", *IX, "--mode", "lexical"), 1, "delete only",
         manifest(lambda m: m["encoder"].update(model_name="/somewhere/else"))),
    Case("manifest-edited-settings", ("info", *IX), 1, "settings",
         manifest(lambda m: m["encoder"]["settings"].update(layer="penultimate"))),
    Case("store-empty-file", ("info", *IX), 1, "chunks.sqlite is damaged (it is empty: 0 bytes)",
         write("ix/chunks.sqlite", b"")),
    Case("store-garbage", ("info", *IX), 1, "chunks.sqlite is damaged", write("ix/chunks.sqlite", b"not a db" * 512)),
    Case("store-missing", ("info", *IX), 1, "chunks.sqlite is missing",
         lambda work, model: (work / "ix" / "chunks.sqlite").unlink()),
    Case("store-foreign-database", ("info", *IX), 1, "not a grace-rag chunk store",
         lambda work, model: _foreign_sqlite(work / "ix" / "chunks.sqlite")),
    Case("store-newer-version", ("info", *IX), 1, "store version 99",
         store("INSERT OR REPLACE INTO meta VALUES ('store_version', '99')")),
    Case("store-encoder-record-damaged", ("info", *IX), 1, "record of the encoder is damaged",
         store("UPDATE meta SET value = '{broken' WHERE key = 'encoder'")),
    Case("store-encoder-record-missing", ("info", *IX), 1, "no record of the encoder",
         store("DELETE FROM meta WHERE key = 'encoder'")),
    Case("store-short-vector", ("query", "lava", *IX, "--mode", "dense", *TINY), 1, "vector of dimension 3",
         both(store("UPDATE chunks SET vector = zeroblob(12) WHERE fid = 1"),
              lambda work, model: (work / "ix" / "index.faiss").unlink())),
    Case("store-truncated-half", ("info", *IX), 1, "chunks.sqlite is damaged",
         lambda work, model: truncate(work / "ix" / "chunks.sqlite", 0.5)),
    Case("store-flipped", ("info", *IX), 1, "chunks.sqlite is damaged",
         lambda work, model: flip(work / "ix" / "chunks.sqlite", start=0, step=7)),
]

INDEX_CASES = [
    Case("index-path-missing", ("index", "nope", *NEW), 1, "nope does not exist"),
    Case("index-empty-folder", ("index", "empty", *NEW), 1, "no files to index",
         lambda work, model: (work / "empty").mkdir()),
    Case("index-no-supported-files", ("index", "odd", *NEW), 1, "no files to index", write("odd/a.xyz", "hello")),
    Case("index-folder-name-not-utf8", ("index", BAD, *NEW), 1, "is not valid UTF-8",
         lambda work, model: (os.mkdir(os.fsencode(work / BAD)), (work / BAD / "a.txt").write_text("hi"))),
    Case("index-into-user-folder", ("index", "docs", "--index", "mine", *TINY, "-q"), 1, "holds other files (notes.txt)",
         write("mine/notes.txt", "my notes")),
    Case("index-into-the-folder-itself", ("index", "docs", "--index", "docs", *TINY, "-q"), 1, "holds other files"),
    Case("index-into-a-file", ("index", "docs", "--index", "docs/volcanoes.txt", *TINY, "-q"), 1, "is a file"),
    Case("index-name-not-utf8", ("index", "docs", "--index", BAD, *TINY, "-q"), 1, "is not valid UTF-8"),
    Case("index-chunk-size-tiny", ("index", "docs", *NEW, "--chunk-size", "4"), 1, "chunk_size must be at least 16"),
    Case("index-overlap-too-big", ("index", "docs", *NEW, "--chunk-size", "32", "--chunk-overlap", "40"), 1,
         "chunk_overlap must be in [0, chunk_size)"),
    Case("index-overlap-negative", ("index", "docs", *IX, "--chunk-overlap", "-1"), 1, "chunk_overlap must be at least 0"),
    Case("index-batch-size-zero", ("index", "docs", *NEW, "--batch-size", "0"), 2, "--batch-size"),
    Case("index-rationale-tokens-negative", ("index", "docs", *NEW, "--max-rationale-tokens", "-2"), 1,
         "max_rationale_tokens must be an integer >= 0, got -2"),
    Case("index-layer-unknown", ("index", "docs", *NEW, "--layer", "middle"), 2,
         "Invalid value for '--layer': Value error, 'middle' is not one of 'last', 'penultimate'"),
    Case("index-pooling-unknown", ("index", "docs", *NEW, "--pooling", "median"), 2,
         "'median' is not one of 'mean', 'last'"),
    Case("index-factory-invalid", ("index", "docs", *NEW, "--factory", "Bogus99"), 1, "invalid FAISS factory string"),
    Case("index-factory-empty", ("index", "docs", *NEW, "--factory", ""), 1, "FAISS factory string is empty"),
    Case("index-factory-pq-not-dividing", ("index", "docs", *NEW, "--factory", "PQ7"), 1, "multiple of the number"),
    Case("index-factory-on-existing-invalid", ("index", "docs", *IX, "--factory", "IVF"), 1, "invalid FAISS factory"),
    Case("index-model-empty", ("index", "docs", "--index", "new", "--model", ""), 1, "the model name is empty"),
    Case("index-model-etc-passwd", ("index", "docs", "--index", "new", "--model", "/etc/passwd"), 1,
         "is a file but not a model"),
    Case("index-model-folder-not-a-model", ("index", "docs", "--index", "new", "--model", "docs"), 1,
         "is a directory but not a model"),
    Case("index-model-missing-gguf", ("index", "docs", "--index", "new", "--model", "nope.gguf"), 1, "does not exist"),
    Case("index-model-garbage-gguf", ("index", "docs", "--index", "new", "--model", "bad.gguf"), 1,
         "cannot be read as a GGUF model", write("bad.gguf", b"GGUF" + bytes(range(256)) * 8)),
    Case("model-config-not-json", ("explain", "x", "--model", "m", "--device", "cpu"), 1, "not a valid JSON file",
         model_copy(lambda m: (m / "config.json").write_text("{bad"))),
    Case("model-config-empty-object", ("explain", "x", "--model", "m", "--device", "cpu"), 1, "model_type",
         model_copy(lambda m: (m / "config.json").write_text("{}"))),
    Case("model-config-unknown-type", ("explain", "x", "--model", "m", "--device", "cpu"), 1, "model type `nope`",
         model_copy(lambda m: (m / "config.json").write_text('{"model_type": "nope"}'))),
    Case("model-config-binary", ("explain", "x", "--model", "m", "--device", "cpu"), 1, "cannot be loaded as a model",
         model_copy(lambda m: (m / "config.json").write_bytes(b"\xff\xfe\x00\x01"))),
    Case("model-weights-truncated", ("explain", "x", "--model", "m", "--device", "cpu"), 1, "cannot be loaded as a model",
         model_copy(lambda m: truncate(m / "model.safetensors", 0.3))),
    Case("model-weights-missing", ("explain", "x", "--model", "m", "--device", "cpu"), 1, "no file named",
         model_copy(lambda m: (m / "model.safetensors").unlink())),
    Case("model-tokenizer-missing", ("explain", "x", "--model", "m", "--device", "cpu"), 1, "cannot be loaded as a model",
         model_copy(lambda m: [(m / f).unlink() for f in ("tokenizer.json", "tokenizer_config.json")])),
    Case("model-encoder-settings-broken", ("explain", "x", "--model", "m", "--device", "cpu"), 1, "grace_encoder.json",
         model_copy(lambda m: (m / "grace_encoder.json").write_text("{not json"))),
    Case("model-encoder-settings-unknown-field", ("explain", "x", "--model", "m", "--device", "cpu"), 1,
         "unknown field(s) colour", model_copy(lambda m: (m / "grace_encoder.json").write_text(
             json.dumps({"format": "grace-encoder", "settings": {"colour": "red"}})))),
    Case("index-device-cuda", ("index", "docs", "--index", "new", "--model", "{model}", "--device", "cuda:7"), 1,
         "device 'cuda:7'"),
    Case("index-device-mps", ("index", "docs", "--index", "new", "--model", "{model}", "--device", "mps"), 1,
         "device 'mps'"),
    Case("index-other-settings", ("index", "docs", *IX, "--layer", "penultimate", "--device", "cpu"), 1,
         "the settings differ (the index used layer='last')"),
    Case("index-other-model", ("index", "docs", *IX, "--model", "{other}", "--device", "cpu"), 1,
         "was built with model"),
    Case("index-locked-by-another-writer", ("index", "docs", *IX, "-q"), 1, "is being written by another", hold_lock),
    Case("index-into-emptied-store", ("index", "docs", *IX, "-q"), 1, "chunks.sqlite is damaged (it is empty",
         write("ix/chunks.sqlite", b"")),
]

OTHER_COMMAND_CASES = [
    Case("delete-not-indexed", ("delete", "docs/other.md", *IX), 1, "nothing in ix comes from docs/other.md"),
    Case("delete-not-utf8", ("delete", BAD, *IX), 1, "the PATHS argument is not valid UTF-8"),
    Case("delete-no-paths", ("delete", *IX), 2, "Missing argument"),
    Case("delete-index-missing", ("delete", "docs/bridges.md", "--index", "nope"), 1, "no index at nope"),
    Case("delete-locked", ("delete", "docs/bridges.md", *IX), 1, "is being written by another", hold_lock),
    Case("info-index-missing", ("info", "--index", "nope"), 1, "no index at nope"),
    Case("info-user-folder", ("info", "--index", "docs"), 1, "not a grace-rag index (no chunks.sqlite)"),
    Case("info-unknown-option", ("info", "--verbose-ish"), 2, "No such option"),
    Case("no-such-command", ("serch", "lava"), 2, "No such command 'serch'"),
    Case("global-unknown-option", ("--colour", "info"), 2, "No such option: --colour"),
    Case("explain-not-utf8", ("explain", BAD, *TINY), 1, "the TEXTS argument is not valid UTF-8"),
    Case("explain-role-unknown", ("explain", "x", "--role", "author", *TINY), 2, "--role"),
    Case("explain-rationale-tokens-negative", ("explain", "x", "--max-rationale-tokens", "-1", *TINY), 1,
         "max_rationale_tokens must be an integer >= 0, got -1"),
    Case("explain-no-texts", ("explain",), 2, "Missing argument"),
    Case("explain-model-empty", ("explain", "x", "--model", ""), 1, "the model name is empty"),
    Case("explain-device-mps", ("explain", "x", "--model", "{model}", "--device", "mps"), 1, "device 'mps'"),
    Case("explain-device-cuda", ("explain", "x", "--model", "{model}", "--device", "cuda:7"), 1, "device 'cuda:7'"),
    Case("explain-device-cuda-on-cpu-only-torch", ("explain", "x", "--model", "{model}", "--device", "cuda"), 1,
         "this PyTorch is a CPU-only build", cpu_only=True),
]

EVAL = ("eval", "b", "-m", "bm25")
EVAL_CASES = [
    Case("eval-dataset-missing", ("eval", "nope", "-m", "bm25"), 2, "does not exist"),
    Case("eval-corpus-not-utf8", EVAL, 1, "corpus.jsonl:2:27: not valid UTF-8 (byte 0xe9)",
         beir(corpus=b'{"_id": "d1", "text": "bees"}\n{"_id": "d2", "text": "caf\xe9"}\n')),
    Case("eval-corpus-binary", EVAL, 1, "corpus.jsonl:1: binary data", beir(corpus=b"\x00\x01\x02" * 100)),
    Case("eval-corpus-invalid-json", EVAL, 1, "corpus.jsonl:1: invalid JSON", beir(corpus=b'{"_id": "d1", "text": \n')),
    Case("eval-corpus-not-an-object", EVAL, 1, "corpus.jsonl:1: expected a JSON object", beir(corpus=b'["d1", "x"]\n')),
    Case("eval-corpus-missing-text", EVAL, 1, "field 'text' must be a string", beir(corpus=b'{"_id": "d1"}\n')),
    Case("eval-corpus-duplicate-id", EVAL, 1, "duplicate _id 'd1'",
         beir(corpus=b'{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n')),
    Case("eval-corpus-empty", EVAL, 1, "no records", beir(corpus=b"\n\n")),
    Case("eval-corpus-latin1-bom-mix", EVAL, 1, "not valid UTF-8",
         beir(corpus=b'\xef\xbb\xbf{"_id": "d1", "text": "na\xefve"}\n')),
    Case("eval-queries-not-utf8", EVAL, 1, "queries.jsonl:1:", beir(queries=b'{"_id": "q1", "text": "\xff"}\n')),
    Case("eval-qrels-wrong-split", ("eval", "b", "-m", "bm25", "--split", "dev"), 1, "split 'dev' not found",
         beir()),
    Case("eval-qrels-two-columns", EVAL, 1, "expected 3 tab-separated columns", beir(qrels=b"q1\td1\n")),
    Case("eval-qrels-score-not-int", EVAL, 1, "score must be an integer", beir(qrels=b"q1\td1\thigh\n")),
    Case("eval-qrels-not-utf8", EVAL, 1, "test.tsv:1:", beir(qrels=b"q\xe91\td1\t1\n")),
    Case("eval-qrels-unknown-query", EVAL, 1, "query id 'q9' is not in queries.jsonl", beir(qrels=b"q9\td1\t1\n")),
    Case("eval-qrels-unknown-doc", EVAL, 1, "corpus id 'd9' is not in corpus.jsonl", beir(qrels=b"q1\td9\t1\n")),
    Case("eval-sts-score-text", ("eval", "sts-test.tsv", "-m", "bm25"), 1, "score must be a number",
         sts(b"high\ta\tb\n1.0\tc\td\n")),
    Case("eval-sts-score-nan", ("eval", "sts-test.tsv", "-m", "bm25"), 1, "score must be finite",
         sts(b"nan\ta\tb\n1.0\tc\td\n")),
    Case("eval-sts-one-pair", ("eval", "sts-test.tsv", "-m", "bm25"), 1, "at least 2 sentence pairs", sts(b"1.0\ta\tb\n")),
    Case("eval-sts-not-utf8", ("eval", "sts-test.tsv", "-m", "bm25"), 1, "sts-test.tsv:2:", sts(b"1.0\ta\tb\n2\t\xe9\tc\n")),
    Case("eval-alpha-out-of-range", (*EVAL, "--alpha", "3"), 1, "alpha must be between 0 and 1", beir()),
    Case("eval-fusion-unknown", (*EVAL, "--fusion", "max"), 1, "unknown fusion 'max'", beir()),
]

TRAIN_CASES = [
    Case("train-jsonl-not-utf8", ("train", "t.jsonl", "--out", "out"), 1, "t.jsonl:1:", write("t.jsonl", b'{"query": "\xe9"}\n')),
    Case("train-jsonl-binary", ("train", "t.jsonl", "--out", "out"), 1, "t.jsonl:1: binary data",
         write("t.jsonl", bytes(range(256)))),
    Case("train-jsonl-invalid-json", ("train", "t.jsonl", "--out", "out"), 1, "t.jsonl:2: invalid JSON",
         write("t.jsonl", '{"query": "a", "positive": "b", "negative": "c"}\n{"query": \n')),
    Case("train-jsonl-not-object", ("train", "t.jsonl", "--out", "out"), 1, "expected a JSON object",
         write("t.jsonl", "[1, 2, 3]\n")),
    Case("train-jsonl-missing-positive", ("train", "t.jsonl", "--out", "out"), 1, "positive",
         write("t.jsonl", '{"query": "a", "negative": "c"}\n')),
    Case("train-jsonl-empty", ("train", "t.jsonl", "--out", "out"), 1, "no training pairs found", write("t.jsonl", "\n")),
    Case("train-unsupervised-text-not-utf8", ("train", "c.txt", "--mode", "unsupervised", "--out", "out"), 1, "c.txt:2:",
         write("c.txt", b"first passage\nsecond caf\xe9 passage\n")),
    Case("train-unsupervised-folder-binary", ("train", "cf", "--mode", "unsupervised", "--out", "out"), 1, "binary file",
         write("cf/nul.txt", b"\x00" * 500)),
    Case("train-no-out", ("train", "good.jsonl"), 1, "no output directory"),
    Case("train-data-missing", ("train", "nope.jsonl", "--out", "out"), 2, "does not exist"),
    Case("train-config-bad-toml", (*TRAIN, "--config", "c.toml"), 1, "cannot be parsed", write("c.toml", "steps = = 3")),
    Case("train-config-unknown-key", (*TRAIN, "--config", "c.toml"), 1, "unknown setting(s) colour",
         write("c.toml", 'colour = "red"')),
    Case("train-config-wrong-type", (*TRAIN, "--config", "c.toml"), 1, "batch_size must be an integer, got 'abc'",
         write("c.toml", 'batch_size = "abc"')),
    Case("train-config-nan", (*TRAIN, "--config", "c.toml"), 1, "tau must be a finite number, got nan",
         write("c.toml", "tau = nan")),
    Case("train-config-inf-lr", (*TRAIN, "--config", "c.toml"), 1, "learning_rate must be a finite number",
         write("c.toml", "learning_rate = inf")),
    Case("train-config-bool-as-int", (*TRAIN, "--config", "c.toml"), 1, "rollouts must be an integer, got True",
         write("c.toml", "rollouts = true")),
    Case("train-config-list-of-numbers", (*TRAIN, "--config", "c.toml"), 1, "lora_target_modules must be a list of strings",
         write("c.toml", "lora_target_modules = [1, 2]")),
    Case("train-config-unknown-suffix", (*TRAIN, "--config", "c.ini"), 1, "unknown format '.ini'", write("c.ini", "x=1")),
    Case("train-config-yaml-list", (*TRAIN, "--config", "c.yaml"), 1, "expected a mapping", write("c.yaml", "- 1\n- 2\n")),
    Case("train-config-not-utf8", (*TRAIN, "--config", "c.toml"), 1, "c.toml:1:13: not valid UTF-8", write("c.toml", b"steps = 3 # \xe9\n")),
    Case("train-config-seed-negative", (*TRAIN, "--config", "c.toml"), 1, "seed must be in [0, 2**32)",
         write("c.toml", "seed = -5")),
    Case("train-config-dropout-one", (*TRAIN, "--config", "c.toml"), 1, "lora_dropout must be in [0, 1)",
         write("c.toml", "lora_dropout = 1.0")),
    Case("train-lr-negative", (*TRAIN, "--lr", "-1"), 1, "learning_rate must be > 0"),
    Case("train-steps-zero", (*TRAIN, "--steps", "0"), 1, "steps must be >= 1"),
    Case("train-rollouts-one", (*TRAIN, "--rollouts", "1"), 1, "rollouts must be >= 2"),
    Case("train-length-penalty-text", (*TRAIN, "--length-penalty", "lots"), 2,
         "Invalid value for --length-penalty: expected a number or 'off', got 'lots'"),
    Case("train-estimator-unknown", (*TRAIN, "--estimator", "ppo2"), 2, "--estimator"),
    Case("train-max-minutes-negative", (*TRAIN, "--max-minutes", "-1"), 1, "max_minutes must be > 0"),
    Case("train-batch-size-zero", (*TRAIN, "--batch-size", "0"), 1, "batch_size must be >= 1"),
]

CASES = QUERY_CASES + INDEX_FILE_CASES + INDEX_CASES + OTHER_COMMAND_CASES + EVAL_CASES + TRAIN_CASES


def _foreign_sqlite(path: Path) -> None:
    path.unlink()
    run_sql(path, "CREATE TABLE notes (body TEXT)")


def _index_with_vanished_model(work: Path, model: Path) -> None:
    """Rebuild ``ix`` with a copy of the model, then remove the copy: the manifest names a folder that is gone."""
    from grace_rag.indexes.ingest import IngestConfig
    from grace_rag.indexes.service import IndexRequest, index_folder, load_encoder

    shutil.copytree(model, work / "gone")
    shutil.rmtree(work / "ix")
    encoder = load_encoder(str(work / "gone"), EncoderConfig(cache=False, max_rationale_tokens=4), "cpu")
    index_folder(IndexRequest(path=work / "docs", index_dir=work / "ix", ingest=IngestConfig(chunk_size=64)),
                 encoder=encoder)
    shutil.rmtree(work / "gone")


@pytest.fixture(autouse=True)
def _release_held_locks():
    yield
    while HELD:
        HELD.pop().release()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case: Case, work: Path, model_dir: Path, other_model_dir: Path):
    assert len({c.id for c in CASES}) == len(CASES)
    if case.cpu_only and torch.version.cuda is not None:
        pytest.skip("PyTorch here has CUDA")
    if case.setup is not None:
        case.setup(work, model_dir)
    before = snapshot(work, model_dir)
    args = [a.replace("{model}", str(model_dir)).replace("{other}", str(other_model_dir)) for a in case.args]
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == case.code, result.output
    line = one_line(result.stderr)
    assert case.fragment in line, line
    assert not changes(before, snapshot(work, model_dir))
