"""The sliding window: count and time eviction, duplicates, restart bookkeeping, memory."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.window import MAX_NEWEST_WEIGHT, InteractionWindow

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


def test_window_holds_the_newest_events_by_time_whatever_the_partition_read_order():
    """A backlog of 4 partitions read one after the other (as a broker may deliver them) must not
    leave the last partition read in the window: the newest events by time are kept."""
    events = {p: [(f"p{p}u{k}", f"i{k % 7}") for k in range(50)] for p in range(4)}
    stamps = {p: np.arange(50, dtype=np.int64) * 4 + p for p in range(4)}  # interleaved in time
    by_partition = InteractionWindow(40)
    for p in range(4):
        append_events(by_partition, events[p], partition=p, timestamps=stamps[p])
    evenly = InteractionWindow(40)
    for lo in range(0, 50, 5):
        for p in range(4):
            append_events(
                evenly,
                events[p][lo : lo + 5],
                partition=p,
                start_offset=lo,
                timestamps=stamps[p][lo : lo + 5],
            )
    a, b = by_partition.matrix(), evenly.matrix()
    assert dense(a) == dense(b)
    assert {u[:2] for u in a.user_ids} == {"p0", "p1", "p2", "p3"}
    assert a.partition_starts == b.partition_starts == {0: 40, 1: 40, 2: 40, 3: 40}


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 25),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40)), min_size=1, max_size=60),
    st.randoms(use_true_random=False),
)
def test_window_content_does_not_depend_on_fetch_order(capacity, stream, rnd):
    """Per-partition order is Kafka's; how partitions interleave is not: any interleaving (and a
    restart that re-reads from the window start) gives the same window."""
    per_partition: dict[int, list] = {}
    for k, (p, t) in enumerate(stream):
        per_partition.setdefault(p, []).append((f"u{k % 5}", f"i{k % 3}", t))

    def feed(order):
        window = InteractionWindow(capacity)
        cursor = dict.fromkeys(per_partition, 0)
        for p in order:
            k = cursor[p]
            user, item, t = per_partition[p][k]
            append_events(window, [(user, item)], partition=p, start_offset=k, timestamps=[t])
            cursor[p] += 1
        return window

    order = [p for p, events in per_partition.items() for _ in events]
    shuffled = order[:]
    rnd.shuffle(shuffled)
    first, second = feed(order), feed(shuffled)
    assert dense(first.matrix()) == dense(second.matrix())
    assert first.matrix().partition_starts == second.matrix().partition_starts


def test_dropping_a_lost_partition_forgets_its_events():
    window = InteractionWindow(10)
    append_events(window, [("u", "a"), ("u", "b")], partition=0)
    append_events(window, [("v", "a")], partition=1, start_offset=0)
    assert window.drop_partition(0) == 2
    assert dense(window.matrix()) == {("v", "a"): 1.0}
    assert window.matrix().partition_starts == {1: 0}


def test_holdout_is_the_events_a_serving_model_has_not_seen():
    window = InteractionWindow(100)
    append_events(window, [("u", f"i{k}") for k in range(10)], partition=0)
    append_events(window, [("v", f"i{k}") for k in range(6)], partition=1)
    m = window.matrix(holdout_from={0: 8, 1: 4}, max_holdout=100)
    held = sorted(zip(m.holdout_users.tolist(), m.holdout_items.tolist(), strict=True))
    named = sorted((m.user_ids[u], m.item_ids[i]) for u, i in held)
    assert named == [("u", "i8"), ("u", "i9"), ("v", "i4"), ("v", "i5")]
    assert m.train_items is not None and m.train_items.sum() == 12
    newest = window.matrix(holdout_from={0: 8, 1: 4}, max_holdout=1)
    assert newest.holdout_users.size == 1


def test_weights_of_a_pair_are_capped_for_training():
    window = InteractionWindow(10)
    append_events(window, [("u", "a", 1e30), ("u", "a", 1e30), ("v", "a", 2.0)])
    assert dense(window.matrix()) == {("u", "a"): 1000.0, ("v", "a"): 2.0}


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


def test_half_life_halves_weights_per_half_life_around_a_mean_of_one():
    """Decay moves the emphasis to recent events without shrinking the evidence: the mean
    weight stays 1 (decaying everything below 1 cut recall 3 to 5 times in EVALUATION.md)."""
    window = InteractionWindow(100, half_life_ms=1000)
    append_events(window, [("u", "a"), ("v", "b"), ("w", "c")], timestamps=[0, 1000, 2000])
    m = window.matrix()
    weights = dense(m)
    newest, middle, oldest = weights[("w", "c")], weights[("v", "b")], weights[("u", "a")]
    assert newest == pytest.approx(2 * middle) and middle == pytest.approx(2 * oldest)
    assert np.mean(list(weights.values())) == pytest.approx(1.0)
    assert m.newest_weight == pytest.approx(newest)  # what the server scales fresh events by
    assert sorted(window.events().weights.tolist()) == pytest.approx(sorted(weights.values()))
    assert InteractionWindow(100).matrix().newest_weight == 1.0


def test_a_window_many_half_lives_long_caps_the_newest_weight():
    window = InteractionWindow(5000, half_life_ms=1)
    old = [(f"u{k}", "a") for k in range(4000)]  # uncapped, the one new event would weigh 4001
    append_events(window, [*old, ("v", "b")], timestamps=[0] * 4000 + [10_000_000])
    m = window.matrix()
    assert m.newest_weight == MAX_NEWEST_WEIGHT
    assert np.isfinite(m.user_items.data).all() and m.user_items.data.max() == MAX_NEWEST_WEIGHT
