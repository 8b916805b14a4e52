"""Rewards against hand-computed numbers (2-D unit vectors; cosines are easy to do by hand)."""

import pytest
import torch
from torch.testing import assert_close

from grace_rag.trainer import rewards as R
from grace_rag.trainer.estimators import group_mean_advantage

E1, E2, U = [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]
Q = torch.tensor([E1, E2])  # (B=2, D)
POS = torch.tensor([[E1, U], [E2, E1]])  # (B=2, K=2, D)
NEG = torch.tensor([[E2], [U]])  # (B=2, M=1, D)


def t(x):
    return torch.tensor(x)


def test_contrastive_paper_and_per_rollout():
    assert_close(R.contrastive_reward(Q, POS, NEG), t([[1.0, 0.6], [0.2, -0.8]]))
    assert_close(R.contrastive_reward_per_rollout(Q, POS, NEG), t([[1.0, -0.2], [0.2, -0.6]]))


def test_contrastive_sums_several_negatives():
    neg = torch.tensor([[E2, U], [U, E1]])  # M = 2
    assert_close(R.contrastive_reward(Q, POS, neg), t([[1 - 0.6, 0.6 - 0.6], [1 - 0.8, -0.8]]))


def test_consistency():
    assert_close(R.consistency_reward(POS), t([[0.6, 0.6], [0.0, 0.0]]))
    three = torch.tensor([[E1, U, E2]])  # mean of the other two sims
    assert_close(R.consistency_reward(three), t([[(0.6 + 0) / 2, (0.6 + 0.8) / 2, (0 + 0.8) / 2]]))
    assert_close(R.consistency_reward(POS[:, :1]), torch.zeros(2, 1))


def test_hard_negative_paper_and_per_rollout():
    assert_close(R.hard_negative_reward(Q, POS), t([[-1.0, -1.0], [-0.8, -0.8]]))
    assert_close(R.hard_negative_reward_per_rollout(Q, POS), t([[0.0, -0.8], [0.0, -1.0]]))
    assert_close(R.hard_negative_reward(Q[:1], POS[:1]), torch.zeros(1, 2))


def test_hard_negative_averages_over_other_groups():
    q = torch.tensor([E1, E2, U])
    pos = torch.tensor([[E1], [E2], [U]])  # K = 1
    # i=0: -(sim(e1,e2) + sim(e1,u))/2 = -0.3 ; i=1: -(0 + 0.8)/2 ; i=2: -(0.6 + 0.8)/2
    assert_close(R.hard_negative_reward(q, pos), t([[-0.3], [-0.4], [-0.7]]))


def test_unsupervised_terms():
    anchor = torch.tensor([E1, E2])
    x = torch.tensor([[E1, U], [U, E2]])
    assert_close(R.self_alignment_reward(anchor, x), t([[1.0, 0.6], [0.8, 1.0]]))
    assert_close(R.inbatch_anchor_reward(anchor, x), t([[0.0, -0.8], [-0.6, 0.0]]))
    out = R.unsupervised_rewards(anchor, x, torch.ones(2, 2, dtype=torch.bool), lambda_consistency=0.2,
                                 lambda_hard=0.2, tau=0.1, length_penalty=-1.0)
    # (self + 0.2*cons + 0.2*inbatch) / 0.1 with cons = 0.6 (group 0) and 0.8 (group 1)
    assert_close(out.total, t([[11.2, 5.6], [8.4, 11.6]]))


def test_total_weighted_scaled_and_length_penalty():
    finished = torch.tensor([[True, False], [True, True]])
    out = R.supervised_rewards(Q, POS, NEG, finished, variant="paper", lambda_consistency=0.2,
                               lambda_hard=0.2, tau=0.1, length_penalty=-1.0)
    # (R_CL + 0.2 R_cons + 0.2 R_hard) / 0.1 ; the unfinished rollout gets -1
    assert_close(out.total, t([[9.2, -1.0], [0.4, -9.6]]))
    assert set(out.means()) == {"primary", "consistency", "hard", "total"}


def _random_unit(seed, *shape):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1)


def test_group_constant_terms_cancel_in_paper_advantage():
    """method.md: sim(q, d-) and R_hard are constant within a group -> they vanish from A."""
    b, k, d = 3, 4, 8
    q, pos, neg = _random_unit(1, b, d), _random_unit(2, b, k, d), _random_unit(3, b, 1, d)
    done = torch.ones(b, k, dtype=torch.bool)
    kw = dict(lambda_consistency=0.2, lambda_hard=0.2, tau=0.1, length_penalty=-1.0)

    full = R.supervised_rewards(q, pos, neg, done, variant="paper", **kw)
    only_varying = (torch.einsum("bd,bkd->bk", q, pos) + 0.2 * R.consistency_reward(pos)) / 0.1
    assert_close(group_mean_advantage(full.total), group_mean_advantage(only_varying))
    # ... so swapping the negatives (or dropping the hard term) leaves the paper's advantage unchanged
    other = R.supervised_rewards(q, pos, -neg, done, variant="paper", **{**kw, "lambda_hard": 5.0})
    assert not torch.allclose(full.total, other.total)
    assert_close(group_mean_advantage(full.total), group_mean_advantage(other.total))
    # the per-rollout variant does respond to the negatives
    var_a = R.supervised_rewards(q, pos, neg, done, variant="per_rollout", **kw)
    var_b = R.supervised_rewards(q, pos, -neg, done, variant="per_rollout", **kw)
    assert not torch.allclose(group_mean_advantage(var_a.total), group_mean_advantage(var_b.total))


def test_length_penalty_is_the_side_path_through_which_constants_act():
    b, k, d = 2, 3, 4
    q, pos, neg = _random_unit(1, b, d), _random_unit(2, b, k, d), _random_unit(3, b, 1, d)
    done = torch.tensor([[True, False, True], [True, True, True]])
    kw = dict(variant="paper", lambda_consistency=0.2, lambda_hard=0.2, tau=0.1, length_penalty=-1.0)
    a = group_mean_advantage(R.supervised_rewards(q, pos, neg, done, **kw).total)
    b_ = group_mean_advantage(R.supervised_rewards(q, pos, -neg, done, **kw).total)
    assert not torch.allclose(a[0], b_[0])  # group with a penalised rollout: negatives matter
    assert_close(a[1], b_[1])  # full group: they cancel


def test_soft_rank_by_hand():
    # query 0 = e1; its rollouts e1 (sim 1) and u (0.6); other candidates: group 1's rollouts e2 (0), e1 (1)
    # and the negatives e2 (0), u (0.6). tau = 1 keeps the numbers readable.
    out = R.soft_rank_reward(Q, POS, NEG, tau=1.0)
    import math

    others = math.exp(0) + math.exp(1) + math.exp(0) + math.exp(0.6)
    assert_close(out[0], t([1 - math.log(math.exp(1) + others), 0.6 - math.log(math.exp(0.6) + others)]))


def test_soft_rank_leaves_out_rows_that_share_the_query():
    same = torch.tensor([[False, True], [True, False]])
    out = R.soft_rank_reward(Q, POS, NEG, tau=1.0, same_query=same)
    import math

    others = math.exp(0) + math.exp(0.6)  # only the negatives remain as candidates for query 0
    assert_close(out[0, 0], torch.tensor(1 - math.log(math.exp(1) + others)))


def test_margin_by_hand():
    # sim(q, pos) - max_m sim(neg, pos). group 0 (q=e1, neg=e2): e1 -> 1 - 0 ; u -> 0.6 - 0.8
    # group 1 (q=e2, neg=u): e2 -> 1 - 0.8 ; e1 -> 0 - 0.6
    assert_close(R.margin_reward(Q, POS, NEG), t([[1.0, -0.2], [0.2, -0.6]]))


def test_new_variants_vary_inside_a_group_where_the_paper_terms_cancel():
    b, k, d = 3, 4, 8
    q, pos, neg = _random_unit(1, b, d), _random_unit(2, b, k, d), _random_unit(3, b, 1, d)
    done = torch.ones(b, k, dtype=torch.bool)
    kw = dict(lambda_consistency=0.0, lambda_hard=0.2, tau=0.1, length_penalty=None)
    for variant in ("soft_rank", "margin"):
        a = group_mean_advantage(R.supervised_rewards(q, pos, neg, done, variant=variant, **kw).total)
        b_ = group_mean_advantage(R.supervised_rewards(q, pos, -neg, done, variant=variant, **kw).total)
        assert not torch.allclose(a, b_), variant  # the negatives change who wins inside a group
    paper_a = group_mean_advantage(R.supervised_rewards(q, pos, neg, done, variant="paper", **kw).total)
    paper_b = group_mean_advantage(R.supervised_rewards(q, pos, -neg, done, variant="paper", **kw).total)
    assert_close(paper_a, paper_b)


def test_per_rollout_hard_term_skips_rows_with_the_same_query():
    q = torch.tensor([E1, E1, E2])
    pos = torch.tensor([[U], [E1], [E2]])
    same = torch.tensor([[False, True, False], [True, False, False], [False, False, False]])
    # row 0 against other queries: only q_2 = e2 (sim(e2, u) = 0.8), not q_1 = e1 (same query)
    assert_close(R.hard_negative_reward_per_rollout(q, pos, same)[0], t([-0.8]))
    assert_close(R.hard_negative_reward_per_rollout(q, pos)[0], t([-(0.6 + 0.8) / 2]))


def test_grounding_reward_scores_what_each_rollout_says():
    from grace_rag.trainer.rewards import grounding_reward

    docs = ["the cat sleeps on the mat", "interest rates rose at the bank", "a river flooded the valley"]
    rollouts = ["cat mat sleep", "zzz qqq", "bank rates", "the valley", "river flood", "cat mat"]
    r = grounding_reward(rollouts, docs, k=2)
    assert r.shape == (3, 2)
    assert r.tolist() == [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]  # "the valley" finds doc 2, "cat mat" doc 0
    assert r[0, 0] != r[0, 1]  # unlike the paper's negative terms, it varies inside a group


def test_grounding_weight_enters_the_total_before_the_length_penalty():
    from grace_rag.trainer.rewards import supervised_rewards

    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(2, 4), dim=-1)
    pos = torch.nn.functional.normalize(torch.randn(2, 3, 4), dim=-1)
    neg = torch.nn.functional.normalize(torch.randn(2, 1, 4), dim=-1)
    finished = torch.tensor([[True, True, False], [True, True, True]])
    grounding = torch.tensor([[1.0, 0.0, 1.0], [0.5, 0.0, 0.0]])
    kw = dict(variant="paper", lambda_consistency=0.2, lambda_hard=0.2, tau=0.1, length_penalty=-1.0)
    plain = supervised_rewards(q, pos, neg, finished, **kw)
    grounded = supervised_rewards(q, pos, neg, finished, grounding=grounding, lambda_grounding=0.5, **kw)
    expected = torch.where(finished, plain.total + 0.5 * grounding / 0.1, torch.full_like(plain.total, -1.0))
    assert torch.allclose(grounded.total, expected)
    assert grounded.means()["grounding"] == pytest.approx(float(grounding.mean()))
