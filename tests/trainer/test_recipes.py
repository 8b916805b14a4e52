"""Recipes: memoised greedy rationales for InfoNCE, starting from an adapter, fp32 master weights."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from grace_rag.config import EncoderConfig
from grace_rag.testing import tiny_backbone
from grace_rag.trainer.config import TrainConfig
from grace_rag.trainer.loop import GraceTrainer
from grace_rag.trainer.run import checkpoint_dir, train

CL = dict(objective="contrastive", batch_size=2, rollouts=1,
          encoder=EncoderConfig(max_rationale_tokens=3, query_rationale_tokens=0, max_input_tokens=16),
          learning_rate=1e-2, lora=True, track_kl=False)


def _count_generate_calls(trainer, monkeypatch):
    """Count the texts the memo's writer (the base weights) decodes."""
    calls = []
    generator = trainer.memo.sampler.representer.generator
    real = generator.generate_and_pool

    def counting(prompts, settings, representer, progress=None):
        calls.append(len(prompts))
        return real(prompts, settings, representer, progress)

    monkeypatch.setattr(generator, "generate_and_pool", counting)
    return calls


def test_contrastive_steps_decode_each_text_once(triplets, monkeypatch):
    trainer = GraceTrainer(TrainConfig(**CL), tiny_backbone())
    calls = _count_generate_calls(trainer, monkeypatch)
    batch = triplets[:2]
    trainer.step(batch, 0)
    first = sum(calls)
    assert first == 4  # 2 positives + 2 negatives; queries have 0 rationale tokens: nothing to decode
    before = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}
    metrics = trainer.step(batch, 1)
    assert sum(calls) == first  # the same texts again: no decoding at all
    assert metrics["contrastive_loss"] > 0 and metrics["rationale_len"] > 0
    moved = [n for n, p in trainer.policy.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert moved  # the InfoNCE gradient reached the adapter


def test_contrastive_resume_is_bit_identical_with_the_memo(tmp_path, triplet_file, crash_at):
    cfg = dict(CL, steps=4, save_every=2)
    train(TrainConfig(**cfg, output_dir=str(tmp_path / "a")), triplet_file, backbone=tiny_backbone(), progress=False)
    crash_at(3)
    with pytest.raises(crash_at.error):
        train(TrainConfig(**cfg, output_dir=str(tmp_path / "b")), triplet_file, backbone=tiny_backbone(),
              progress=False)
    assert (checkpoint_dir(tmp_path / "b") / "step-00000002" / "extra.json").is_file()
    crash_at(None)
    train(TrainConfig(**cfg, output_dir=str(tmp_path / "b")), triplet_file, backbone=tiny_backbone(),
          progress=False, resume=True)
    a = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "b" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_from_an_adapter_starts_from_its_weights(tmp_path, triplet_file, model_dir):
    from grace_rag.encoder import GraceEncoder
    from grace_rag.models import load_backbone
    from grace_rag.trainer.run import training_backbone

    first = tmp_path / "first"
    train(TrainConfig(**CL, steps=2, output_dir=str(first)), triplet_file, backbone=load_backbone(model_dir),
          progress=False)
    cfg = TrainConfig(**CL, steps=1, model=str(first), output_dir=str(tmp_path / "second"))
    trainer = GraceTrainer(cfg, training_backbone(cfg))
    texts = ["a cat sleeps on the mat", "rates rose"]
    config = EncoderConfig(max_rationale_tokens=3, cache=False)
    start = trainer.as_encoder().encode_documents(texts)
    published = GraceEncoder(model=str(first), config=config, device="cpu").encode_documents(texts)
    assert np.allclose(start, published, atol=1e-5)  # identical before the first step
    n_trainable = sum(p.numel() for p in trainer.policy.parameters() if p.requires_grad)
    assert 0 < n_trainable < sum(p.numel() for p in trainer.policy.parameters())  # the adapter, not the base


def test_master_weights_are_fp32_even_for_a_bf16_backbone():
    backbone = tiny_backbone()
    backbone.model.to(torch.bfloat16)
    trainer = GraceTrainer(TrainConfig(**{**CL, "lora": False}), backbone)
    assert {p.dtype for p in trainer.policy.parameters()} == {torch.float32}


def test_contrastive_weight_schedule_is_linear_to_the_last_step():
    trainer = GraceTrainer(TrainConfig(**{**CL, "objective": "both", "rollouts": 2, "contrastive_weight": 1.0,
                                          "contrastive_weight_end": 0.0}), tiny_backbone())
    trainer.total_steps = 5
    assert [trainer.contrastive_weight(s) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]


@pytest.mark.parametrize("objective", ["contrastive", "grace", "both"])
def test_bf16_autocast_trains_every_objective(triplets, monkeypatch, objective):
    """Where the CPU multiplies bf16 natively the gradient passes autocast to bf16; rollouts decode as they are."""
    monkeypatch.setenv("GRACE_RAG_NATIVE_BF16", "1")
    cfg = TrainConfig(objective=objective, batch_size=3, rollouts=2, length_penalty="off", lora=True,
                      encoder=EncoderConfig(max_rationale_tokens=4, query_rationale_tokens=0, max_input_tokens=16))
    trainer = GraceTrainer(cfg, tiny_backbone(seed=4))
    before = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}
    metrics = trainer.step(triplets[:3], 0)
    assert all(np.isfinite(v) for v in metrics.values() if isinstance(v, float))
    assert any(not torch.equal(p, before[n]) for n, p in trainer.policy.named_parameters() if p.requires_grad)
