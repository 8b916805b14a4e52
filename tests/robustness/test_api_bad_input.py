"""Bad input to the Python API: a GraceError (or the documented TypeError) with a one-line message.

Each case calls one public function or constructor with one bad value. It passes when the named
exception is raised, its message is one line holding the expected fragment, and the index and the
model folder are unchanged afterwards (byte for byte, modes included).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from robustness_support import changes, snapshot

from grace_rag import EncoderConfig
from grace_rag.errors import ConfigError, DataError, GraceIndexError, ModelNotFoundError
from grace_rag.indexes import Chunk, EncoderInfo, GraceIndex
from grace_rag.indexes.fusion import FusionConfig
from grace_rag.indexes.ingest import IngestConfig
from grace_rag.jsonl import read_jsonl
from grace_rag.textio import BinaryFileError, TextError, check_text, decode
from grace_rag.trainer.config import TrainConfig

pytestmark = pytest.mark.bad_input


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[Any], object]  # receives the context: index, encoder, work, vector
    error: type[BaseException]
    fragment: str


def enc(**kw: Any) -> Callable[[Any], object]:
    return lambda ctx: EncoderConfig(**kw)


def trn(**kw: Any) -> Callable[[Any], object]:
    return lambda ctx: TrainConfig(**kw)


def trn_dict(data: dict[str, Any]) -> Callable[[Any], object]:
    return lambda ctx: TrainConfig.from_dict(data)


def search(**kw: Any) -> Callable[[Any], object]:
    return lambda ctx: ctx.index.search(**{"vector": ctx.vector, "k": 3, **kw})


def where(flt: Any) -> Callable[[Any], object]:
    return search(where=flt)


def add(chunk: Any, vectors: Any = None) -> Callable[[Any], object]:
    return lambda ctx: ctx.index.add([chunk], ctx.vector[None, :] if vectors is None else vectors)


def file(content: bytes, reader: Callable[[Path], object], name: str = "input.jsonl") -> Callable[[Any], object]:
    def call(ctx: Any) -> object:
        path = ctx.work / name
        path.write_bytes(content)
        return reader(path)
    return call


def jsonl(content: bytes) -> Callable[[Any], object]:
    return file(content, lambda path: list(read_jsonl(path)))


def load_texts(path: Path) -> object:
    from grace_rag.trainer.data import load_texts as load

    return load(path)


def load_triplets(path: Path) -> object:
    from grace_rag.trainer.data import load_triplets as load

    return load(path)


def encoder(model: str, device: str = "cpu") -> Callable[[Any], object]:
    def call(ctx: Any) -> object:
        from grace_rag.encoder import GraceEncoder

        return GraceEncoder(model=model, device=device)
    return call


NAN, INF = math.nan, math.inf
ENCODER_CONFIG_CASES = [
    Case("enc-rationale-negative", enc(max_rationale_tokens=-1), ConfigError, "max_rationale_tokens must be an integer >= 0"),
    Case("enc-rationale-float", enc(max_rationale_tokens=1.5), ConfigError, "max_rationale_tokens"),
    Case("enc-rationale-string", enc(max_rationale_tokens="32"), ConfigError, "got '32'"),
    Case("enc-rationale-bool", enc(max_rationale_tokens=True), ConfigError, "got True"),
    Case("enc-rationale-none", enc(max_rationale_tokens=None), ConfigError, "max_rationale_tokens"),
    Case("enc-query-rationale-negative", enc(query_rationale_tokens=-1), ConfigError, "query_rationale_tokens"),
    Case("enc-query-rationale-string", enc(query_rationale_tokens="8"), ConfigError, "query_rationale_tokens"),
    Case("enc-input-tokens-zero", enc(max_input_tokens=0), ConfigError, "max_input_tokens must be an integer >= 1"),
    Case("enc-pooling-unknown", enc(pooling="median"), ConfigError, "unknown pooling 'median'"),
    Case("enc-pooling-none", enc(pooling=None), ConfigError, "unknown pooling"),
    Case("enc-layer-unknown", enc(layer="middle"), ConfigError, "unknown layer 'middle'"),
    Case("enc-layer-number", enc(layer=3), ConfigError, "unknown layer 3"),
    Case("enc-query-instruction-none", enc(query_instruction=None), ConfigError, "query_instruction must be a non-empty"),
    Case("enc-query-instruction-empty", enc(query_instruction=""), ConfigError, "query_instruction"),
    Case("enc-query-instruction-blank", enc(query_instruction="  \n"), ConfigError, "query_instruction"),
    Case("enc-document-instruction-number", enc(document_instruction=5), ConfigError, "document_instruction"),
    Case("enc-instruction-lone-surrogate", enc(document_instruction="Read \ud800 this"), ConfigError, "UTF-8 text"),
    Case("enc-temperature-nan", enc(temperature=NAN), ConfigError, "temperature must be a finite number >= 0"),
    Case("enc-temperature-inf", enc(temperature=INF), ConfigError, "temperature"),
    Case("enc-temperature-text", enc(temperature="hot"), ConfigError, "got 'hot'"),
    Case("enc-temperature-negative", enc(temperature=-0.5), ConfigError, "temperature"),
    Case("enc-top-p-none", enc(top_p=None), ConfigError, "top_p must be a number in (0, 1]"),
    Case("enc-top-p-zero", enc(top_p=0), ConfigError, "top_p"),
    Case("enc-top-p-above-one", enc(top_p=1.5), ConfigError, "top_p"),
    Case("enc-top-p-nan", enc(top_p=NAN), ConfigError, "top_p"),
    Case("enc-seed-text", enc(seed="abc"), ConfigError, "seed must be None or an integer in [0, 2**64)"),
    Case("enc-seed-float", enc(seed=1.5), ConfigError, "seed"),
    Case("enc-seed-negative", enc(seed=-1), ConfigError, "seed"),
    Case("enc-seed-too-big", enc(seed=2**64), ConfigError, "seed"),
    Case("enc-batch-size-zero", enc(batch_size=0), ConfigError, "batch_size must be an integer >= 1"),
    Case("enc-batch-size-text", enc(batch_size="16"), ConfigError, "batch_size"),
    Case("enc-cache-text", enc(cache="yes"), ConfigError, "cache must be true or false"),
    Case("enc-show-progress-int", enc(show_progress=1), ConfigError, "show_progress must be true or false"),
]

TRAIN_CONFIG_CASES = [
    Case("train-batch-size-text", trn(batch_size="abc"), ConfigError, "batch_size must be an integer, got 'abc'"),
    Case("train-batch-size-float", trn(batch_size=4.0), ConfigError, "batch_size must be an integer"),
    Case("train-rollouts-bool", trn(rollouts=True), ConfigError, "rollouts must be an integer"),
    Case("train-rollouts-zero", trn(rollouts=0, objective="contrastive"), ConfigError, "rollouts must be >= 1"),
    Case("train-tau-nan", trn(tau=NAN), ConfigError, "tau must be a finite number"),
    Case("train-tau-zero", trn(tau=0), ConfigError, "tau must be > 0"),
    Case("train-lr-inf", trn(learning_rate=INF), ConfigError, "learning_rate must be a finite number"),
    Case("train-lr-text", trn(learning_rate="1e-4"), ConfigError, "learning_rate must be a finite number, got '1e-4'"),
    Case("train-lora-text", trn(lora="yes"), ConfigError, "lora must be true or false"),
    Case("train-lora-targets-string", trn(lora_target_modules="q_proj"), ConfigError, "list of strings"),
    Case("train-lora-targets-numbers", trn(lora_target_modules=[1, 2]), ConfigError, "list of strings"),
    Case("train-lora-alpha-zero", trn(lora_alpha=0), ConfigError, "lora_alpha must be >= 1"),
    Case("train-lora-dropout-one", trn(lora_dropout=1.0), ConfigError, "lora_dropout must be in [0, 1)"),
    Case("train-seed-negative", trn(seed=-1), ConfigError, "seed must be in [0, 2**32)"),
    Case("train-seed-huge", trn(seed=2**40), ConfigError, "seed must be in [0, 2**32)"),
    Case("train-model-number", trn(model=3), ConfigError, "model must be a string or None"),
    Case("train-output-dir-number", trn(output_dir=5), ConfigError, "output_dir must be a string or None"),
    Case("train-max-minutes-text", trn(max_minutes="10"), ConfigError, "max_minutes must be a finite number or None"),
    Case("train-max-minutes-zero", trn(max_minutes=0), ConfigError, "max_minutes must be > 0"),
    Case("train-estimator-unknown", trn(estimator="ppo2"), ConfigError, "unknown estimator 'ppo2'"),
    Case("train-objective-unknown", trn(objective="cosine"), ConfigError, "unknown objective 'cosine'"),
    Case("train-mode-unknown", trn(mode="semi"), ConfigError, "unknown mode 'semi'"),
    Case("train-reward-variant-unknown", trn(reward_variant="best"), ConfigError, "unknown reward variant"),
    Case("train-length-penalty-text", trn(length_penalty="lots"), ConfigError, 'length_penalty must be a number or "off"'),
    Case("train-length-penalty-inf", trn(length_penalty=-INF), ConfigError, "length_penalty"),
    Case("train-pooling-unknown", trn_dict({"encoder": {"pooling": "median"}}), ConfigError, "unknown pooling 'median'"),
    Case("train-layer-unknown", trn_dict({"encoder": {"layer": "first"}}), ConfigError, "unknown layer 'first'"),
    Case("train-encoder-not-a-table", trn_dict({"encoder": "mean"}), ConfigError, "encoder must be a table"),
    Case("train-encoder-dict", trn(encoder={"pooling": "mean"}), ConfigError, "encoder must be an EncoderConfig"),
    Case("train-lambda-negative", trn(lambda_consistency=-0.2), ConfigError, "must be >= 0"),
    Case("train-clip-eps-one", trn(clip_eps=1.0), ConfigError, "clip_eps must be in (0, 1)"),
    Case("train-dual-clip-one", trn(dual_clip=1.0), ConfigError, "dual_clip must be > 1"),
    Case("train-mixed-precision-unknown", trn(mixed_precision="fp8"), ConfigError, "unknown mixed precision 'fp8'"),
    Case("train-eval-split-empty", trn(eval_split=" "), ConfigError, "eval_split must name a qrels split"),
    Case("train-grad-accum-not-dividing", trn(batch_size=6, grad_accum=4), ConfigError, "grad_accum"),
    Case("train-from-dict-unknown", lambda ctx: TrainConfig.from_dict({"colour": 1}), ConfigError,
         "unknown setting(s) colour"),
]

INDEX_CASES = [
    Case("search-vector-wrong-dimension", search(vector=np.ones(7, np.float32)), GraceIndexError,
         "vectors have dimension 7, the index expects 32"),
    Case("search-vector-nan", search(vector=np.full(32, NAN, np.float32)), GraceIndexError, "NaN or infinite"),
    Case("search-vector-text", search(vector="lava"), GraceIndexError, "float32 numbers"),
    Case("search-nothing", lambda ctx: ctx.index.search(k=3), ConfigError, "nothing to search for"),
    Case("search-mode-unknown", search(mode="fuzzy"), ConfigError, "unknown mode 'fuzzy'"),
    Case("search-lexical-without-text", search(mode="lexical"), ConfigError, "needs the query text"),
    Case("search-dense-without-vector", lambda ctx: ctx.index.search(text="lava", mode="dense"), ConfigError,
         "needs a query vector"),
    Case("search-text-lone-surrogate", lambda ctx: ctx.index.search(text="lava \udce9", k=3), DataError, "not valid UTF-8"),
    Case("where-string", where("extension=.md"), ConfigError, "a filter is a dict"),
    Case("where-unknown-operator", where({"$nor": [{"extension": ".md"}]}), ConfigError, "unknown filter operator '$nor'"),
    Case("where-unknown-comparison", where({"extension": {"$regex": "md"}}), ConfigError, "unknown filter operator '$regex'"),
    Case("where-empty-comparison", where({"extension": {}}), ConfigError, "unknown filter operator"),
    Case("where-order-on-text", where({"position": {"$gt": "x"}}), ConfigError, "compares numbers"),
    Case("where-in-needs-list", where({"extension": {"$in": ".md"}}), ConfigError, "needs a list of values"),
    Case("where-and-not-list", where({"$and": "x"}), ConfigError, "$and takes a list of filter dicts"),
    Case("where-empty-key", where({"": 1}), ConfigError, "a filter key must be a non-empty string"),
    Case("where-unknown-key", where({"lang": "en"}), ConfigError, "unknown filter key 'lang'"),
    Case("where-object-value", where({"extension": {"$eq": {"a": 1}}}), ConfigError, "compares strings, numbers"),
    Case("fusion-alpha-above-one", lambda ctx: FusionConfig.from_options(None, 2.0), ConfigError, "alpha must be between"),
    Case("fusion-unknown", lambda ctx: FusionConfig.from_options("max", None), ConfigError, "unknown fusion 'max'"),
    Case("add-existing-id", lambda ctx: ctx.index.add([Chunk(id=ctx.first_id, text="again")], ctx.vector[None, :]),
         GraceIndexError, "already exists"),
    Case("add-text-lone-surrogate", add(Chunk(id="new", text="caf\udce9")), GraceIndexError, "chunks[0].text must be UTF-8 text"),
    Case("add-id-empty", add(Chunk(id="", text="x")), GraceIndexError, "chunks[0].id is empty"),
    Case("add-id-number", add(Chunk(id=5, text="x")), GraceIndexError, "chunks[0].id must be UTF-8 text"),
    Case("add-text-none", add(Chunk(id="new", text=None)), GraceIndexError, "chunks[0].text must be UTF-8 text"),
    Case("add-metadata-set", add(Chunk(id="new", text="x", metadata={"tags": {"a"}})), GraceIndexError,
         "chunks[0].metadata must be JSON"),
    Case("add-metadata-nan", add(Chunk(id="new", text="x", metadata={"score": NAN})), GraceIndexError, "must be JSON"),
    Case("add-metadata-list", add(Chunk(id="new", text="x", metadata=["a"])), GraceIndexError, "must be a dict"),
    Case("add-position-text", add(Chunk(id="new", text="x", position="3")), GraceIndexError,
         "chunks[0].position must be an integer"),
    Case("add-not-a-chunk", lambda ctx: ctx.index.add([{"id": "x", "text": "y"}], ctx.vector[None, :]), GraceIndexError,
         "chunks[0] is dict, expected a Chunk"),
    Case("add-vector-count", add(Chunk(id="new", text="x"), np.ones((2, 32), np.float32)), GraceIndexError,
         "vector(s) of dimension 32"),
    Case("add-vector-inf", add(Chunk(id="new", text="x"), np.full((1, 32), INF, np.float32)), GraceIndexError,
         "NaN or infinite"),
    Case("open-missing", lambda ctx: GraceIndex.open(ctx.work / "nope"), GraceIndexError, "no index at"),
    Case("open-user-folder", lambda ctx: GraceIndex.open(ctx.work / "docs"), GraceIndexError, "not a grace-rag index"),
    Case("create-in-user-folder", lambda ctx: GraceIndex.create(ctx.work / "docs", ctx.info), GraceIndexError,
         "holds other files"),
    Case("create-over-an-index", lambda ctx: GraceIndex.create(ctx.work / "ix", ctx.info), GraceIndexError,
         "an index already exists"),
    Case("create-factory-invalid", lambda ctx: GraceIndex.create(ctx.work / "new", ctx.info, factory="IVFx"),
         GraceIndexError, "invalid FAISS factory string 'IVFx'"),
    Case("open-or-create-other-encoder", lambda ctx: GraceIndex.open_or_create(
        ctx.work / "ix", EncoderInfo("other", "0" * 32, 32)), GraceIndexError, "was built with model"),
    Case("second-writer", lambda ctx: GraceIndex.open(ctx.work / "ix").delete([ctx.first_id]), GraceIndexError,
         "is being written by another"),
    Case("ingest-batch-zero", lambda ctx: IngestConfig(batch_size=0), ConfigError, "batch_size must be at least 1"),
    Case("ingest-chunk-size-small", lambda ctx: IngestConfig(chunk_size=8), ConfigError, "chunk_size must be at least 16"),
    Case("ingest-overlap-too-big", lambda ctx: IngestConfig(chunk_size=32, chunk_overlap=32), ConfigError, "chunk_overlap"),
]

ENCODER_CASES = [
    Case("encode-a-string", lambda ctx: ctx.encoder.encode("one text"), TypeError, "wrap it in a list"),
    Case("encode-a-number", lambda ctx: ctx.encoder.encode(["ok", 3]), TypeError, "texts[1] is int, expected str"),
    Case("encode-none", lambda ctx: ctx.encoder.encode([None]), TypeError, "texts[0] is NoneType"),
    Case("encode-lone-surrogate", lambda ctx: ctx.encoder.encode(["fine", "caf\udce9"]), DataError,
         "texts[1] is not valid UTF-8"),
    Case("encode-role-unknown", lambda ctx: ctx.encoder.encode(["x"], role="author"), ConfigError, "unknown role 'author'"),
    Case("explain-bytes", lambda ctx: ctx.encoder.explain([b"bytes"]), TypeError, "texts[0] is bytes"),
    Case("encoder-model-empty", encoder(""), ModelNotFoundError, "the model name is empty"),
    Case("encoder-model-etc-passwd", encoder("/etc/passwd"), ModelNotFoundError, "is a file but not a model"),
    Case("encoder-model-missing", encoder("./no/such/model"), ModelNotFoundError, "does not exist"),
    Case("encoder-device-unknown", encoder("x", device="tpu"), ConfigError, "unknown device 'tpu'"),
    Case("encoder-device-cuda", encoder("x", device="cuda:7"), ConfigError, "device 'cuda:7'"),
    Case("encoder-device-mps", encoder("x", device="mps"), ConfigError, "device 'mps'"),
    Case("encoder-device-number", encoder("x", device=0), ConfigError, "unknown device 0"),
]

FILE_CASES = [
    Case("jsonl-not-utf8", jsonl(b'{"a": 1}\n{"b": "\xe9"}\n'), TextError, "input.jsonl:2:8: not valid UTF-8 (byte 0xe9)"),
    Case("jsonl-binary", jsonl(b'{"a": 1}\n\x00\x01\x02\n'), BinaryFileError, "input.jsonl:2: binary data"),
    Case("jsonl-invalid", jsonl(b'{"a": }\n'), DataError, "input.jsonl:1: invalid JSON"),
    Case("jsonl-array", jsonl(b"[1]\n"), DataError, "expected a JSON object, got list"),
    Case("jsonl-utf16", jsonl('{"a": 1}\n'.encode("utf-16")), BinaryFileError, "binary data"),
    Case("jsonl-missing", lambda ctx: list(read_jsonl(ctx.work / "missing.jsonl")), DataError, "cannot be read"),
    Case("texts-latin1", file(b"one\ntwo caf\xe9\n", load_texts, "corpus.txt"), TextError, "corpus.txt:2:8: not valid UTF-8"),
    Case("triplets-latin1", file(b'{"query": "caf\xe9"}\n', load_triplets), TextError, ":1:15:"),
    Case("triplets-negative-number", file(b'{"query": "a", "positive": "b", "negative": 3}\n', load_triplets), DataError,
         "negative"),
    Case("decode-nul", lambda ctx: decode(b"a\x00b", "x.txt"), BinaryFileError, "x.txt: binary file"),
    Case("decode-latin1", lambda ctx: decode(b"ok\nna\xefve\n", "x.txt"), TextError, "x.txt:2:3: not valid UTF-8 (byte 0xef)"),
    Case("decode-truncated-utf8", lambda ctx: decode("é".encode()[:1], "x.txt"), TextError, "x.txt:1:1"),
    Case("check-text-surrogate", lambda ctx: check_text("a\udcffb", "the query"), DataError, "the query is not valid UTF-8"),
]

CASES = ENCODER_CONFIG_CASES + TRAIN_CONFIG_CASES + INDEX_CASES + ENCODER_CASES + FILE_CASES


@pytest.fixture(scope="module")
def tiny_encoder():
    from grace_rag.testing import tiny_encoder

    return tiny_encoder(EncoderConfig(max_rationale_tokens=2, cache=False))


@pytest.fixture
def ctx(work: Path, tiny_encoder, model_dir: Path):
    """An index (the copy in ``work/ix``) held open for writing, as a program using the API would."""
    index = GraceIndex.open(work / "ix")
    index.lock()
    fids, vectors = next(index.store.iter_vectors())
    first_id = index.store.hit_map([int(fids[0])])[int(fids[0])].id
    yield SimpleNamespace(index=index, encoder=tiny_encoder, work=work, vector=vectors[0], first_id=first_id,
                          info=index.manifest.encoder, model=model_dir)
    index.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_raises_one_clear_line_and_changes_nothing(case: Case, ctx, model_dir: Path):
    assert len({c.id for c in CASES}) == len(CASES)
    before = snapshot(ctx.work / "ix", ctx.work / "docs", model_dir)
    with pytest.raises(case.error) as raised:
        case.call(ctx)
    message = str(raised.value)
    assert case.fragment in message and "\n" not in message, message
    assert not changes(before, snapshot(ctx.work / "ix", ctx.work / "docs", model_dir))
