"""The learned ranker on planted data: where an item attribute carries the signal no id model can
see, it beats the first stage beyond the noise; where features carry nothing, it does not. Also:
the candidate table against brute force, and the model's round trip through snapshot arrays."""

import numpy as np
import scipy.sparse as sp

from recommender.features import ItemInformation, attribute_matrix, item_stats, user_stats
from recommender.models import History, Sequences, TrainingData, make_family
from recommender.ranker import Context, LearnedRanker, candidate_table, fit_ranker

DAY = 86_400_000
USERS, ITEMS, GROUPS = 900, 240, 4


def planted(signal: bool, seed: int = 0):
    """Users like items of their taste group. Before the cut uniformly; after it, a quarter of
    the items (``promoted``, an attribute) are six times as likely when ``signal``. Without
    signal the attribute is noise."""
    rng = np.random.default_rng(seed)
    group_of_item = np.arange(ITEMS) % GROUPS
    promoted = (rng.random(ITEMS) < 0.25).astype(np.float64)
    user_group = rng.integers(GROUPS, size=USERS)
    pre_users, pre_items, truth_rows, truth_cols = [], [], [], []
    for user in range(USERS):
        mine = np.flatnonzero(group_of_item == user_group[user])
        before = rng.choice(mine, 15, replace=False)
        rest = np.setdiff1d(mine, before)
        weight = np.where(promoted[rest] > 0, 6.0, 1.0) if signal else np.ones(rest.size)
        after = rng.choice(rest, 3, replace=False, p=weight / weight.sum())
        pre_users += [user] * before.size
        pre_items += before.tolist()
        truth_rows += [user] * after.size
        truth_cols += after.tolist()
    users, items = np.array(pre_users), np.array(pre_items)
    times = rng.integers(0, 30 * DAY, size=users.size)
    truth = sp.csr_matrix(
        (np.ones(len(truth_rows)), (truth_rows, truth_cols)), shape=(USERS, ITEMS)
    )
    return users, items, times, truth, {f"i{k}": {"promoted": promoted[k]} for k in range(ITEMS)}


def table_for(signal: bool, seed: int = 0):
    users, items, times, truth, records = planted(signal, seed)
    weights = np.ones(users.size, np.float32)
    matrix = sp.csr_matrix((weights, (users, items)), shape=(USERS, ITEMS))
    matrix.sum_duplicates()
    family = make_family("ease")
    model = family.fit(
        TrainingData(matrix, Sequences.empty(USERS)), family.validate(family.defaults())
    )
    popularity = np.bincount(items, minlength=ITEMS).astype(np.float32)
    sources = {
        "ease": model.score,
        "popular": lambda hs: np.tile(popularity, (len(hs), 1)),
    }
    histories = [
        History(matrix.indices[matrix.indptr[u] : matrix.indptr[u + 1]].astype(np.int64),
                matrix.data[matrix.indptr[u] : matrix.indptr[u + 1]], row=u)
        for u in range(USERS)
    ]  # fmt: skip
    context = Context(
        items=item_stats(items, times, weights, ITEMS),
        users=user_stats(users, times, weights, USERS),
        now_ms=30 * DAY,
        catalogue=ItemInformation(
            None,
            attribute_matrix([f"i{k}" for k in range(ITEMS)], records.get, ["promoted"]),
            ("promoted",),
        ),
    )
    table = candidate_table(sources, histories, np.arange(USERS), context, per_source=40)
    return table, truth, histories


def test_the_candidate_table_is_each_sources_top_unseen_items_with_their_ranks():
    table, _, histories = table_for(signal=True)
    assert table.names[:4] == ("ease.score", "ease.rank", "popular.score", "popular.rank")
    assert table.names[-1] == "attr.promoted"
    for user in (0, 17, 450):
        rows = np.flatnonzero(table.user == user)
        assert not np.isin(table.col[rows], histories[user].cols).any()  # never a seen item
        assert np.unique(table.col[rows]).size == rows.size  # each candidate once
        ease_rank = table.features[rows, 1]
        best = table.col[rows][np.argsort(ease_rank, kind="stable")[:5]]
        scores = table.features[rows, 0]
        assert set(best) <= set(table.col[rows][scores >= np.sort(scores)[-5]])
        assert ((ease_rank >= 1) & (ease_rank <= 41)).all() and (ease_rank <= 40).sum() == 40


def test_an_attribute_that_carries_the_signal_makes_the_ranker_win_beyond_the_noise():
    table, truth, _ = table_for(signal=True)
    fit = fit_ranker(table, truth, first_stage="ease", objective="lambdarank")
    assert fit.comparison.low > 0, fit.comparison  # beyond the noise
    assert fit.ranker_ndcg > fit.first_stage_ndcg * 1.2
    # the planted effect is linear in the log-odds: the linear blend finds it too
    assert fit.blend_ndcg > fit.first_stage_ndcg * 1.2
    importances = fit.ranker.importances()
    assert "attr.promoted" in list(importances)[:2] and importances["attr.promoted"] > 0.1


def test_features_that_carry_nothing_do_not_make_the_ranker_win():
    table, truth, _ = table_for(signal=False)
    fit = fit_ranker(table, truth, first_stage="ease", objective="lambdarank")
    assert fit.comparison.low <= 0, fit.comparison


def test_the_ranker_round_trips_through_snapshot_arrays_and_explains_its_scores():
    table, truth, _ = table_for(signal=True)
    ranker = fit_ranker(table, truth, first_stage="ease", objective="binary", rounds=30).ranker
    again = LearnedRanker.from_arrays(ranker.arrays(), ranker.describe())
    rows = table.features[:50]
    assert np.array_equal(again.score(rows), ranker.score(rows))
    contributions = again.contributions(rows)
    assert contributions.shape == (50, len(table.names) + 1)
    # SHAP values sum to the raw score (binary: the log-odds)
    raw = again.booster.predict(again.schema.fill(rows.copy()), raw_score=True)
    assert np.allclose(contributions.sum(axis=1), raw, atol=1e-6)
    unknown = rows.copy()
    unknown[:, -1] = np.nan  # an attribute unknown at answering time takes the training median
    filled = rows.copy()
    filled[:, -1] = again.schema.defaults[-1]
    assert np.array_equal(again.score(unknown), again.score(filled))
