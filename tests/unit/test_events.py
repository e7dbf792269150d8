"""Parsing: the wire format, every reject reason, and generated garbage."""

import tracemalloc

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.events import (
    MAX_PAIR_WEIGHT,
    MAX_WEIGHT_BYTES,
    REJECT_REASONS,
    clip_pair_weights,
    format_event,
    max_event_bytes,
    parse_values,
)


def test_plain_and_weighted_events_are_parsed():
    batch = parse_values([b"alice:book-1", b"bob:book-2:2.5", "zoë:café".encode()])
    assert batch.users() == ["alice", "bob", "zoë"]
    assert batch.items() == ["book-1", "book-2", "café"]
    assert batch.weights.tolist() == [1.0, 2.5, 1.0]
    assert batch.rejected.size == 0


def test_distinct_ids_are_decoded_once():
    batch = parse_values([b"u1:i1", b"u1:i2", b"u2:i1", b"u1:i1"])
    assert sorted(batch.user_keys) == ["u1", "u2"]
    assert sorted(batch.item_keys) == ["i1", "i2"]
    assert batch.users() == ["u1", "u1", "u2", "u1"]
    assert batch.items() == ["i1", "i2", "i1", "i1"]


def test_each_kind_of_malformed_event_is_rejected_with_its_reason():
    cases = {
        b"": "empty",
        None: "empty",
        b"no-separator": "missing_field",
        b"a:b:1:extra": "extra_field",
        b"a\n:b": "control_char",
        b":item": "empty_id",
        b"user:": "empty_id",
        b"u" * 257 + b":i": "id_too_long",
        b"\xff\xfe:item": "not_utf8",
        b"u:\xc3(": "not_utf8",
        b"u:i:heavy": "bad_weight",
        b"u:i:1e-31": "bad_weight",
        b"u:i:-1e31": "bad_weight",
        b"u:i:nan": "bad_weight",
        b"u:i:inf": "bad_weight",
        b"u:i:1e-300": "bad_weight",
        b"u:i:1e31": "bad_weight",
        b"u:i:" + b"1" * (MAX_WEIGHT_BYTES + 1): "bad_weight",
        b"u:i:" + b"9" * MAX_WEIGHT_BYTES: "bad_weight",
        b"u:i:": "bad_weight",
        b"bomb:i1:" + b"1" * 1_000_000: "too_long",
        b"u" * 600: "too_long",
    }
    values = [b"good:one", *cases, b"good:two"]
    batch = parse_values(values)
    assert batch.users() == ["good", "good"]
    assert batch.items() == ["one", "two"]
    got = {values[i]: batch.reason_of(k) for k, i in enumerate(batch.rejected.tolist())}
    assert got == cases
    assert sum(batch.reject_counts().values()) == len(cases)


def test_id_of_exactly_the_limit_is_accepted():
    batch = parse_values([b"u" * 256 + b":" + b"i" * 256], max_id_bytes=256)
    assert len(batch) == 1


def test_empty_batch():
    batch = parse_values([])
    assert len(batch) == 0 and batch.rejected.size == 0


ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=":\x7f"),
    min_size=1,
    max_size=20,
)
weights = st.one_of(st.none(), st.floats(min_value=1e-30, max_value=1e30, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(ids, ids, weights), max_size=50))
def test_valid_events_round_trip(events):
    batch = parse_values([format_event(u, i, w) for u, i, w in events])
    assert batch.rejected.size == 0
    assert batch.users() == [u for u, _, _ in events]
    assert batch.items() == [i for _, i, _ in events]
    expected = [1.0 if w is None else w for _, _, w in events]
    np.testing.assert_allclose(batch.weights, np.asarray(expected, dtype=np.float32))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=40)), max_size=60))
def test_garbage_never_crashes_and_every_record_is_accounted_for(values):
    batch = parse_values(values)
    assert sorted([*batch.accepted.tolist(), *batch.rejected.tolist()]) == list(range(len(values)))
    assert set(batch.reject_counts()) <= set(REJECT_REASONS)
    # Whatever was accepted really is user:item[:weight] with those exact ids.
    for k, index in enumerate(batch.accepted.tolist()):
        raw = values[index]
        user, item = batch.user_keys[batch.user_index[k]], batch.item_keys[batch.item_index[k]]
        assert raw.startswith(f"{user}:{item}".encode())
        assert ":" not in user and ":" not in item and user and item


def test_a_weight_of_exactly_the_longest_length_is_accepted():
    batch = parse_values([b"u:i:" + b"0" * (MAX_WEIGHT_BYTES - 3) + b"2.5"])
    assert batch.weights.tolist() == [2.5]


def test_the_longest_valid_event_is_accepted_and_one_byte_more_is_too_long():
    longest = b"u" * 256 + b":" + b"i" * 256 + b":" + b"0" * (MAX_WEIGHT_BYTES - 1) + b"1"
    assert len(longest) == max_event_bytes(256)
    assert len(parse_values([longest])) == 1
    assert parse_values([longest + b"1"]).reason_of(0) == "too_long"


def test_ids_of_every_length_bucket_are_told_apart():
    ids = [b"a" * k for k in (1, 3, 4, 5, 15, 16, 17, 63, 64, 65, 255, 256)]
    batch = parse_values([u + b":" + u for u in ids] * 2)
    assert batch.users() == [u.decode() for u in ids] * 2
    assert sorted(batch.item_keys) == sorted(u.decode() for u in ids)


def test_pair_weights_are_capped_for_training():
    clipped = clip_pair_weights([1e30, np.inf, 2.0, -1e30])
    assert clipped.tolist() == [MAX_PAIR_WEIGHT, MAX_PAIR_WEIGHT, 2.0, -MAX_PAIR_WEIGHT]


def _peak_bytes(values):
    tracemalloc.start()
    try:
        parse_values(values)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


#: Adversarial records: tiny ones, the longest ids, long weights, and records far too long.
adversarial = st.one_of(
    st.just(b"u:i"),
    st.binary(max_size=8),
    st.builds(lambda k: b"u" * k + b":i", st.integers(1, 300)),
    st.builds(lambda k: b"u:i:" + b"1" * k, st.integers(1, 2000)),
    st.builds(lambda k: b"bomb:i:" + b"9" * k, st.integers(600, 200_000)),
    st.builds(lambda k: b"x" * k, st.integers(1, 5000)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(adversarial, min_size=1, max_size=400), st.integers(0, 2000))
def test_parser_memory_is_linear_in_the_bytes_it_accepts_to_look_at(records, padding):
    """Peak memory is bounded by the bytes of records short enough to be events, plus a constant
    per record: a huge record or one long field cannot blow it up (a 1 MB weight once made the
    parser allocate gigabytes)."""
    values = records + [b"u:i"] * padding
    limit = max_event_bytes()
    examined = sum(len(v) for v in values if len(v) <= limit)
    assert _peak_bytes(values) <= 64 * examined + 600 * len(values) + (1 << 20)


def test_negative_weights_are_dislikes_and_zero_is_seen_without_preference():
    batch = parse_values([b"alice:book:-1", b"alice:film:-2.5", b"bob:book:1e-30", b"bob:x:0"])
    assert batch.weights.tolist() == [-1.0, -2.5, np.float32(1e-30), 0.0]


def test_a_rating_scale_turns_ratings_into_likes_dislikes_and_neutral_seen_events():
    from recommender.ratings import RatingScale

    scale = RatingScale.parse("1..5")
    batch = parse_values(
        [b"u:a:5", b"u:b:4", b"u:c:3", b"u:d:2", b"u:e:1", b"u:f", b"u:g:6", b"u:h:0", b"u:i:x"],
        ratings=scale,
    )
    assert batch.weights.tolist() == [2.0, 1.0, 0.0, -1.0, -2.0, 1.0]
    assert [batch.reason_of(k) for k in range(3)] == ["bad_rating", "bad_rating", "bad_weight"]
