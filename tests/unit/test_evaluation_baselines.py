"""The evaluation's baselines with explicit ratings: likes teach, dislikes and neutrals do not."""

import csv

import numpy as np
import pytest

from recommender.evaluation.data import read_interactions, to_matrix, with_rating_scale
from recommender.evaluation.models import ItemKnn, Popularity
from recommender.evaluation.offline import evaluate_model
from recommender.evaluation.splits import per_user_holdout
from recommender.ratings import RatingScale

GROUPS, PER_GROUP, FLOPS = 4, 10, 8


def planted_ratings(path, users=120, seed=0):
    """Users in four taste groups give 5 stars to six of their group's ten items (rated last,
    so the holdout asks for one of them), 1 star to four of eight flops that nobody likes, and
    3 stars (neutral) to a few items of other groups."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        group = u % GROUPS
        flops = GROUPS * PER_GROUP + rng.choice(FLOPS, 4, replace=False)
        neutral = [i for i in rng.choice(GROUPS * PER_GROUP, 4, replace=False)
                   if i // PER_GROUP != group]  # fmt: skip
        liked = group * PER_GROUP + rng.choice(PER_GROUP, 6, replace=False)
        rated = [(i, 1) for i in flops] + [(i, 3) for i in neutral] + [(i, 5) for i in liked]
        rows += [(f"u{u}", f"i{i}", r, t) for t, (i, r) in enumerate(rated)]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user", "item", "rating", "timestamp"])
        writer.writerows(rows)
    return path


@pytest.fixture
def rated_split(tmp_path):
    data = read_interactions(planted_ratings(tmp_path / "ratings.csv"))
    return per_user_holdout(with_rating_scale(data, RatingScale.parse("1..5")), fraction=0.2)


@pytest.mark.parametrize("kind", ["bm25", "cosine"])
def test_item_knn_learns_from_likes_and_beats_popularity_with_ratings(rated_split, kind):
    """The held-out item is always one of the user's group: co-liked items lead to it, while
    popularity cannot tell the groups apart. Dislikes used as weights broke BM25 down to
    popularity's level (NDCG@5 0.10 vs 0.11; 0.0 without the neutral ratings)."""
    popularity = evaluate_model(Popularity(), rated_split, [5], binary=False).metrics[5]
    knn = evaluate_model(ItemKnn(kind), rated_split, [5], binary=False).metrics[5]
    assert popularity["ndcg"] < 0.2
    assert knn["ndcg"] > 3 * popularity["ndcg"]
    assert knn["hit_rate"] > 0.9


@pytest.mark.parametrize("model", [Popularity(), ItemKnn("bm25"), ItemKnn("cosine")])
def test_no_baseline_recommends_what_everyone_disliked_or_what_the_user_rated(rated_split, model):
    train = to_matrix(rated_split.train)
    model.fit(train)
    users = np.arange(train.shape[0], dtype=np.int64)
    lists = model.recommend(users, 10)
    ids = rated_split.train.item_ids
    flop_ids = {ids.index(f"i{GROUPS * PER_GROUP + f}") for f in range(FLOPS)}
    for user, row in zip(users.tolist(), lists.tolist(), strict=True):
        shown = {i for i in row if i >= 0}
        assert not shown & flop_ids
        assert not shown & set(train[user].indices.tolist())  # rated, even neutrally: seen
