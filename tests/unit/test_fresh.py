"""Fresh events: bounds, LRU, coverage by a newer snapshot."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.events import format_event, parse_values
from recommender.serving.fresh import FreshEvents


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
    assert store.stats().dropped_by_reason == {"user_cap": 1}


def test_lru_bound_on_users_drops_the_least_recently_active():
    store = FreshEvents(max_users=2)
    add(store, [("a", "1"), ("b", "1")])
    add(store, [("a", "2")], start=2)  # a is now the most recent
    add(store, [("c", "1")], start=3)
    assert store.events("b") == [] and store.events("a") and store.events("c")
    assert store.stats().evicted_users == 1


def test_the_memory_budget_drops_least_recently_active_users_and_counts_why():
    store = FreshEvents(max_bytes=256 << 10, max_per_user=50)
    for k in range(200):  # 200 users x 50 events: ~300 kB estimated, over the budget
        add(store, [(f"user{k}", f"i{j}") for j in range(50)], start=k * 50)
    stats = store.stats()
    assert stats.bytes <= stats.max_bytes
    assert stats.evicted_users > 0 and stats.dropped_by_reason["memory"] == 50 * stats.evicted_users
    assert store.events("user0") == []  # the least recently active went first
    assert len(store.events("user199")) == 50
    assert stats.users + stats.evicted_users == 200
    assert stats.events == 50 * stats.users


def test_memory_is_given_back_after_a_snapshot_covers_the_events():
    store = FreshEvents()
    add(store, [(f"u{k % 500}", f"i{k}") for k in range(50_000)])
    big = store.stats().bytes
    assert store.drop_covered({0: 50_000}) == 50_000
    assert store.stats().bytes < big / 4
    assert store.stats().users == 0 and store.events("u1") == []


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


def test_a_lost_partition_drops_its_events_only():
    store = FreshEvents()
    add(store, [("a", "1"), ("b", "2")], partition=0)
    add(store, [("a", "3")], partition=1)
    assert store.drop_partition(0) == 2
    assert store.events("a") == [("3", 1.0)] and store.events("b") == []
    assert store.stats().dropped_by_reason == {"lost_log": 2}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 8), st.integers(0, 5), st.integers(0, 1)), min_size=1, max_size=80
    ),
    st.integers(1, 6),
    st.integers(0, 80),
)
def test_store_matches_a_plain_model_of_per_user_lists(events, cap, covered_below):
    """Against a reference model: per user, the newest ``cap`` events in order; a snapshot
    covering offsets below a point drops exactly those."""
    store = FreshEvents(max_per_user=cap)
    reference: dict[str, list] = {}
    for k in range(0, len(events), 7):  # batches of 7
        chunk = events[k : k + 7]
        batch = parse_values([format_event(f"u{u}", f"i{i}") for u, i, _ in chunk])
        parts = np.array([p for _, _, p in chunk], np.int64)
        offsets = np.arange(k, k + len(chunk), dtype=np.int64)
        store.add(batch, parts, offsets)
        for (u, i, p), o in zip(chunk, offsets.tolist(), strict=True):
            reference.setdefault(f"u{u}", []).append((f"i{i}", p, o))
    for user, kept in reference.items():
        assert store.events(user) == [(i, 1.0) for i, _, _ in kept[-cap:]]
    store.drop_covered({0: covered_below, 1: covered_below})
    for user, kept in reference.items():
        expected = [(i, 1.0) for i, _, o in kept[-cap:] if o >= covered_below]
        assert store.events(user) == expected
    assert store.stats().events == sum(len(store.events(u)) for u in reference)
