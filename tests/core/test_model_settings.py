"""Settings that travel with a model (grace_encoder.json) and LoRA adapter directories."""

import json

import numpy as np
import pytest
import torch

from grace_rag import EncoderConfig
from grace_rag.config import Layer, Pooling, Role
from grace_rag.encoder import GraceEncoder
from grace_rag.errors import ConfigError, ModelNotFoundError
from grace_rag.models import load_backbone, read_encoder_settings, write_encoder_settings


def test_explicit_fields_win_over_model_settings_and_the_rest_follow_the_model():
    model = {"layer": "penultimate", "max_rationale_tokens": 8, "query_rationale_tokens": 0}
    config = EncoderConfig(max_rationale_tokens=16, cache=False).resolve(model)
    assert config.layer is Layer.PENULTIMATE and config.query_rationale_tokens == 0
    assert config.max_rationale_tokens == 16 and config.cache is False
    assert EncoderConfig().resolve({}) == EncoderConfig()
    assert EncoderConfig(layer="last").with_changes(seed=3).explicit == {"layer", "seed"}


def test_paper_settings_are_fully_explicit():
    paper = EncoderConfig.paper()
    resolved = paper.resolve({"layer": "penultimate", "max_rationale_tokens": 8})
    assert (resolved.layer, resolved.pooling, resolved.max_rationale_tokens) == (Layer.LAST, Pooling.MEAN, 256)


def test_unknown_model_setting_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown field.*warp_factor"):
        EncoderConfig().resolve({"warp_factor": 9})


def test_query_rationale_length_changes_queries_only_and_the_fingerprint():
    from grace_rag.testing import tiny_backbone

    backbone = tiny_backbone()
    both = GraceEncoder.from_backbone(backbone, EncoderConfig(max_rationale_tokens=4, cache=False))
    short = GraceEncoder.from_backbone(backbone, EncoderConfig(max_rationale_tokens=4, query_rationale_tokens=0,
                                                               cache=False))
    texts = ["a cat sleeps on the mat", "rates rose again"]
    assert np.allclose(both.encode_documents(texts), short.encode_documents(texts), atol=1e-6)
    assert short.explain(texts, role="query") == ["", ""]
    assert both.fingerprint != short.fingerprint
    # the neutral value leaves fingerprints of older indexes unchanged
    assert "query_rationale_tokens" not in both.config.identity()


def test_encoder_settings_file_round_trip_and_bad_file(tmp_path):
    write_encoder_settings(tmp_path, {"layer": "penultimate"}, note="x")
    assert read_encoder_settings(tmp_path) == {"layer": "penultimate"}
    (tmp_path / "grace_encoder.json").write_text('{"layer": "last"}')
    with pytest.raises(ConfigError, match="not a grace-rag encoder settings file"):
        read_encoder_settings(tmp_path)
    (tmp_path / "grace_encoder.json").write_text("{broken")
    with pytest.raises(ConfigError, match="unreadable"):
        read_encoder_settings(tmp_path)


def test_model_directory_settings_apply_unless_passed(model_dir, tmp_path):
    import shutil

    copy = tmp_path / "with-settings"
    shutil.copytree(model_dir, copy)
    write_encoder_settings(copy, {"layer": "penultimate", "max_rationale_tokens": 3})
    enc = GraceEncoder(model=str(copy), config=EncoderConfig(cache=False), device="cpu")
    assert enc.config.layer is Layer.PENULTIMATE and enc.config.max_rationale_tokens == 3
    enc = GraceEncoder(model=str(copy), config=EncoderConfig(max_rationale_tokens=2, cache=False), device="cpu")
    assert enc.config.max_rationale_tokens == 2 and enc.config.layer is Layer.PENULTIMATE


def _random_adapter(base_dir, out_dir, seed=0):
    """A LoRA adapter with non-zero weights on ``base_dir``, saved as grace-rag saves one."""
    import torch
    from peft import LoraConfig, get_peft_model

    base = load_backbone(base_dir)
    model = get_peft_model(base.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.3)
    model.save_pretrained(str(out_dir))
    cfg = json.loads((out_dir / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(base_dir)
    (out_dir / "adapter_config.json").write_text(json.dumps(cfg))
    merged_dir = out_dir.parent / f"{out_dir.name}-merged"
    model.merge_and_unload().save_pretrained(str(merged_dir))
    base.tokenizer.save_pretrained(str(merged_dir))
    return merged_dir


def test_adapter_directory_gives_the_vectors_of_the_merged_model(model_dir, tmp_path):
    adapter = tmp_path / "adapter"
    merged = _random_adapter(model_dir, adapter)
    config = EncoderConfig(max_rationale_tokens=3, cache=False)
    texts = ["a cat sleeps on the mat", "proteins fold into shapes", "rates rose"]
    a = GraceEncoder(model=str(adapter), config=config, device="cpu").encode_documents(texts)
    m = GraceEncoder(model=str(merged), config=config, device="cpu").encode_documents(texts)
    base = GraceEncoder(model=str(model_dir), config=config, device="cpu").encode_documents(texts)
    assert (a * m).sum(axis=1).min() >= 0.9999
    assert (a * base).sum(axis=1).min() < 0.999  # the adapter really changes the vectors
    a_enc = GraceEncoder(model=str(adapter), config=config, device="cpu")
    assert a_enc.fingerprint != GraceEncoder(model=str(model_dir), config=config, device="cpu").fingerprint


def test_adapter_with_a_missing_base_names_it(model_dir, tmp_path):
    adapter = tmp_path / "adapter"
    _random_adapter(model_dir, adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tmp_path / "gone")
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelNotFoundError, match=r"LoRA adapter for base model .*gone.*cannot be loaded"):
        load_backbone(adapter)


def test_frozen_writer_writes_the_base_models_rationales_and_pools_with_the_adapter(model_dir, tmp_path):
    from grace_rag.config import Role, Writer
    from grace_rag.representation import Representer

    adapter = tmp_path / "adapter"
    _random_adapter(model_dir, adapter)
    texts = ["a cat sleeps on the mat", "proteins fold into shapes", "rates rose"]
    frozen = GraceEncoder(model=str(adapter), config=EncoderConfig(max_rationale_tokens=4, writer="base", cache=False),
                          device="cpu")
    base = GraceEncoder(model=str(model_dir), config=EncoderConfig(max_rationale_tokens=4, cache=False), device="cpu")
    own = GraceEncoder(model=str(adapter), config=EncoderConfig(max_rationale_tokens=4, cache=False), device="cpu")
    prompts = [frozen.builders[Role.DOCUMENT].build(t) for t in texts]
    written, vectors = frozen.representer.represent(prompts, frozen.settings[Role.DOCUMENT])
    by_base, _ = base.representer.represent(prompts, base.settings[Role.DOCUMENT])
    by_adapter, _ = own.representer.represent(prompts, own.settings[Role.DOCUMENT])
    assert [r.token_ids for r in written] == [r.token_ids for r in by_base]  # the base writes
    assert [r.token_ids for r in written] != [r.token_ids for r in by_adapter]  # (the adapter would write otherwise)
    reader = Representer(own.backbone.model, own.backbone.tokenizer, own.pool_spec)
    expected = reader.pool_sequences(prompts, [r.token_ids for r in by_base])  # the adapter reads
    assert torch.allclose(vectors, expected, atol=1e-5)
    assert frozen.config.writer is Writer.BASE and frozen.fingerprint != own.fingerprint
    assert own.fingerprint == GraceEncoder(model=str(adapter), config=EncoderConfig(max_rationale_tokens=4, writer="model",
                                                                                    cache=False), device="cpu").fingerprint


def test_writer_input_tokens_writes_from_the_cut_text_and_pools_the_whole_text(monkeypatch):
    from grace_rag.config import Role
    from grace_rag.testing import tiny_backbone

    backbone = tiny_backbone()
    texts = ["a cat sleeps on the mat while the dog barks at the postman outside",
             "proteins fold into shapes that decide what they do in the cell", "rates rose"]
    whole = GraceEncoder.from_backbone(backbone, EncoderConfig(max_rationale_tokens=4, max_input_tokens=64, cache=False))
    cut = GraceEncoder.from_backbone(backbone, EncoderConfig(max_rationale_tokens=4, max_input_tokens=64,
                                                             writer_input_tokens=3, cache=False))
    short = GraceEncoder.from_backbone(backbone, EncoderConfig(max_rationale_tokens=4, max_input_tokens=3, cache=False))
    seen = []  # what the writer is given
    generate = cut.generator.generate
    monkeypatch.setattr(cut.generator, "generate", lambda prompts, *a, **k: seen.extend(prompts) or generate(prompts, *a, **k))
    encoding = cut.encode(texts)
    short_prompts = [short.builders[Role.DOCUMENT].build(t) for t in texts]
    assert [p.input_ids for p in seen] == [p.input_ids for p in short_prompts]  # the first 3 tokens of each text
    written, _ = short.representer.represent(short_prompts, short.settings[Role.DOCUMENT])
    prompts = [whole.builders[Role.DOCUMENT].build(t) for t in texts]
    expected = whole.representer.pool_sequences(prompts, [r.token_ids for r in written])  # the whole text + rationale
    assert np.allclose(encoding.vectors, expected.numpy(), atol=1e-5)
    assert not np.allclose(short.encode(texts).vectors, expected.numpy(), atol=1e-3)  # (not the cut text's vector)


def test_writer_input_tokens_is_in_the_fingerprint_only_when_it_cuts():
    from grace_rag.testing import tiny_backbone

    backbone = tiny_backbone()

    def fingerprint(**kw):
        return GraceEncoder.from_backbone(backbone, EncoderConfig(max_input_tokens=64, cache=False, **kw)).fingerprint

    plain = fingerprint()
    assert fingerprint(writer_input_tokens=64) == plain and fingerprint(writer_input_tokens=500) == plain
    assert [EncoderConfig(max_input_tokens=64, writer_input_tokens=n).writer_reads for n in (None, 500, 16)] == [64, 64, 16]
    assert fingerprint(writer_input_tokens=16) != plain != fingerprint(writer_input_tokens=8)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "long", True])
def test_writer_input_tokens_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match="writer_input_tokens must be None or an integer >= 1"):
        EncoderConfig(writer_input_tokens=bad)


def test_training_refuses_a_writer_that_reads_less_than_the_reader():
    from grace_rag.trainer.config import TrainConfig

    with pytest.raises(ConfigError, match="writer_input_tokens is an encoding setting"):
        TrainConfig(encoder=EncoderConfig(max_input_tokens=128, writer_input_tokens=64))
    TrainConfig(encoder=EncoderConfig(max_input_tokens=128, writer_input_tokens=128))  # reads as much: fine


def test_texts_without_a_rationale_never_run_another_writer(model_dir, tmp_path, monkeypatch):
    """Queries of a frozen-writer model (query_rationale_tokens = 0): one pass of the reader, none of the writer."""
    adapter = tmp_path / "adapter"
    _random_adapter(model_dir, adapter)
    frozen = GraceEncoder(model=str(adapter), config=EncoderConfig(max_rationale_tokens=4, query_rationale_tokens=0,
                                                                   writer="base", cache=False), device="cpu")
    expected = frozen.representer.pool_sequences([frozen.builders[Role.QUERY].build("how do bees talk?")], [[]])
    monkeypatch.setattr(frozen.generator, "generate", lambda *a, **k: pytest.fail("the writer ran"))
    got = frozen.encode(["how do bees talk?"], role="query")
    assert got.rationales == [""] and np.allclose(got.vectors, expected.numpy(), atol=1e-6)
