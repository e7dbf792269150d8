"""Features of items, users and candidates (the ranking stage's inputs): each against a
brute-force computation over the events, and the schema's defaults for what is unknown."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.features import (
    CategoryIndex,
    FeatureSchema,
    attribute_matrix,
    attribute_names,
    category_match,
    item_information,
    item_stats,
    user_stats,
)
from recommender.items import Catalog

DAY = 86_400_000

events = st.lists(
    st.tuples(
        st.integers(0, 5),  # user
        st.integers(0, 7),  # item
        st.integers(0, 30 * DAY),  # time
        st.sampled_from([1.0, 2.5, 0.0, -1.0]),  # weight: likes, a neutral, a dislike
    ),
    max_size=60,
)


def columns(rows):
    users, items, times, weights = (np.array(c) for c in zip(*rows, strict=True)) if rows else (
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    )  # fmt: skip
    return users.astype(np.int64), items.astype(np.int64), times.astype(np.int64), weights


@given(events)
@settings(max_examples=150, deadline=None)
def test_item_stats_equal_a_brute_force_over_the_events(rows):
    _, items, times, weights = columns(rows)
    stats = item_stats(items, times, weights, 8)
    now = 40 * DAY
    matrix = stats.matrix(np.arange(8), now)
    cut = times.max() - (times.max() - times.min()) * 0.25 if rows else 0
    for item in range(8):
        mine = [(t, w) for _, i, t, w in rows if i == item]
        likes = [t for t, w in mine if w > 0]
        recent = [t for t in likes if t >= cut]
        total = sum(w > 0 for _, _, _, w in rows)
        assert matrix[item, 0] == pytest.approx(len(likes) * 10_000 / max(total, 1), rel=1e-5)
        if likes:
            assert matrix[item, 1] == pytest.approx(len(recent) / (len(likes) * 0.25), rel=1e-5)
        else:
            assert np.isnan(matrix[item, 1])
        if mine:
            assert matrix[item, 2] == pytest.approx((now - min(t for t, _ in mine)) / DAY, rel=1e-5)
        else:
            assert np.isnan(matrix[item, 2])


@given(events, st.lists(st.integers(-1, 6), min_size=1, max_size=8))
@settings(max_examples=150, deadline=None)
def test_user_stats_equal_a_brute_force_and_fresh_events_count_at_once(rows, asked):
    users, _, times, weights = columns(rows)
    stats = user_stats(users, times, weights, 7)
    now = 40 * DAY
    rows_asked = np.array(asked, np.int64)
    plain = stats.matrix(rows_asked, now)
    fresh = stats.matrix(
        rows_asked,
        now,
        fresh_events=np.full(len(asked), 2),
        fresh_liked=np.full(len(asked), 1),
        fresh_last_ms=np.full(len(asked), 39 * DAY),
    )
    for k, user in enumerate(asked):
        mine = [(t, w) for u, _, t, w in rows if u == user and user >= 0]
        likes = sum(w > 0 for _, w in mine)
        counts = [sum(1 for u, *_ in rows if u == v) for v in range(7)]
        mean = np.mean([c for c in counts if c]) if any(counts) else 1.0
        assert plain[k, 0] == pytest.approx(len(mine) / mean, rel=1e-5)
        assert fresh[k, 0] == pytest.approx((len(mine) + 2) / mean, rel=1e-5)
        assert fresh[k, 1] == pytest.approx((likes + 1) / (len(mine) + 2))
        assert fresh[k, 2] == pytest.approx(1.0)  # the fresh event, a day before now
        if mine:
            last, first = max(t for t, _ in mine), min(t for t, _ in mine)
            assert plain[k, 1] == pytest.approx(likes / len(mine))
            assert plain[k, 2] == pytest.approx((now - last) / DAY, rel=1e-5)
            assert plain[k, 3] == pytest.approx((last - first) / DAY, rel=1e-5, abs=1e-6)
        else:
            assert np.isnan(plain[k, 1:]).all()


def test_category_match_is_the_share_of_liked_items_sharing_a_category():
    # items 0,1: shoes; 2: shoes+socks; 3: socks; 4: no category
    item_categories = sp.csr_matrix(np.array([[1, 0], [1, 0], [1, 1], [0, 1], [0, 0]], np.float32))
    histories = [np.array([0, 3]), np.array([], np.int64)]
    candidates = np.array([[1, 2, 4], [1, 2, 3]])
    match = category_match(histories, candidates, item_categories)
    assert match[0].tolist()[:2] == [0.5, 1.0] and np.isnan(match[0, 2])
    assert np.isnan(match[1]).all()


def test_attributes_are_the_most_frequent_names_and_nan_where_an_item_has_none():
    records = {"a": {"price": 3.0, "year": 1990.0}, "b": {"price": 5.0}, "c": {}}
    names = attribute_names(records.values(), limit=1)
    assert names == ["price"]
    assert attribute_names(records.values()) == ["price", "year"]
    matrix = attribute_matrix(["a", "b", "c", "unknown"], records.get, ["price", "year"])
    assert matrix[0].tolist() == [3.0, 1990.0] and matrix[1, 0] == 5.0
    assert np.isnan(matrix[1, 1]) and np.isnan(matrix[2:]).all()


def test_the_schema_fills_unknown_values_with_training_medians_and_round_trips():
    training = np.array([[1.0, np.nan], [3.0, 4.0], [np.inf, 6.0]], np.float32)
    schema = FeatureSchema.with_medians(["item.popularity", "price"], training)
    assert schema.defaults == (2.0, 5.0)
    filled = schema.fill(np.array([[np.nan, 1.0], [7.0, np.inf]], np.float32))
    assert filled.tolist() == [[2.0, 1.0], [7.0, 5.0]]
    assert FeatureSchema.from_dict(schema.to_dict()) == schema
    for bad in (
        {"names": ["a", "a"], "defaults": [0, 0]},
        {"names": ["a b"], "defaults": [0]},
        {"names": ["a"], "defaults": [float("nan")]},
        {"names": ["a"], "defaults": [True]},
        {"names": ["a"] * 200, "defaults": [0] * 200},
        {"names": "a", "defaults": [0]},
    ):
        with pytest.raises(ValueError):
            FeatureSchema.from_dict(bad)


def test_item_information_is_what_the_newest_records_say_of_a_models_items():
    catalog = Catalog()
    catalog.update(
        [
            b'{"id": "a", "categories": ["shoes"], "attributes": {"price": 3, "size": 40}}',
            b'{"id": "b", "categories": ["shoes", "socks"], "attributes": {"price": "cheap"}}',
            b'{"id": "a", "categories": ["boots"], "attributes": {"price": 4, "size": 41},'
            b' "labels": {"brand": "acme", "in_stock": true}}',
            b'{"id": "c", "attributes": {"price": 7}, "labels": {"brand": "acme", "size": 3.0}}',
        ]
    )
    info = item_information(["a", "b", "c", "unknown"], catalog.record)
    assert info.attribute_names == ("price", "size")  # most common first
    assert info.attributes is not None and info.categories is not None
    np.testing.assert_array_equal(info.attributes[0], [4, 41])  # the newest record of a
    assert np.isnan(info.attributes[1]).all()  # a bad attribute is left out, the record applies
    assert info.attributes[2, 0] == 7 and np.isnan(info.attributes[3]).all()
    categories = info.categories.toarray()
    assert categories.shape == (4, 3) and categories.sum(axis=1).tolist() == [1, 2, 0, 0]
    # labels as name=value pairs: a and c share brand=acme; numbers as a query writes them
    assert info.labels is not None
    labels = info.labels.toarray()
    assert labels.shape == (4, 3) and labels.sum(axis=1).tolist() == [2, 0, 2, 0]
    assert labels[0] @ labels[2] == 1  # brand=acme
    # a trained ranker's attribute names, in its order, whatever is most common now
    fixed = item_information(["a", "c"], catalog.record, names=["size", "weight"])
    assert fixed.attribute_names == ("size", "weight") and fixed.attributes is not None
    assert fixed.attributes[0, 0] == 41 and np.isnan(fixed.attributes[:, 1]).all()
    assert item_information(["x"], Catalog().record).empty


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 25).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.sampled_from([1, 3, 40, 600]),
            # distinct liked columns, some more than a byte's worth of bits
            st.lists(
                st.lists(st.integers(0, n - 1), max_size=12, unique=True), min_size=1, max_size=4
            ),
            st.integers(0, 2**16),
        )
    )
)
def test_the_category_index_matches_a_brute_force_count_whatever_the_categories(case):
    n_items, n_categories, liked, seed = case
    rng = np.random.default_rng(seed)
    dense = rng.random((n_items, n_categories)) < min(1.0, 2.0 / n_categories)
    dense[rng.random(n_items) < 0.2] = False  # some items without a category
    index = CategoryIndex(sp.csr_matrix(dense.astype(np.float32)))
    histories = [np.array(h, np.int64) for h in liked]
    candidates = rng.integers(0, n_items, (len(histories), 6))
    match = index.match(histories, list(candidates)).reshape(candidates.shape)
    for row, history in enumerate(histories):
        for k, candidate in enumerate(candidates[row]):
            if history.size == 0 or not dense[candidate].any():
                assert np.isnan(match[row, k])
            else:
                shared = [bool((dense[h] & dense[candidate]).any()) for h in history]
                assert match[row, k] == pytest.approx(np.mean(shared), abs=1e-6)
