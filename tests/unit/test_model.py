"""Scoring a loaded snapshot: personalised answers, filtering, popularity fallback."""

import numpy as np
import pytest

from recommender.serving.model import RecommenderModel
from recommender.snapshot import load_snapshot

from .helpers import block_events, publish_window


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = publish_window(tmp_path_factory.mktemp("m"), 1, block_events() + [("g0u0", "g0i3")] * 5)
    return RecommenderModel(load_snapshot(path))


def test_known_user_gets_the_item_their_block_has_and_they_lack(model):
    answer = model.recommend("g1u4", 1)
    assert answer.source == "personalised" and not answer.fallback
    assert [s.item for s in answer.items] == ["g1i4"]


def test_seen_items_are_filtered_unless_asked_not_to(model):
    seen = {item for item, _ in model.seen_items("g0u2")}
    assert len(seen) == 9
    filtered = [s.item for s in model.recommend("g0u2", 20).items]
    assert not seen & set(filtered) and len(filtered) == 20 - 9
    everything = [s.item for s in model.recommend("g0u2", 20, filter_seen=False).items]
    assert len(everything) == 20 and seen <= set(everything)


def test_exclude_list_and_scores_descend(model):
    answer = model.recommend("g0u2", 5, filter_seen=False, exclude=["g0i0", "g0i1", "unknown"])
    items = [s.item for s in answer.items]
    assert "g0i0" not in items and "g0i1" not in items and len(items) == 5
    scores = [s.score for s in answer.items]
    assert scores == sorted(scores, reverse=True)


def test_unknown_user_falls_back_to_the_most_popular(model):
    answer = model.recommend("stranger", 3)
    assert answer.source == "popular" and answer.fallback
    assert answer.items[0].item == "g0i3"  # 18 events + 5 repeats: the most popular item
    assert [s.score for s in answer.items] == sorted((s.score for s in answer.items), reverse=True)


def test_asking_for_more_than_exists_returns_what_there_is(model):
    assert len(model.recommend("g0u1", 1000, filter_seen=False).items) == model.n_items
    assert len(model.popular(1000)) == model.n_items


def test_paging_with_offset_continues_the_same_ranking(model):
    whole = [s.item for s in model.recommend("g0u2", 8, filter_seen=False).items]
    page2 = [s.item for s in model.recommend("g0u2", 4, filter_seen=False, offset=4).items]
    assert page2 == whole[4:8]
    assert [s.item for s in model.popular(2, offset=1)] == [s.item for s in model.popular(3)][1:]


def test_fold_in_of_a_known_users_window_reproduces_their_ranking(model):
    row = model.user_index["g1u4"]
    history = model.history("g1u4", ())
    folded = model.fold_in(history.cols, history.weights)
    trained = model.user_factors[row]
    rank_folded = np.argsort(-model.score(folded))[:10]
    rank_trained = np.argsort(-model.score(trained))[:10]
    assert set(rank_folded.tolist()) == set(rank_trained.tolist())


def test_a_new_user_with_fresh_events_is_personalised_by_fold_in(model):
    fresh = [("g1i0", 1.0), ("g1i1", 1.0), ("g1i2", 1.0)]
    answer = model.recommend("brand-new", 5, fresh=fresh)
    assert answer.source == "fold-in"
    items = [s.item for s in answer.items]
    assert all(i.startswith("g1i") for i in items), items
    assert not {"g1i0", "g1i1", "g1i2"} & set(items)  # fresh events count as seen


def test_fresh_events_of_a_known_user_are_filtered_and_unknown_items_ignored(model):
    before = [s.item for s in model.recommend("g0u2", 3).items]
    fresh = [(before[0], 1.0), ("item-born-after-the-snapshot", 1.0)]
    answer = model.recommend("g0u2", 3, fresh=fresh)
    assert answer.source == "fold-in"
    assert before[0] not in [s.item for s in answer.items]


def test_anonymous_session_from_a_list_of_items(model):
    query = model.query_for_items(["g0i1", "g0i2", "nope"], 5)
    answer = model.answer(query)
    assert answer.source == "fold-in"
    assert all(s.item.startswith("g0i") for s in answer.items)
    assert {"g0i1", "g0i2"}.isdisjoint(s.item for s in answer.items)
    assert model.answer(model.query_for_items(["nope"], 3)).source == "popular"


@pytest.mark.parametrize("size", [1, 5, 12])
def test_batched_scores_equal_single_scores(model, size):
    vectors = np.asarray(model.user_factors[:size])
    batch = model.score_many(vectors)
    assert batch.shape == (size, model.n_items) and batch.flags.c_contiguous
    for k in range(size):
        np.testing.assert_allclose(batch[k], model.score(vectors[k]), rtol=1e-5, atol=1e-6)


def test_similar_items_and_users_come_from_the_same_block(model):
    similar = model.similar_items("g1i3", 5)
    assert similar is not None and "g1i3" not in [s.item for s in similar]
    assert all(s.item.startswith("g1i") for s in similar)
    assert all(-1.0001 <= s.score <= 1.0001 for s in similar)
    users = model.similar_users("g0u5", 5)
    assert users is not None and all(s.item.startswith("g0u") and s.item != "g0u5" for s in users)
    assert model.similar_items("nope", 3) is None and model.similar_users("nope", 3) is None


def test_explanation_contributions_add_up_to_the_fold_in_score(model):
    score, because = model.explain("g0u2", "g0i2", 20)
    history = model.history("g0u2", ())
    folded = model.fold_in(history.cols, history.weights)
    assert score == pytest.approx(float(model.score(folded)[model.item_index["g0i2"]]), rel=1e-3)
    assert len(because) == 9 and all(c.item.startswith("g0i") for c in because)
    assert model.explain("g0u2", "nope", 3) is None
    assert model.explain("stranger", "g0i2", 3) is None


def test_fold_in_of_a_heavy_user_is_bounded_and_keeps_fresh_items(model, monkeypatch):
    import recommender.models.foldin as foldin_module

    monkeypatch.setattr(foldin_module, "MAX_FOLD_IN_ITEMS", 3)
    used = []
    original = model.folding.system

    def spy(cols, weights):
        used.append(cols.tolist())
        return original(cols, weights)

    monkeypatch.setattr(model.folding, "system", spy)
    fresh_col = model.item_index["g1i0"]
    cols = np.array([model.item_index[f"g0i{k}"] for k in range(6)] + [fresh_col])
    weights = np.array([5, 1, 4, 1, 1, 3, 1], dtype=np.float32)
    model.fold_in(cols, weights, priority=np.array([fresh_col]))
    assert sorted(used[-1]) == sorted([fresh_col, cols[0], cols[2]])  # fresh + 2 heaviest


def test_recency_weighted_popular_differs_from_plain_counts(tmp_path):
    from recommender.serving.model import RecommenderModel
    from recommender.snapshot import load_snapshot

    # publish_window stamps events 0, 1, 2, ... ms: "new" is bought last, "old" more often.
    events = [("u1", "old"), ("u2", "old"), ("u3", "old"), ("u4", "new"), ("u5", "new")]
    model = RecommenderModel(load_snapshot(publish_window(tmp_path, 1, events, factors=2)))
    assert [s.item for s in model.popular(2)] == ["old", "new"]
    assert [s.item for s in model.popular(2, recent=True)] == ["new", "old"]


@pytest.mark.parametrize("alpha", [1.0, 4.0])
def test_fold_in_is_implicits_own_user_solve_with_likes_dislikes_and_neutral(tmp_path, alpha):
    """Contract: the server's fold-in computes exactly what implicit's ALS user step computes
    for the same weights, including negative (disliked) and zero (neutral) ones."""
    import scipy.sparse as sp

    from recommender.models.als_training import AlsParams, _als

    params = AlsParams(factors=4, iterations=8, alpha=alpha, regularization=0.1)
    path = publish_window(tmp_path, 1, block_events(), params=params)
    model = RecommenderModel(load_snapshot(path))
    cols = model.columns(["g0i1", "g0i2", "g1i3", "g0i5", "g1i7"])
    weights = np.array([2.0, 1.0, -1.0, 0.0, -2.5], dtype=np.float32)
    ours = model.fold_in(cols, weights)
    als = _als(params)
    als.item_factors = np.array(model.item_factors, dtype=np.float32)
    row = sp.csr_matrix((weights, (np.zeros(cols.size, int), cols)), shape=(1, model.n_items))
    theirs = np.asarray(als.recalculate_user(0, row)).ravel()
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)


def test_a_disliked_item_is_never_recommended_even_unfiltered(model):
    top = model.recommend("g1u4", 1).items[0].item  # the item the block says they would like
    answer = model.recommend("g1u4", 20, filter_seen=False, fresh=[(top, -1.0)])
    assert top not in {s.item for s in answer.items}
    assert answer.source == "fold-in"


def test_a_user_who_only_dislikes_gets_popular_items_without_them(model):
    disliked = model.popular(2)
    fresh = [(s.item, -1.0) for s in disliked]
    answer = model.recommend("newcomer", 5, fresh=fresh)
    assert answer.source == "popular"
    assert not {s.item for s in disliked} & {s.item for s in answer.items}


def test_fresh_events_weigh_what_the_windows_newest_events_weigh(tmp_path):
    """With a half-life the window's newest events weigh newest_weight (>1); an event newer
    still must not count for less in the fold-in than in the next retrain."""
    events = block_events()
    plain = RecommenderModel(load_snapshot(publish_window(tmp_path / "a", 1, events)))
    scaled = RecommenderModel(
        load_snapshot(
            publish_window(tmp_path / "b", 1, events, manifest={"window": {"newest_weight": 3.0}})
        )
    )
    assert scaled.fresh_weight == 3.0 and plain.fresh_weight == 1.0
    fresh = [("g1i0", 1.0), ("g0i1", 0.5)]
    expected = plain.recommend("newcomer", 5, fresh=[(i, w * 3.0) for i, w in fresh])
    answer = scaled.recommend("newcomer", 5, fresh=fresh)
    assert [s.item for s in answer.items] == [s.item for s in expected.items]
    assert [s.score for s in answer.items] == pytest.approx([s.score for s in expected.items])
    assert answer.items != plain.recommend("newcomer", 5, fresh=fresh).items


def test_a_known_users_history_without_fresh_events_is_the_summed_one(model):
    """The fast path (the window's row as it is) gives what summing the window would give."""
    histories = model.histories
    for row in range(model.n_users):
        fast = histories.of(row)
        summed = histories.of(row, [("not-an-item", 1.0)])  # the general path, nothing added
        np.testing.assert_array_equal(fast.cols, summed.cols)
        np.testing.assert_array_equal(fast.weights, summed.weights)
        np.testing.assert_array_equal(fast.recent, summed.recent)
        assert fast.row == summed.row == row and not fast.fresh and not summed.fresh
