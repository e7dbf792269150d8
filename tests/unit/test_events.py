"""Parsing: the wire format, every reject reason, and generated garbage."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.events import REJECT_REASONS, format_event, parse_values


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
        b"u:i:0": "bad_weight",
        b"u:i:-2": "bad_weight",
        b"u:i:nan": "bad_weight",
        b"u:i:inf": "bad_weight",
        b"u:i:1e-300": "bad_weight",
        b"u:i:1e31": "bad_weight",
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
