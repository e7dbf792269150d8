"""Fresh events: bounds, LRU, coverage by a newer snapshot."""

import numpy as np

from recommender.events import format_event, parse_values
from recommender.fresh import FreshEvents


def add(store, events, partition=0, start=0):
    batch = parse_values([format_event(*e) for e in events])
    n = len(batch)
    store.add(batch, np.full(n, partition, np.int64), np.arange(start, start + n, dtype=np.int64))


def test_events_are_kept_per_user_in_order():
    store = FreshEvents()
    add(store, [("a", "x"), ("b", "y"), ("a", "z", 2.0)])
    assert store.events("a") == [("x", 1.0), ("z", 2.0)]
    assert store.events("b") == [("y", 1.0)]
    assert store.events("nobody") == []


def test_per_user_cap_keeps_the_newest():
    store = FreshEvents(max_per_user=2)
    add(store, [("a", "1"), ("a", "2"), ("a", "3")])
    assert store.events("a") == [("2", 1.0), ("3", 1.0)]
    assert store.stats().dropped_events == 1


def test_lru_bound_on_users_drops_the_least_recently_active():
    store = FreshEvents(max_users=2)
    add(store, [("a", "1"), ("b", "1")])
    add(store, [("a", "2")], start=2)  # a is now the most recent
    add(store, [("c", "1")], start=3)
    assert store.events("b") == [] and store.events("a") and store.events("c")
    assert store.stats().evicted_users == 1


def test_a_newer_snapshot_drops_exactly_what_it_covers():
    store = FreshEvents()
    add(store, [("a", "1"), ("a", "2"), ("b", "1")], partition=0, start=10)
    add(store, [("a", "3")], partition=1, start=5)
    dropped = store.drop_covered({0: 12, 1: 5})
    assert dropped == 2
    assert store.events("a") == [("3", 1.0)]
    assert store.events("b") == [("1", 1.0)]


def test_event_count_stays_exact_through_caps_evictions_and_drops():
    store = FreshEvents(max_users=2, max_per_user=2)
    add(store, [("a", "1"), ("a", "2"), ("a", "3"), ("b", "1")], start=0)
    add(store, [("c", "1"), ("c", "2")], start=4)  # evicts a
    store.drop_covered({0: 5})  # drops b's event and c's first
    expected = sum(len(store.events(u)) for u in ("a", "b", "c"))
    assert store.stats().events == expected == 1
