"""Ranking metrics against hand-computed examples."""

import math

import pytest

from recommender.evaluation.metrics import evaluate_lists, user_scores


def test_hand_computed_example():
    # ranked list 10, 20, 30, 40, 50; relevant {20, 50, 99}; k = 5
    s = user_scores([10, 20, 30, 40, 50], {20, 50, 99}, 5)
    assert s.precision == pytest.approx(2 / 5)
    assert s.recall == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert s.ndcg == pytest.approx(dcg / idcg)
    assert s.map == pytest.approx((1 / 2 + 2 / 5) / 3)
    assert s.hit_rate == 1.0


def test_perfect_and_empty_lists():
    perfect = user_scores([1, 2, 3], {1, 2}, 3)
    assert perfect.ndcg == pytest.approx(1.0) and perfect.map == pytest.approx(1.0)
    assert perfect.recall == 1.0 and perfect.precision == pytest.approx(2 / 3)
    nothing = user_scores([], {1}, 10)
    assert (nothing.precision, nothing.recall, nothing.ndcg, nothing.map) == (0, 0, 0, 0)
    with pytest.raises(ValueError):
        user_scores([1], set(), 1)


def test_k_cuts_the_list():
    s = user_scores([5, 6, 7], {7}, 2)
    assert s.hit_rate == 0.0 and s.recall == 0.0
    s = user_scores([5, 6, 7], {7}, 3)
    assert s.hit_rate == 1.0 and s.ndcg == pytest.approx(1 / math.log2(4))


def test_averages_skip_users_without_truth_and_count_coverage():
    recs = {0: [1, 2], 1: [1, 3], 2: [4]}
    truth = {0: {2}, 1: {9}, 2: set()}
    result = evaluate_lists(recs, truth, [1, 2], n_items=10)
    assert result[2]["users"] == 2
    assert result[2]["hit_rate"] == pytest.approx(0.5)
    assert result[1]["hit_rate"] == 0.0
    assert result[1]["coverage"] == pytest.approx(1 / 10)  # only item 1 in both top-1 lists
    assert result[2]["coverage"] == pytest.approx(3 / 10)
