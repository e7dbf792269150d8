"""ALS behind the family protocol: the same answers as before, through histories."""

import numpy as np
import pytest

from recommender.models import AlsFamily, AlsModel, History, Setting, TrainingData
from recommender.models.als_training import AlsParams
from recommender.models.base import Sequences
from recommender.serving.index import AnnSettings
from recommender.serving.model import RecommenderModel
from recommender.snapshot import load_snapshot

from .helpers import block_events, publish_window

PARAMS = AlsParams(factors=4, iterations=8, regularization=0.05, alpha=1.0)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = publish_window(tmp_path_factory.mktemp("als"), 1, block_events(), params=PARAMS)
    return RecommenderModel(load_snapshot(path))


def test_a_known_user_without_fresh_events_is_scored_with_the_trained_factors(model):
    row = model.user_index["g0u3"]
    history = model.history("g0u3")
    assert history.row == row and not history.fresh
    expected = model.user_factors[row] @ model.item_factors.T
    np.testing.assert_allclose(model.fitted.score([history])[0], expected, rtol=1e-5)


def test_similar_items_are_the_exact_cosine_neighbours_even_with_a_graph(tmp_path):
    path = publish_window(tmp_path, 1, block_events(users_per=40, items_per=30), params=PARAMS)
    snapshot = load_snapshot(path)
    graph = RecommenderModel(snapshot, ann=AnnSettings(threshold=10))
    items = np.asarray(snapshot.arrays["item_factors"], dtype=np.float64)
    cosine = items @ items[3] / (np.linalg.norm(items, axis=1) * np.linalg.norm(items[3]))
    cosine[3] = -np.inf
    expected = np.argsort(-cosine, kind="stable")[:5]
    got = [graph.item_index[s.item] for s in graph.similar_items(graph.item_ids[3], 5)]
    assert got == expected.tolist()


def test_arrays_round_trip_and_crafted_arrays_are_refused(model):
    fitted = model.fitted
    again = AlsModel.from_arrays(fitted.arrays(), fitted.params, fitted.n_items)
    history = model.history("g1u2")
    np.testing.assert_array_equal(again.score([history]), fitted.score([history]))
    bad = dict(fitted.arrays())
    bad["item_factors"] = np.array(bad["item_factors"])
    bad["item_factors"][0, 0] = np.nan
    assert AlsModel.check_arrays(bad, model.n_users, model.n_items)
    assert AlsModel.check_arrays(fitted.arrays(), model.n_users + 1, model.n_items)
    assert not AlsModel.check_arrays(fitted.arrays(), model.n_users, model.n_items)


def test_refit_solves_every_user_again_against_the_same_items(model):
    family = AlsFamily()
    data = TrainingData(model.seen.astype(np.float32), Sequences.empty(model.n_users))
    fitted = family.fit(data, PARAMS.to_dict())
    again = family.refit(fitted, data, PARAMS.to_dict())
    assert again.item_factors is fitted.item_factors
    assert again.user_factors.shape == fitted.user_factors.shape
    assert family.validate({"factors": 9})["factors"] == 9
    with pytest.raises(ValueError):
        family.validate({"factors": 0})
    assert Setting("als", {"factors": 9}) == Setting("als", {"factors": 9})


def test_an_anonymous_history_is_folded_in(model):
    cols = model.columns(["g1i0", "g1i1", "g1i2"])
    history = History(cols, np.ones(3, np.float32), fresh=True)
    top = np.argsort(-model.fitted.score([history])[0])
    assert all(model.item_ids[c].startswith("g1i") for c in top[:5])
