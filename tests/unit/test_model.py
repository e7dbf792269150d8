"""Scoring a loaded snapshot: personalised answers, filtering, popularity fallback."""

import pytest

from recommender.model import RecommenderModel
from recommender.snapshot import load_snapshot

from .helpers import block_events, publish_window


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = publish_window(tmp_path_factory.mktemp("m"), 1, block_events() + [("g0u0", "g0i3")] * 5)
    return RecommenderModel(load_snapshot(path))


def test_known_user_gets_the_item_their_block_has_and_they_lack(model):
    answer = model.recommend("g1u4", 1)
    assert answer.source == "personalised" and not answer.fallback
    assert [s.item for s in answer.items] == ["g1i4"]


def test_seen_items_are_filtered_unless_asked_not_to(model):
    seen = set(model.seen_items("g0u2"))
    assert len(seen) == 9
    filtered = [s.item for s in model.recommend("g0u2", 20).items]
    assert not seen & set(filtered) and len(filtered) == 20 - 9
    everything = [s.item for s in model.recommend("g0u2", 20, filter_seen=False).items]
    assert len(everything) == 20 and seen <= set(everything)


def test_exclude_list_and_scores_descend(model):
    answer = model.recommend("g0u2", 5, filter_seen=False, exclude=["g0i0", "g0i1", "unknown"])
    items = [s.item for s in answer.items]
    assert "g0i0" not in items and "g0i1" not in items and len(items) == 5
    scores = [s.score for s in answer.items]
    assert scores == sorted(scores, reverse=True)


def test_unknown_user_falls_back_to_the_most_popular(model):
    answer = model.recommend("stranger", 3)
    assert answer.source == "popular" and answer.fallback
    assert answer.items[0].item == "g0i3"  # 18 events + 5 repeats: the most popular item
    assert [s.score for s in answer.items] == sorted((s.score for s in answer.items), reverse=True)


def test_asking_for_more_than_exists_returns_what_there_is(model):
    assert len(model.recommend("g0u1", 1000, filter_seen=False).items) == model.n_items
    assert len(model.popular(1000)) == model.n_items
