"""The sequence family: a planted order is learnt, the newest event counts at once, unseen
transitions fall back to co-occurrence; and the per-user sequences it learns from."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.models import MAX_RECENT, History, TrainingData
from recommender.models.sequence import SequenceFamily, sequences_from_events, successor_rules

N_ITEMS = 12
CYCLE = 10  # items 0..9 form a cycle 0 -> 1 -> ... -> 9 -> 0; items 10, 11 only co-occur


def cycle_window(users: int = 60) -> TrainingData:
    """Each user walks 6 steps along the cycle from their own start, then likes item 10 or 11
    (which nothing ever follows: no successor to learn)."""
    rng = np.random.default_rng(3)
    user_list, item_list = [], []
    for user in range(users):
        start = int(rng.integers(CYCLE))
        walk = [(start + step) % CYCLE for step in range(6)] + [10 + user % 2]
        user_list += [user] * len(walk)
        item_list += walk
    u, i = np.array(user_list), np.array(item_list)
    matrix = sp.csr_matrix((np.ones(u.size, np.float32), (u, i)), shape=(users, N_ITEMS))
    return TrainingData(matrix, sequences_from_events(users, u, i, np.arange(u.size)))


def history(recent, *, extra=(), weights=None) -> History:
    cols = sorted({*recent, *extra})
    w = np.ones(len(cols), np.float32) if weights is None else np.asarray(weights, np.float32)
    return History(np.array(cols, np.int64), w, np.array(recent, np.int64))


def best_unseen(model, h: History, n: int = 1) -> list[int]:
    scores = model.score([h])[0]
    scores[h.cols] = -np.inf
    return np.argsort(-scores, kind="stable")[:n].tolist()


def test_the_planted_next_item_ranks_first():
    model = SequenceFamily().fit(cycle_window(), {})
    for last in range(CYCLE):
        assert best_unseen(model, history([(last - 1) % CYCLE, last])) == [(last + 1) % CYCLE]


def test_a_fresh_event_changes_the_answer_at_once():
    before, after = history([2, 3]), history([2, 3, 7])  # the newest event ends History.recent
    first_order = SequenceFamily().fit(cycle_window(), {"sequence_steps": 1, "sequence_decay": 0.5})
    assert best_unseen(first_order, before) == [4]
    assert best_unseen(first_order, after) == [8]
    default = SequenceFamily().fit(cycle_window(), {})
    gain = default.score([after])[0] - default.score([before])[0]
    assert int(np.argmax(gain)) == 8  # the fresh item's successor gains most


def test_older_recent_items_count_less_by_the_decay():
    model = SequenceFamily().fit(cycle_window(), {"sequence_decay": 0.5, "sequence_steps": 1})
    assert best_unseen(model, history([3, 7]), 2) == [8, 4]


def test_a_recent_item_the_history_now_dislikes_takes_no_part():
    model = SequenceFamily().fit(cycle_window(), {"sequence_steps": 1})
    h = history([2, 6], weights=[1.0, -1.0])  # item 6 liked, then disliked (summed < 0)
    top = best_unseen(model, h)
    assert top == [3]


def test_unseen_transitions_fall_back_to_co_occurrence():
    # Nothing ever follows item 11, but it co-occurs with cycle items.
    h = history([11])
    without = SequenceFamily().fit(cycle_window(), {"sequence_fallback": 0.0})
    assert np.all(without.score([h])[0] == 0)
    model = SequenceFamily().fit(cycle_window(), {})
    scores = model.score([h])[0]
    assert scores[:CYCLE].max() > 0 and scores[10] == 0  # 10 and 11 never co-occur


def test_without_order_it_is_co_occurrence():
    data = cycle_window()
    model = SequenceFamily().fit(TrainingData(data.user_items, _no_order(data)), {})
    h = History(np.array([3], np.int64), np.ones(1, np.float32))  # no recent: order unknown
    assert all(0 <= c < N_ITEMS for c in best_unseen(model, h, 3))
    assert model.score([h])[0].max() > 0


def _no_order(data: TrainingData):
    from recommender.models import Sequences

    return Sequences.empty(data.shape[0])


def test_successor_rules_weigh_later_steps_by_one_over_the_gap():
    data = TrainingData(
        sp.csr_matrix((1, 3), dtype=np.float32),
        sequences_from_events(1, np.zeros(3, np.int64), np.array([0, 1, 2]), np.arange(3)),
    )
    rules = successor_rules(data.sequences, 3, steps=2, k=10).toarray()
    # 0 -> 1 (gap 1) and 0 -> 2 (gap 2): 1 and 1/2, normalised to 2/3 and 1/3.
    np.testing.assert_allclose(rules[0], [0.0, 2 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(rules[1], [0.0, 0.0, 1.0], rtol=1e-6)
    assert rules[2].sum() == 0


def test_sequences_keep_each_users_newest_likes_in_time_order():
    users = np.array([1, 0, 1, 1, 0])
    items = np.array([5, 6, 7, 8, 9])
    times = np.array([30, 20, 10, 20, 10])
    seq = sequences_from_events(3, users, items, times)
    assert seq.of(0).tolist() == [9, 6]
    assert seq.of(1).tolist() == [7, 8, 5]
    assert seq.of(2).tolist() == []
    many = sequences_from_events(
        1, np.zeros(80, np.int64), np.arange(80), np.arange(80)[::-1].copy()
    )
    assert many.of(0).tolist() == list(range(MAX_RECENT - 1, -1, -1))
