"""The seed chat API's choice of an item to ask about (pure: a loaded model, no server)."""

import pytest

import recommender.server.seed_api as seed_api
from recommender.model import RecommenderModel
from recommender.server.seed_api import ChatState
from recommender.snapshot import load_snapshot

from .helpers import block_events, publish_window


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return RecommenderModel(
        load_snapshot(publish_window(tmp_path_factory.mktemp("m"), 1, block_events()))
    )


def test_asks_about_unrated_items_and_not_twice_in_a_row(model):
    chat = ChatState(seed=1)
    asked = [chat.pick_unrated(model, "newcomer", [], lambda item: True) for _ in range(10)]
    assert None not in asked and len(set(asked)) == 10  # remembers the last 20 asked


def test_past_the_popular_items_it_asks_from_the_rest_of_the_catalogue(model, monkeypatch):
    monkeypatch.setattr(seed_api, "_POPULAR_POOL", 5)
    rated = [(s.item, 4.0) for s in model.popular(5)]
    chat = ChatState(seed=2)
    pick = chat.pick_unrated(model, "newcomer", rated, lambda item: True)
    assert pick is not None and pick not in {item for item, _ in rated}


def test_nothing_left_to_ask_is_none(model):
    everything = [(item, 4.0) for item in model.item_ids]
    assert ChatState().pick_unrated(model, "completist", everything, lambda item: True) is None
