"""GraceEncoder behaviour on a tiny random model: shapes, bad input, cache, fingerprint."""

import numpy as np
import pytest

from grace_rag import EncoderConfig
from grace_rag.cache import RationaleCache
from grace_rag.errors import ConfigError
from grace_rag.testing import tiny_backbone, tiny_encoder
from grace_rag.encoder import GraceEncoder


@pytest.fixture(scope="module")
def enc():
    return tiny_encoder()


def test_shapes_dtype_and_unit_norm(enc):
    out = enc.encode_documents(["one text", "another, longer text about rivers"])
    assert out.shape == (2, enc.dimension) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert enc.encode_queries([]).shape == (0, enc.dimension)


def test_blank_texts_give_zero_vector_and_empty_rationale(enc):
    e = enc.encode(["", "   \n\t", "real text"])
    assert np.all(e.vectors[:2] == 0) and e.rationales[:2] == ["", ""]
    assert np.linalg.norm(e.vectors[2]) == pytest.approx(1.0, abs=1e-5)


def test_non_string_names_its_position(enc):
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        enc.encode_documents(["ok", 3])
    with pytest.raises(TypeError, match="single str"):
        enc.encode_documents("not a list")


@pytest.mark.parametrize(
    ("kwargs", "listed"),
    [({"pooling": "avg"}, "mean, last, max"), ({"layer": "first"}, "last, penultimate"), ({"batch_size": 0}, "integer >= 1")],
)
def test_bad_config_lists_valid_values(kwargs, listed):
    with pytest.raises(ConfigError, match=listed):
        EncoderConfig(**kwargs)


def test_bad_device_lists_valid_values():
    with pytest.raises(ConfigError, match="auto, cpu, cuda, cuda:N, mps"):
        GraceEncoder.from_backbone(tiny_backbone(), EncoderConfig(cache=False)).__class__(device="tpu")


def test_bad_role_is_a_config_error(enc):
    with pytest.raises(ConfigError, match="query, document"):
        enc.encode(["x"], role="passage")


def test_cache_hit_runs_no_model(tmp_path):
    cache = RationaleCache(tmp_path / "c.sqlite")
    enc = tiny_encoder(EncoderConfig(max_rationale_tokens=3), cache=cache)
    first = enc.encode(["alpha beta", "gamma"])
    calls = []
    enc.backbone.model.register_forward_pre_hook(lambda *a: calls.append(1))
    again = enc.encode(["gamma", "alpha beta"])
    assert calls == []
    assert np.array_equal(again.vectors, first.vectors[::-1]) and again.rationales == first.rationales[::-1]
    assert cache.count() == 2


def test_cache_is_keyed_by_role_and_fingerprint(tmp_path):
    cache = RationaleCache(tmp_path / "c.sqlite")
    enc = tiny_encoder(EncoderConfig(max_rationale_tokens=2), cache=cache)
    enc.encode_queries(["x"])
    enc.encode_documents(["x"])
    other = tiny_encoder(EncoderConfig(max_rationale_tokens=3), cache=cache)
    other.encode_documents(["x"])
    assert cache.count() == 3


def test_fingerprint_is_stable_and_covers_settings():
    a = tiny_encoder(EncoderConfig(max_rationale_tokens=4, cache=False))
    b = tiny_encoder(EncoderConfig(max_rationale_tokens=4, cache=False, batch_size=3))
    c = tiny_encoder(EncoderConfig(max_rationale_tokens=4, cache=False, pooling="max"))
    d = tiny_encoder(EncoderConfig(max_rationale_tokens=4, cache=False), seed=5)
    assert a.fingerprint == b.fingerprint  # batch size does not change vectors
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3


def test_duplicates_are_computed_once(enc):
    calls = []
    handle = enc.backbone.model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        out = enc.encode_documents(["same", "same"])
    finally:
        handle.remove()
    assert np.array_equal(out[0], out[1])
    assert len(calls) == 1 + enc.config.max_rationale_tokens  # one batch of one prompt: prefill + steps


def test_explain_returns_rationales(enc):
    assert len(enc.explain(["a", "b"])) == 2


def test_unknown_backend_lists_valid_values():
    with pytest.raises(ConfigError, match="hf, vllm"):
        tiny_encoder(backend="tensorrt")


def test_vllm_backend_without_vllm_names_the_extra():
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"grace-rag\[vllm\]"):
            tiny_encoder(backend="vllm")
    else:
        pytest.skip("vllm is installed")


def test_text_only_backend_is_pooled_by_a_separate_forward_pass():
    """A backend that only writes text (like vLLM) gets the same vectors via Representer.pool_sequences."""
    from grace_rag.generation import RationaleGenerator
    from grace_rag.hf_generation import HFGenerator

    class TextOnly(RationaleGenerator):  # no fused capability
        def __init__(self, model, tokenizer):
            self.inner = HFGenerator(model, tokenizer)

        def generate(self, prompts, settings, progress=None):
            return self.inner.generate(prompts, settings, progress)

    fused = tiny_encoder()
    bb = fused.backbone
    text_only = GraceEncoder.from_backbone(bb, fused.config, generator=TextOnly(bb.model, bb.tokenizer))
    texts = ["one text", "a second and longer text"]
    assert np.allclose(fused.encode_documents(texts), text_only.encode_documents(texts), atol=1e-5)


def test_int8_is_refused_with_what_to_use_instead():
    """int8 cost 0.11 nDCG@10 even per channel (benchmarks/int8_quality.py) and was removed."""
    with pytest.raises(ConfigError, match="quantization 'int8' is no longer offered.*use 'none' or 'bf16'"):
        EncoderConfig(quantization="int8")
    ref = tiny_encoder(EncoderConfig(max_rationale_tokens=0, cache=False))
    assert ref.config.quantization.value == "none"
    assert "quantization" not in ref.config.identity()  # neutral value: older fingerprints unchanged


def test_bf16_agrees_with_fp32_decodes_and_has_its_own_fingerprint():
    """bf16 linear layers: vectors within 0.999 cosine of fp32 on the tiny model; decoding (KV cache,
    shared prefix) runs; float32 everywhere but the decoder blocks' linear weights; never mixed in caches."""
    import torch

    from grace_rag.acceleration import BF16Linear

    bf16 = tiny_encoder(EncoderConfig(max_rationale_tokens=0, quantization="bf16", cache=False))
    ref = tiny_encoder(EncoderConfig(max_rationale_tokens=0, cache=False))
    texts = ["a cat sleeps on the warm mat", "interest rates rose again", "rain"]
    a, b = bf16.encode_documents(texts), ref.encode_documents(texts)
    assert (a * b).sum(axis=1).min() >= 0.999 and not np.array_equal(a, b)
    assert bf16.fingerprint != ref.fingerprint and bf16.config.identity()["quantization"] == "bf16"
    model = bf16.backbone.model
    linears = [m for m in model.modules() if isinstance(m, BF16Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert model.lm_head.weight.dtype == torch.float32 and type(model.lm_head) is torch.nn.Linear
    assert ref.backbone.model is not model and next(ref.backbone.model.parameters()).dtype == torch.float32
    decoding = tiny_encoder(EncoderConfig(max_rationale_tokens=4, quantization="bf16", cache=False))
    out = decoding.encode(texts + texts)  # two batches' worth through the shared-prefix KV cache
    assert np.allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    assert out.rationales[:3] == out.rationales[3:]


@pytest.mark.parametrize("native, expected", [("1", "bf16"), ("0", "none")])
def test_auto_quantization_is_bf16_exactly_where_the_cpu_multiplies_bf16(monkeypatch, native, expected):
    """The default resolves per machine when the encoder is built; the resolved value is what the config,
    the fingerprint (and so caches and indexes) carry."""
    monkeypatch.setenv("GRACE_RAG_NATIVE_BF16", native)
    enc = tiny_encoder(EncoderConfig(max_rationale_tokens=0, cache=False))
    explicit = tiny_encoder(EncoderConfig(max_rationale_tokens=0, cache=False, quantization=expected))
    assert EncoderConfig().quantization.value == "auto"
    assert enc.config.quantization.value == expected and enc.fingerprint == explicit.fingerprint


def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch, tmp_path):
    from grace_rag import acceleration

    monkeypatch.delenv("GRACE_RAG_NATIVE_BF16", raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(acceleration, "CPU_FLAGS", cpuinfo)
    assert not acceleration.native_bf16_cpu()  # no such file: no
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert not acceleration.native_bf16_cpu()
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert acceleration.native_bf16_cpu()
    assert acceleration.resolve_quantization(acceleration.Quantization.AUTO, "cuda").value == "none"
    assert acceleration.resolve_quantization(acceleration.Quantization.BF16, "cpu").value == "bf16"
