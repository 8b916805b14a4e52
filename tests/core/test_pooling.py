"""Pooling functions against hand-computed numbers."""

import torch

from grace_rag.config import Pooling
from grace_rag.pooling import (
    Segments, balanced_pool, last_token_pool, max_pool, mean_pool, normalize, pool, pooling_mask, rationale_pool, segments,
)

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


def test_segments_split_text_and_rationale():
    seg = segments(ATTN, START, torch.tensor([3, 4]))  # row 0: rationale = position 3; row 1: none
    assert seg.text.tolist() == [[False, True, True, False], [False, False, True, True]]
    assert seg.rationale.tolist() == [[False, False, False, True], [False, False, False, False]]
    assert seg.pooled.tolist() == pooling_mask(ATTN, START).tolist()


def test_rationale_and_balanced_pool_by_hand():
    seg = segments(ATTN, START, torch.tensor([3, 4]))
    # row 0: text = tokens 1, 2 -> mean (2, -1); rationale = token 3 -> (5, 0)
    # row 1: no rationale -> both poolings give the text mean of tokens 2, 3 = (0.5, 3.5)
    assert torch.allclose(rationale_pool(HIDDEN, seg), torch.tensor([[5.0, 0.0], [0.5, 3.5]]))
    assert torch.allclose(balanced_pool(HIDDEN, seg), torch.tensor([[3.5, -0.5], [0.5, 3.5]]))


def test_dispatch_and_normalize():
    seg = segments(ATTN, START, torch.tensor([3, 4]))
    assert torch.equal(pool(HIDDEN, seg, Pooling.MAX), max_pool(HIDDEN, seg.pooled))
    assert torch.equal(pool(HIDDEN, seg, Pooling.MEAN), mean_pool(HIDDEN, seg.pooled))
    unit = normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    assert torch.allclose(unit, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


def test_empty_mask_rows_give_zeros_not_nan():
    mask = torch.zeros(2, 4, dtype=torch.bool)
    for how in Pooling:
        out = pool(HIDDEN, Segments(text=mask, rationale=mask), how)
        assert not torch.isnan(out).any() or how is Pooling.LAST
