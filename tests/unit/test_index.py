"""Top-k through an HNSW graph: recall against exact scoring, exact filtering, refill, and the
model answering through it for every kind of user."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.serving.index import AnnSettings, ExactTopK, GraphTopK, make_top_k
from recommender.serving.model import RecommenderModel
from recommender.snapshot import load_snapshot

from .helpers import block_events, publish_window

GRAPH = AnnSettings(threshold=1000)


def als_like(items, factors=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, factors)).astype(np.float32)
    y = centres[rng.integers(0, 50, items)] + 0.6 * rng.standard_normal((items, factors))
    y *= rng.lognormal(0, 0.5, items)[:, None]
    users = centres[rng.integers(0, 50, (300, 2))].sum(axis=1)
    return y.astype(np.float32), users.astype(np.float32)


@pytest.fixture(scope="module")
def catalogue():
    items, users = als_like(20_000)
    return items, users, GraphTopK(items, GRAPH), ExactTopK(items)


def test_graph_recall_at_10_against_exact_scoring(catalogue):
    _, users, graph, exact = catalogue
    none = np.zeros(0, np.int64)
    recall = np.mean(
        [len(set(graph.top(u, 10, none)[0]) & set(exact.top(u, 10, none)[0])) / 10 for u in users]
    )
    assert recall >= 0.95


def test_banned_items_never_come_back_and_n_always_does(catalogue):
    """A user's seen items lie among their best-scored ones: 200 of their top 1,000 are banned,
    so the graph must look past them."""
    _, users, graph, exact = catalogue
    rng = np.random.default_rng(1)
    overlap = []
    for user in users[:50]:
        banned = rng.choice(exact.top(user, 1000, np.zeros(0, np.int64))[0], 200, replace=False)
        cols, scores = graph.top(user, 20, banned)
        assert len(cols) == 20 and not set(cols) & set(banned)
        assert list(scores) == sorted(scores, reverse=True)
        overlap.append(len(set(cols) & set(exact.top(user, 20, banned)[0])) / 20)
    assert np.mean(overlap) >= 0.95


@pytest.mark.parametrize("count", [3, 40, 5000])  # pairwise filtering, and np.isin beyond it
def test_a_few_or_many_banned_items_repeated_never_come_back(catalogue, count):
    _, users, graph, exact = catalogue
    best = exact.top(users[0], count, np.zeros(0, np.int64))[0]
    banned = np.concatenate((best, best[: count // 2]))  # seen and also excluded
    cols, _ = graph.top(users[0], 10, banned)
    assert len(cols) == 10 and not set(cols.tolist()) & set(best.tolist())


def test_banning_most_of_the_catalogue_falls_back_to_exact_scoring(catalogue):
    items, users, graph, _ = catalogue
    banned = np.arange(items.shape[0] - 15)  # 15 items left
    cols, _ = graph.top(users[1], 20, banned)
    assert sorted(cols) == list(range(items.shape[0] - 15, items.shape[0]))


def test_small_catalogues_and_exact_stay_exact():
    items, _ = als_like(2000)
    assert not make_top_k(items, AnnSettings(threshold=50_000)).approximate
    assert not make_top_k(items, AnnSettings(threshold=100, exact=True)).approximate
    assert not make_top_k(items, None).approximate
    assert make_top_k(items, AnnSettings(threshold=100)).approximate


def test_the_model_answers_every_kind_of_user_through_the_graph(tmp_path):
    """Personalised, fold-in and anonymous users, paging and exclusions work as exactly."""
    events = block_events(groups=4, users_per=40, items_per=400)
    path = publish_window(tmp_path, 1, events, factors=8)
    exact = RecommenderModel(load_snapshot(path))
    graph = RecommenderModel(load_snapshot(path), ann=AnnSettings(threshold=1000))
    assert graph.top_k.approximate and not exact.top_k.approximate

    def items(answer):
        return [s.item for s in answer.items]

    for user, kwargs in [
        ("g1u4", {}),
        ("g2u7", {"offset": 5}),
        ("g0u0", {"exclude": ["g0i1", "g0i2"]}),
        ("newcomer", {"fresh": [("g3i5", 1.0), ("g3i9", 2.0)]}),
    ]:
        a, b = graph.recommend(user, 10, **kwargs), exact.recommend(user, 10, **kwargs)
        assert a.source == b.source and len(items(a)) == 10
        assert len(set(items(a)) & set(items(b))) >= 8
        assert not set(items(a)) & {"g0i1", "g0i2"} or user != "g0u0"
        seen = {i for i, _ in graph.seen_items(user)}
        assert not seen & set(items(a))
    anonymous = graph.answer(graph.query_for_items(["g1i3", "g1i4"], 10))
    assert anonymous.source == "fold-in" and len(anonymous.items) == 10


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 400),
    st.floats(0.0, 1.0),
    st.floats(0.0, 0.2),
    st.integers(0, 420),
    st.integers(0, 2**32 - 1),
)
def test_select_top_is_the_best_n_finite_scores_best_first(size, dense, banned, n, seed):
    """Dense or sparse (mostly zeros, as an item-item family's: its own path), with banned
    (-inf) entries and ties."""
    from recommender.serving.index import select_top

    rng = np.random.default_rng(seed)
    scores = np.where(rng.random(size) < dense, rng.integers(-3, 6, size) / 2, 0.0)
    scores[rng.random(size) < banned] = -np.inf
    scores = scores.astype(np.float32)
    top = select_top(scores, n)
    finite = np.sort(scores[np.isfinite(scores)])[::-1]
    expected = finite[: min(n, scores.size)]
    np.testing.assert_array_equal(scores[top], expected)
    assert len(set(top.tolist())) == top.size
