"""The sliding window: count and time eviction, duplicates, restart bookkeeping, memory."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.window import InteractionWindow

from .helpers import append_events, dense


def test_repeated_pairs_add_up_their_weights():
    window = InteractionWindow(10)
    append_events(window, [("u", "a"), ("u", "a", 2.5), ("v", "a"), ("u", "b")])
    m = window.matrix()
    assert dense(m) == {("u", "a"): 3.5, ("v", "a"): 1.0, ("u", "b"): 1.0}
    assert m.events == 4
    assert dict(zip(m.item_ids, m.popularity.tolist(), strict=True)) == {"a": 3, "b": 1}


def test_count_window_keeps_only_the_latest_events_across_batches():
    window = InteractionWindow(3)
    append_events(window, [("u1", "a"), ("u2", "b")], start_offset=0)
    append_events(window, [("u3", "c"), ("u4", "d")], start_offset=2)
    m = window.matrix()
    assert dense(m) == {("u2", "b"): 1.0, ("u3", "c"): 1.0, ("u4", "d"): 1.0}
    assert m.user_ids == ["u2", "u3", "u4"]  # users only in evicted events are gone
    assert m.partition_starts == {0: 1}


def test_a_batch_larger_than_the_window_keeps_its_tail():
    window = InteractionWindow(2)
    append_events(window, [("u1", "a"), ("u2", "b"), ("u3", "c")])
    assert dense(window.matrix()) == {("u2", "b"): 1.0, ("u3", "c"): 1.0}


def test_time_window_drops_events_older_than_the_newest_minus_the_age():
    window = InteractionWindow(100, max_age_ms=1000)
    append_events(window, [("u1", "a"), ("u2", "b")], timestamps=[0, 500])
    append_events(window, [("u3", "c")], start_offset=2, timestamps=[1400])
    m = window.matrix()
    assert dense(m) == {("u2", "b"): 1.0, ("u3", "c"): 1.0}
    assert (m.min_timestamp_ms, m.max_timestamp_ms) == (500, 1400)
    assert m.partition_starts == {0: 1}


def test_out_of_order_stragglers_are_masked_too():
    window = InteractionWindow(100, max_age_ms=1000)
    append_events(window, [("u1", "a"), ("u2", "b"), ("u3", "c")], timestamps=[5000, 100, 5200])
    assert dense(window.matrix()) == {("u1", "a"): 1.0, ("u3", "c"): 1.0}


def test_partition_starts_are_the_oldest_offset_per_partition():
    window = InteractionWindow(4)
    append_events(window, [("u", "a"), ("u", "b")], partition=0, start_offset=10)
    append_events(window, [("v", "a"), ("v", "b")], partition=3, start_offset=70)
    append_events(window, [("w", "a")], partition=0, start_offset=12)
    assert window.matrix().partition_starts == {0: 11, 3: 70}


def test_memory_is_at_most_40_bytes_an_event():
    window = InteractionWindow(1_000_000)
    assert window.nbytes / 1_000_000 <= 40


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 30),
    st.lists(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=12), max_size=8),
)
def test_window_equals_the_last_n_events_whatever_the_batching(capacity, batches):
    window = InteractionWindow(capacity)
    everything, offset = [], 0
    for batch in batches:
        events = [(f"u{u}", f"i{i}") for u, i in batch]
        append_events(window, events, start_offset=offset)
        offset += len(events)
        everything += events
    expected: dict = {}
    for event in everything[-capacity:] if everything else []:
        expected[event] = expected.get(event, 0.0) + 1.0
    assert dense(window.matrix()) == expected
    window.compact_vocabularies(minimum=0, slack=1.0)
    assert dense(window.matrix()) == expected  # compaction changes rows, never content


def test_compaction_bounds_the_vocabulary_on_a_churning_stream():
    window = InteractionWindow(10)
    for k in range(100):
        append_events(window, [(f"user{k}", f"item{k}")], start_offset=k)
    assert len(window.users) == 100
    assert window.compact_vocabularies(minimum=0)
    assert len(window.users) == 10
    append_events(window, [("user99", "item0")], start_offset=100)
    assert ("user99", "item0") in dense(window.matrix())
    assert np.all(window.matrix().popularity >= 1)


def test_recent_popularity_weights_newer_events_more():
    window = InteractionWindow(100)
    # "old" has 3 events at t=0, "new" 2 events at the newest time; span 4000 ms, half-life 1000.
    append_events(
        window,
        [("a", "old"), ("b", "old"), ("c", "old"), ("d", "new"), ("e", "new")],
        timestamps=[0, 0, 0, 4000, 4000],
    )
    m = window.matrix()
    pop = dict(zip(m.item_ids, m.popularity.tolist(), strict=True))
    recent = dict(zip(m.item_ids, m.recent_popularity.tolist(), strict=True))
    assert pop == {"old": 3, "new": 2}
    assert recent["new"] == 2.0
    assert abs(recent["old"] - 3 * 2**-4) < 1e-6
