"""The HF generator: reuse of generation states, padding invariance, log-probs, sampling."""

import numpy as np
import pytest
import torch

from grace_rag.config import Layer, Pooling
from grace_rag.generation import GenerationSettings
from grace_rag.hf_generation import HFGenerator
from grace_rag.prompts import PromptBuilder
from grace_rag.representation import PoolSpec, Representer
from grace_rag.testing import tiny_backbone

TEXTS = [
    "Proteins fold into shapes.",
    "The river flooded the valley after three days of heavy rain and the town was evacuated.",
    "Rates rose.",
]


def fused(bb, gen, prompts, settings, spec=PoolSpec()):
    """Rationales and vectors from the fused generate-and-pool pass."""
    return gen.generate_and_pool(prompts, settings, Representer(bb.model, bb.tokenizer, spec, gen))


def separate(bb, prompts, rationale_ids, spec=PoolSpec()):
    """Vectors from one separate forward pass over P(x) ⊕ r."""
    return Representer(bb.model, bb.tokenizer, spec).pool_sequences(prompts, rationale_ids)


@pytest.fixture(scope="module")
def setup():
    bb = tiny_backbone("chatml", seed=1)
    builder = PromptBuilder(bb.tokenizer, "Analyse the text.", 512)
    return bb, HFGenerator(bb.model, bb.tokenizer, batch_size=8), [builder.build(t) for t in TEXTS]


@pytest.mark.parametrize("pooling", list(Pooling))
@pytest.mark.parametrize("layer", list(Layer))
def test_fused_embedding_matches_separate_forward_pass(setup, pooling, layer):
    bb, gen, prompts = setup
    spec = PoolSpec(pooling, layer)
    rats, vectors = fused(bb, gen, prompts, GenerationSettings(max_new_tokens=12), spec)
    ref = separate(bb, prompts, [r.token_ids for r in rats], spec)
    for v, w in zip(vectors.numpy(), ref.numpy()):
        assert float(np.dot(v, w)) >= 0.999


def test_same_vector_alone_and_in_padded_batch(setup):
    bb, gen, prompts = setup
    settings = GenerationSettings(max_new_tokens=10)
    batch, vectors = fused(bb, gen, prompts, settings)
    for i, p in enumerate(prompts):
        alone, alone_vec = fused(bb, gen, [p], settings)
        assert alone[0].token_ids == batch[i].token_ids
        assert np.abs(alone_vec[0].numpy() - vectors[i].numpy()).max() < 1e-4


def test_greedy_is_deterministic_and_logprobs_match_a_recompute(setup):
    bb, gen, prompts = setup
    settings = GenerationSettings(max_new_tokens=6, return_logprobs=True)
    a = gen.generate(prompts[:1], settings)[0]
    b = gen.generate(prompts[:1], settings)[0]
    assert a.token_ids == b.token_ids and len(a.logprobs) == len(a.token_ids) == 6
    ids = torch.tensor([prompts[0].input_ids + a.token_ids])
    with torch.no_grad():
        logp = torch.log_softmax(bb.model(ids).logits[0].float(), -1)
    n = len(prompts[0].input_ids)
    expected = [logp[n - 1 + k, t].item() for k, t in enumerate(a.token_ids)]
    assert np.allclose(a.logprobs, expected, atol=1e-4)
    assert a.finished is False  # a random tiny model does not stop within 6 tokens


def test_seeded_sampling_is_reproducible_and_differs_from_greedy(setup):
    _, gen, prompts = setup
    s = GenerationSettings(max_new_tokens=8, temperature=1.0, seed=3)
    assert gen.generate(prompts, s)[1].token_ids == gen.generate(prompts, s)[1].token_ids
    greedy = gen.generate(prompts, GenerationSettings(max_new_tokens=8))
    sampled = [gen.generate(prompts, GenerationSettings(max_new_tokens=8, temperature=1.0, seed=k)) for k in range(3)]
    assert any(r[i].token_ids != greedy[i].token_ids for r in sampled for i in range(3))


def test_zero_rationale_tokens_pools_the_prompt_only(setup):
    bb, gen, prompts = setup
    rats, vectors = fused(bb, gen, prompts, GenerationSettings(max_new_tokens=0))
    ref = separate(bb, prompts, [[] for _ in prompts])
    assert all(r.text == "" and r.token_ids == [] for r in rats)
    assert np.allclose(vectors.numpy(), ref.numpy(), atol=1e-5)


def test_generation_stops_at_eos(setup):
    bb, gen, prompts = setup
    eos = bb.tokenizer.eos_token_id

    def favour_eos(_module, _inputs, logits):  # EOS becomes the argmax: every rationale is just EOS
        logits[..., eos] += 1e4
        return logits

    handle = bb.model.lm_head.register_forward_hook(favour_eos)
    try:
        rats, _ = fused(bb, gen, prompts, GenerationSettings(max_new_tokens=5))
    finally:
        handle.remove()
    assert all(r.token_ids == [eos] and r.finished and r.text == "" for r in rats)


@pytest.mark.parametrize("template", ["chatml", "llama3", "no_system", "none"])
def test_shared_prefix_gives_the_same_rationales_and_vectors(template):
    bb = tiny_backbone(template, seed=2)
    builder = PromptBuilder(bb.tokenizer, "Analyse the text.", 512)
    prompts = [builder.build(t) for t in TEXTS]
    settings = GenerationSettings(max_new_tokens=6)
    shared_gen = HFGenerator(bb.model, bb.tokenizer, batch_size=8)
    plain_gen = HFGenerator(bb.model, bb.tokenizer, batch_size=8)
    plain_gen._prefix = lambda prompts: None  # the reference: every prompt computed whole
    for pooling in Pooling:
        spec = PoolSpec(pooling, Layer.LAST)
        a_rats, a_vec = fused(bb, shared_gen, prompts, settings, spec)
        b_rats, b_vec = fused(bb, plain_gen, prompts, settings, spec)
        assert [r.token_ids for r in a_rats] == [r.token_ids for r in b_rats]
        assert (a_vec - b_vec).abs().max() <= 1e-5
    assert len(shared_gen._prefixes) == 1  # computed once, reused by every batch


def test_token_batches_cap_texts_and_padded_tokens_longest_first():
    from grace_rag.representation import token_batches

    assert token_batches([5, 100, 30, 30, 30, 7], batch_size=4, max_tokens=90) == [[1], [2, 3, 4], [5, 0]]
    assert token_batches([5, 100, 30, 30, 30, 7], batch_size=2) == [[1, 2], [3, 4], [5, 0]]
    assert token_batches([], batch_size=2, max_tokens=10) == []
    lengths = list(np.random.default_rng(0).integers(1, 60, size=50))
    batches = token_batches(lengths, batch_size=8, max_tokens=100)
    assert sorted(i for b in batches for i in b) == list(range(50))
    assert all(len(b) <= 8 and (len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 100) for b in batches)


def test_the_token_budget_changes_batches_not_results():
    """Encoding under a tight token budget (many small batches) gives the same rationales and vectors."""
    from grace_rag import EncoderConfig
    from grace_rag.testing import tiny_encoder

    texts = ["a", "a much longer text about rivers, mountains and the sea", "mid length text", "b c d"] * 3
    wide = tiny_encoder(EncoderConfig(max_rationale_tokens=3, cache=False, batch_size=16, max_batch_tokens=10**6))
    tight = tiny_encoder(EncoderConfig(max_rationale_tokens=3, cache=False, batch_size=16, max_batch_tokens=40))
    a, b = wide.encode(texts), tight.encode(texts)
    assert a.rationales == b.rationales and np.allclose(a.vectors, b.vectors, atol=1e-5)
    assert wide.fingerprint == tight.fingerprint  # batching is not part of what a vector is
