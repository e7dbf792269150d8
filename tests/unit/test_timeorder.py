"""A bulk load sorted by an item key says no time (the anime sets, published in file order,
taught the sequence family their sort); a bulk load in time order, planted sessions (a real,
strongly directed order) and a live stream keep theirs."""

from __future__ import annotations

import numpy as np

from recommender.events import parse_values
from recommender.synthetic import SessionModel
from recommender.timeorder import check_order
from recommender.tuning.validation import split
from recommender.window import InteractionWindow


def _window(users, items, ts) -> InteractionWindow:
    window = InteractionWindow(100_000)
    values = [f"u{u}:{i}".encode() for u, i in zip(users, items, strict=True)]
    window.append(
        parse_values(values),
        timestamps_ms=np.asarray(ts, np.int64),
        partitions=np.zeros(len(values), np.int16),
        offsets=np.arange(len(values), dtype=np.int64),
    )
    return window


def _histories(rng, users=300, length=12, items=500):
    """Each user's items, drawn at random, in the order they came."""
    return [rng.choice(items, size=length, replace=False) for _ in range(users)]


def test_a_bulk_load_sorted_by_an_item_key_says_no_time_and_is_validated_on_a_shuffle():
    rng = np.random.default_rng(1)
    histories = _histories(rng)
    users = np.repeat(np.arange(len(histories)), 12)
    key = rng.permutation(500)  # a hidden key (the anime files' original ids)
    items = np.concatenate([h[np.argsort(key[h])] for h in histories])  # by user, then key
    ts = 1_700_000_000_000 + np.arange(users.size) // 20  # published at 20 a millisecond
    window = _window(users, items, ts)
    events = window.events()
    assert window.order_check is not None and not window.order_check.says_time
    assert window.order_check.consistent_share == 1.0
    assert not events.timed
    truth = split(events, fraction=0.25).truth.tocoo()
    # the validation items are not each user's last by the key (what the sort would hold out)
    top = sum(
        key[int(events.item_ids[i])] >= np.sort(key[histories[int(events.user_ids[u][1:])]])[-3]
        for u, i in zip(truth.row, truth.col, strict=True)
    )
    assert top < 0.6 * truth.nnz
    matrix = window.matrix()
    sequences = matrix.sequences
    assert sequences is not None
    ascending = [
        bool(np.all(np.diff([key[int(matrix.item_ids[c])] for c in sequences.items[a:b]]) > 0))
        for a, b in zip(sequences.indptr[:-1], sequences.indptr[1:], strict=True)
    ]
    assert sum(ascending) < 0.2 * len(ascending)  # the training order is the shuffle too


def test_a_bulk_load_in_time_order_and_a_live_stream_keep_their_order():
    rng = np.random.default_rng(2)
    histories = _histories(rng)
    users = np.repeat(np.arange(len(histories)), 12)
    items = np.concatenate(histories)  # each user's items in the order they came
    bulk = 1_700_000_000_000 + np.arange(users.size) // 20
    check = _window(users, items, bulk).order_check
    assert check is None  # nothing trained yet
    window = _window(users, items, bulk)
    assert window.events().timed and window.order_check.bulk  # type: ignore[union-attr]
    # a live stream sorted by id for a stretch: people are seconds apart, so it is time
    live = 1_700_000_000_000 + np.arange(users.size) * 3_000
    sorted_items = np.concatenate([np.sort(h) for h in histories])
    window = _window(users, sorted_items, live)
    assert window.events().timed
    assert window.order_check is not None and not window.order_check.bulk


def test_planted_sessions_published_at_once_keep_their_order():
    """Walks along fixed successors follow each pair the same way nearly always (99.4 %), but
    not always: their order is real."""
    sessions = SessionModel(items=300)
    _, walks = sessions.draw(600, 20, np.random.default_rng(4))
    values = sessions.values(walks)
    parsed = [v.decode().split(":") for v in values]
    users = np.array([int(u[1:]) for u, _ in parsed])
    items = np.array([int(i[1:]) for _, i in parsed])
    window = _window(users, items, 1_700_000_000_000 + np.arange(users.size) // 20)
    assert window.events().timed
    check = window.order_check
    assert check is not None and check.bulk and 0.95 < check.consistent_share < 1.0


def test_too_few_events_say_nothing():
    check = check_order(np.zeros(3, np.int64), np.arange(3), np.zeros(3, np.int64), np.arange(3))
    assert check.says_time and check.median_gap_ms is None
