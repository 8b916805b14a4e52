"""InfoNCE baseline loss against hand-computed numbers."""

import math

import torch
from torch.testing import assert_close

from grace_rag.trainer.contrastive import info_nce


def test_in_batch_only():
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # normalised inside
    pos = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    assert_close(info_nce(q, pos, None, tau=1.0), torch.tensor(math.log(1 + math.exp(-1))))


def test_hard_negatives_are_distractors_for_all_queries():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pos = q.clone()
    neg = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0001]]])  # query 0's negative equals its positive
    # row 0: logits [1, 0, 1, 0] -> -log(e / (2e + 2)); row 1: logits [0, 1, 0, 1] -> same
    expected = -math.log(math.e / (2 * math.e + 2))
    assert_close(info_nce(q, pos, neg, tau=1.0), torch.tensor(expected), atol=1e-5, rtol=1e-5)


def test_gradient_reaches_inputs():
    q = torch.randn(3, 4, requires_grad=True)
    pos = torch.randn(3, 4, requires_grad=True)
    info_nce(q, pos, torch.randn(3, 2, 4), tau=0.05).backward()
    assert q.grad.abs().sum() > 0 and pos.grad.abs().sum() > 0
