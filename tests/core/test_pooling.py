"""Pooling functions against hand-computed numbers."""

import torch

from grace_rag.config import Pooling
from grace_rag.pooling import last_token_pool, max_pool, mean_pool, normalize, pool, pooling_mask

HIDDEN = torch.tensor(
    [
        [[9.0, 9.0], [1.0, 2.0], [3.0, -4.0], [5.0, 0.0]],  # row 0: pooled tokens 1..3
        [[float("nan"), float("nan")], [7.0, 7.0], [2.0, 6.0], [-1.0, 1.0]],  # row 1: pad at 0
    ]
)
ATTN = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]])
START = torch.tensor([1, 2])  # absolute first pooled index per row


def test_pooling_mask_excludes_prefix_and_padding():
    mask = pooling_mask(ATTN, START)
    assert mask.tolist() == [[False, True, True, True], [False, False, True, True]]


def test_mean_pool_by_hand_and_nan_in_masked_positions_does_not_leak():
    out = mean_pool(HIDDEN, pooling_mask(ATTN, START))
    assert torch.allclose(out, torch.tensor([[3.0, -2.0 / 3.0], [0.5, 3.5]]))


def test_max_pool_by_hand():
    out = max_pool(HIDDEN, pooling_mask(ATTN, START))
    assert out.tolist() == [[5.0, 2.0], [2.0, 6.0]]


def test_last_token_pool_takes_last_masked_position():
    mask = pooling_mask(ATTN, START)
    mask[0, 3] = False  # e.g. a finished row fed a pad token
    out = last_token_pool(HIDDEN, mask)
    assert out.tolist() == [[3.0, -4.0], [-1.0, 1.0]]


def test_dispatch_and_normalize():
    mask = pooling_mask(ATTN, START)
    assert torch.equal(pool(HIDDEN, mask, Pooling.MAX), max_pool(HIDDEN, mask))
    unit = normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    assert torch.allclose(unit, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


def test_empty_mask_rows_give_zeros_not_nan():
    mask = torch.zeros(2, 4, dtype=torch.bool)
    for how in Pooling:
        out = pool(HIDDEN, mask, how)
        assert not torch.isnan(out).any() or how is Pooling.LAST
