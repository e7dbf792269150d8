"""The seed chat API's choice of an item to ask about (pure: a loaded model, no server)."""

import pytest

import recommender.server.seed_api as seed_api
from recommender.server.seed_api import ChatState
from recommender.serving.model import RecommenderModel
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


# -- bounded memory ----------------------------------------------------------------------------


def test_registrations_take_fixed_memory_and_remember_the_newest_users():
    from recommender.server.chat_state import Registrations

    registrations = Registrations(64 << 10)  # 4,095 slots a generation
    assert registrations.register("alice") is False
    assert registrations.register("alice") is True
    for k in range(20_000):  # far more users than fit: old generations are dropped
        registrations.register(f"user-{k}")
    assert registrations.register("user-19999") is True  # the newest are remembered
    assert registrations.register("alice") is False  # the oldest are forgotten, not leaked
    recent = [f"user-{k}" for k in range(20_000 - registrations.slots // 4, 20_000)]
    assert all(registrations.register(u) for u in recent)


def _register_in_child(registry, users, out):
    from recommender.server.chat_state import Registrations

    registrations = Registrations(shared=registry)
    out.put([registrations.register(u) for u in users])
    registrations.close()


def test_registrations_in_shared_memory_are_one_set_for_every_process():
    import multiprocessing

    from recommender.server.chat_state import Registrations

    context = multiprocessing.get_context("spawn")
    registry, memory = Registrations.create_shared(1 << 20, context.Lock())
    try:
        mine = Registrations(shared=registry)
        assert mine.register("bob") is False
        out = context.Queue()
        child = context.Process(target=_register_in_child, args=(registry, ["bob", "carol"], out))
        child.start()
        assert out.get(timeout=30) == [True, False]  # bob is known there, carol is new
        child.join(30)
        assert mine.register("carol") is True  # and carol, registered there, is known here
        mine.close()
    finally:
        memory.close()
        memory.unlink()


def test_asked_memory_stays_within_its_budget():
    from recommender.server.chat_state import AskedMemory

    asked = AskedMemory(remember=3, max_bytes=100_000)
    for k in range(10_000):
        asked.add(f"user-{k}", f"item-{k % 7}")
    assert asked.bytes <= 100_000 and 0 < len(asked) < 10_000
    asked.add("user-9999", "a")
    asked.add("user-9999", "b")
    asked.add("user-9999", "c")
    asked.add("user-9999", "d")
    assert asked.recent("user-9999") == {"b", "c", "d"}


def test_a_rating_names_the_chat_answer_only_within_the_attribution_window():
    from recommender.server.chat_state import AnswerMemory

    answers = AnswerMemory(window_s=60.0)
    answers.remember("42", "rec-a", ["i1", "i2"], now=1000.0)
    assert answers.named("42", "i2", now=1059.0) == "rec-a"
    assert answers.named("42", "i3", now=1001.0) is None  # not in that answer
    assert answers.named("42", "i2", now=1061.0) is None  # too old: no longer what it answers
    answers.remember("42", "rec-b", ["i2"], now=1100.0)
    assert answers.named("42", "i2", now=1101.0) == "rec-b"
