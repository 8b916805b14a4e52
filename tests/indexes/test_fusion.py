"""Fusion of hand-made rankings: reciprocal rank fusion and weighted min-max fusion, ties, empty sides."""

import pytest

from grace_rag.errors import ConfigError
from grace_rag.indexes.fusion import (
    DEFAULT_ALPHA, DEFAULT_FUSION, FusionConfig, FusionMethod, SearchMode, fuse, min_max, parse_mode,
    reciprocal_rank_fusion, single_side, weighted_fusion,
)

DENSE = [("a", 0.9), ("b", 0.8), ("c", 0.5)]
LEXICAL = [("c", 12.0), ("d", 6.0), ("a", 2.0)]


def keys(fused):
    return [f.key for f in fused]


def test_rrf_sums_one_over_k_plus_rank_of_each_side():
    fused = {f.key: f for f in reciprocal_rank_fusion(DENSE, LEXICAL, k=60)}
    assert fused["a"].score == pytest.approx(1 / 61 + 1 / 63)
    assert fused["c"].score == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"].score == pytest.approx(1 / 62)
    assert fused["d"].score == pytest.approx(1 / 62)
    assert (fused["c"].dense_rank, fused["c"].dense_score, fused["c"].lexical_rank, fused["c"].lexical_score) == (3, 0.5, 1, 12.0)
    assert (fused["d"].dense_rank, fused["d"].dense_score) == (None, None)


def test_rrf_ties_go_to_the_better_best_rank_then_to_dense_order():
    # a (dense 1, lexical 3) and c (dense 3, lexical 1) tie exactly; both have a first place: dense order wins
    # b (dense 2) and d (lexical 2) tie; both best rank 2: dense order wins again
    assert keys(reciprocal_rank_fusion(DENSE, LEXICAL)) == ["a", "c", "b", "d"]


def test_rrf_with_a_smaller_k_weights_the_top_more():
    fused = reciprocal_rank_fusion([("x", 1.0), ("y", 0.5)], [("y", 3.0)], k=1)
    assert keys(fused) == ["y", "x"] and fused[0].score == pytest.approx(1 / 3 + 1 / 2)


def test_weighted_fusion_by_hand():
    # dense min-max: a 1, b 0.75, c 0; lexical min-max: c 1, d 0.4, a 0
    fused = {f.key: f.score for f in weighted_fusion(DENSE, LEXICAL, alpha=0.5)}
    assert fused == pytest.approx({"a": 0.5, "b": 0.375, "c": 0.5, "d": 0.2})
    assert keys(weighted_fusion(DENSE, LEXICAL, alpha=0.5)) == ["a", "c", "b", "d"]
    assert keys(weighted_fusion(DENSE, LEXICAL, alpha=0.8)) == ["a", "b", "c", "d"]  # 0.8, 0.6, 0.2, 0.08
    assert keys(weighted_fusion(DENSE, LEXICAL, alpha=0.2)) == ["c", "d", "a", "b"]  # 0.8, 0.32, 0.2, 0.15


def test_weighted_fusion_extremes_follow_one_side():
    assert keys(weighted_fusion(DENSE, LEXICAL, alpha=1.0))[:3] == ["a", "b", "c"]
    assert keys(weighted_fusion(DENSE, LEXICAL, alpha=0.0))[:3] == ["c", "d", "a"]


def test_one_side_empty():
    for fused in (reciprocal_rank_fusion(DENSE, []), weighted_fusion(DENSE, [], alpha=0.3)):
        assert keys(fused) == ["a", "b", "c"]
        assert all(f.lexical_rank is None and f.lexical_score is None for f in fused)
    assert keys(reciprocal_rank_fusion([], LEXICAL)) == ["c", "d", "a"]
    assert keys(weighted_fusion([], LEXICAL, alpha=0.9)) == ["c", "d", "a"]
    assert reciprocal_rank_fusion([], []) == [] and weighted_fusion([], [], 0.5) == []


def test_equal_scores_on_one_side_normalise_to_one():
    assert min_max([3.0, 3.0]) == [1.0, 1.0] and min_max([7.0]) == [1.0] and min_max([]) == []
    assert min_max([1.0, 3.0, 2.0]) == [0.0, 1.0, 0.5]
    fused = weighted_fusion([("a", 0.4), ("b", 0.4)], [("b", 5.0)], alpha=0.5)
    assert keys(fused) == ["b", "a"] and [f.score for f in fused] == [1.0, 0.5]


def test_a_repeated_key_keeps_its_first_place():
    fused = reciprocal_rank_fusion([("a", 0.9), ("a", 0.1), ("b", 0.5)], [])
    assert [(f.key, f.dense_rank, f.dense_score) for f in fused] == [("a", 1, 0.9), ("b", 3, 0.5)]


def test_single_side_keeps_that_sides_own_score():
    dense = single_side(DENSE, SearchMode.DENSE)
    assert [(f.key, f.score, f.dense_rank, f.lexical_rank) for f in dense] == [("a", 0.9, 1, None), ("b", 0.8, 2, None), ("c", 0.5, 3, None)]
    lexical = single_side(LEXICAL, SearchMode.LEXICAL)
    assert [(f.key, f.score, f.lexical_rank, f.dense_rank) for f in lexical] == [("c", 12.0, 1, None), ("d", 6.0, 2, None), ("a", 2.0, 3, None)]


def test_fuse_dispatches_on_the_config_and_defaults_live_in_one_place():
    assert fuse(DENSE, LEXICAL, FusionConfig(method="rrf")) == reciprocal_rank_fusion(DENSE, LEXICAL, 60)
    assert fuse(DENSE, LEXICAL, FusionConfig(method="weighted", alpha=0.2)) == weighted_fusion(DENSE, LEXICAL, 0.2)
    assert FusionConfig() == FusionConfig(method=DEFAULT_FUSION, alpha=DEFAULT_ALPHA)
    assert fuse(DENSE, LEXICAL) == fuse(DENSE, LEXICAL, FusionConfig())


def test_options_alpha_implies_weighted_and_bad_values_are_one_line_errors():
    assert FusionConfig.from_options(None, 0.7) == FusionConfig(method=FusionMethod.WEIGHTED, alpha=0.7)
    assert FusionConfig.from_options("rrf", None).method is FusionMethod.RRF
    assert FusionConfig.from_options(None, None) == FusionConfig()
    with pytest.raises(ConfigError, match=r"alpha must be between 0 and 1.*1.5"):
        FusionConfig.from_options(None, 1.5)
    with pytest.raises(ConfigError, match="alpha must be between 0 and 1"):
        FusionConfig(alpha=-0.1)
    with pytest.raises(ConfigError, match="drop alpha or use fusion 'weighted'"):
        FusionConfig.from_options("rrf", 0.5)
    with pytest.raises(ConfigError, match="unknown fusion 'max'; valid values are: rrf, weighted"):
        FusionConfig.from_options("max", None)


def test_unknown_mode_lists_the_modes():
    assert parse_mode("Lexical") is SearchMode.LEXICAL
    with pytest.raises(ConfigError, match="unknown mode 'sparse'; valid values are: dense, lexical, hybrid"):
        parse_mode("sparse")
