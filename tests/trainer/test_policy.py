"""The gradient path agrees with the inference path: same log-probs and the same pooled vector."""

import torch
from torch.testing import assert_close

import pytest

from grace_rag.config import DEFAULT_INSTRUCTION, Layer, Pooling
from grace_rag.generation import GenerationSettings
from grace_rag.hf_generation import HFGenerator
from grace_rag.pooling import normalize
from grace_rag.prompts import PromptBuilder
from grace_rag.representation import PoolSpec, Representer
from grace_rag.testing import tiny_backbone
from grace_rag.trainer.policy import forward_sequences, rationale_mask


def test_rationale_mask_is_right_aligned():
    assert rationale_mask([2, 0, 3], 3, "cpu").tolist() == [[0, 1, 1], [0, 0, 0], [1, 1, 1]]


@pytest.mark.parametrize("pooling", list(Pooling))
@pytest.mark.parametrize("layer", list(Layer))
def test_recomputed_logprobs_and_pooled_vectors_match_generation(pooling, layer):
    backbone = tiny_backbone()
    builder = PromptBuilder(backbone.tokenizer, DEFAULT_INSTRUCTION, 32)
    prompts = [builder.build(t) for t in ["a cat", "proteins fold into shapes in the cell", "rain"]]
    generator = HFGenerator(backbone.model, backbone.tokenizer, batch_size=8)
    # stop on common tokens too, so rationales of different lengths occur
    generator.stop_ids = sorted(set(generator.stop_ids) | set(range(100, 200)))
    spec = PoolSpec(pooling, layer)
    settings = GenerationSettings(max_new_tokens=5, temperature=1.0, seed=3, return_logprobs=True)
    rationales, vectors = Representer(backbone.model, backbone.tokenizer, spec, generator).represent(prompts, settings)
    assert len({len(r.token_ids) for r in rationales}) > 1
    out = forward_sequences(backbone.model, prompts, [r.token_ids for r in rationales],
                            generator.pad_id, temperature=1.0, spec=spec)
    for row, r in enumerate(rationales):
        n = len(r.token_ids)
        got = out.logp[row][out.mask[row].bool()]
        assert got.shape[0] == n
        assert_close(got, torch.tensor(r.logprobs), atol=1e-4, rtol=1e-4)
    assert_close(normalize(out.pooled), vectors, atol=1e-4, rtol=1e-4)
