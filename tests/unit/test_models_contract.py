"""The contract of recommender.models.base, checked for every family on small windows whose
right answer is known: two disjoint blocks of users and items."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.errors import TrainingAborted, TrainingError
from recommender.models import History, ModelFamily, Sequences, TrainingData
from recommender.models.ease import EaseFamily
from recommender.models.knn import KnnFamily
from recommender.models.rp3beta import Rp3BetaFamily
from recommender.models.sequence import SequenceFamily, sequences_from_events

N_USERS, N_ITEMS, BLOCK = 40, 20, 10

FAMILIES: dict[str, tuple[ModelFamily, dict]] = {
    "ease": (EaseFamily(), {"ease_lambda": 5.0}),
    "knn-cosine": (KnnFamily(), {"knn_weighting": "cosine", "knn_neighbours": 8}),
    "knn-bm25": (KnnFamily(), {"knn_weighting": "bm25", "knn_neighbours": 8}),
    "rp3beta": (Rp3BetaFamily(), {"rp3beta_neighbours": 8}),
    "sequence": (SequenceFamily(), {"sequence_similar": 8}),
}


def block_window() -> TrainingData:
    """Users 0-19 like 6 of items 0-9, users 20-39 six of items 10-19 (each user a different
    six, in a different order)."""
    users, items = [], []
    for user in range(N_USERS):
        block = BLOCK * (user // (N_USERS // 2))
        for step in range(6):
            users.append(user)
            items.append(block + (user * 3 + step * 7) % BLOCK)
    users_, items_ = np.array(users), np.array(items)
    matrix = sp.csr_matrix(
        (np.ones(users_.size, np.float32), (users_, items_)), shape=(N_USERS, N_ITEMS)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    sequences = sequences_from_events(N_USERS, users_, items_, np.arange(users_.size))
    return TrainingData(matrix, sequences)


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def fitted(request):
    family, params = FAMILIES[request.param]
    return family, family.fit(block_window(), params)


def history(likes=(), dislikes=(), neutral=(), recent=None) -> History:
    cols = [*likes, *dislikes, *neutral]
    weights = [1.0] * len(likes) + [-1.0] * len(dislikes) + [0.0] * len(neutral)
    return History(
        np.array(cols, np.int64),
        np.array(weights, np.float32),
        np.array(list(likes) if recent is None else recent, np.int64),
    )


def unseen_top(scores: np.ndarray, seen, n: int) -> list[int]:
    scores = scores.copy()
    scores[list(seen)] = -np.inf
    return np.argsort(-scores, kind="stable")[:n].tolist()


def test_a_user_of_a_block_gets_that_blocks_items(fitted):
    _, model = fitted
    for likes in ([0, 3], [12, 15, 17], [9]):
        scores = model.score([history(likes)])[0]
        block = likes[0] // BLOCK
        top = unseen_top(scores, likes, 3)
        assert all(item // BLOCK == block for item in top), (likes, top)


def test_scores_are_a_fresh_writable_float32_array(fitted):
    _, model = fitted
    first = model.score([history([0, 1]), history([])])
    assert first.shape == (2, N_ITEMS) and first.dtype == np.float32
    assert np.all(first[1] == first[1][0])  # an empty history: one shared score
    first[:] = 99.0
    again = model.score([history([0, 1])])
    assert not np.any(again == 99.0)


def test_a_dislike_never_raises_a_score_and_lowers_the_items_it_resembles(fitted):
    _, model = fitted
    before = model.score([history([0, 1])])[0]
    after = model.score([history([0, 1], dislikes=[2])])[0]
    assert np.all(after <= before + 1e-6)
    resembling = model.similar_items(2, 3)[0]
    assert np.all(after[resembling] < before[resembling])


def test_a_neutral_event_changes_nothing(fitted):
    _, model = fitted
    before = model.score([history([0, 1])])
    after = model.score([history([0, 1], neutral=[2, 14])])
    np.testing.assert_array_equal(before, after)


def test_similar_items_of_a_block_item_are_block_items_best_first(fitted):
    _, model = fitted
    for col in (4, 13):
        cols, values = model.similar_items(col, 5)
        assert 0 < cols.size <= 5 and col not in cols
        assert all(c // BLOCK == col // BLOCK for c in cols)
        assert np.all(np.diff(values) <= 0)


def test_explain_names_the_obvious_contributor_and_sums_to_the_score(fitted):
    _, model = fitted
    h = history([0, 15], recent=[15, 0])  # the block-A item is also the newest
    target = unseen_top(model.score([history([0])])[0], [0, 15], 1)[0]  # reached from item 0
    score, cols, contributions = model.explain(h, target, 2)
    assert cols[0] == 0 and contributions[0] > 0
    assert np.all(np.diff(contributions) <= 0)
    assert score == pytest.approx(float(model.score([h])[0, target]), rel=1e-4, abs=1e-6)


def test_a_batch_scores_as_its_histories_one_by_one(fitted):
    _, model = fitted
    batch = [history([0, 1]), history([12], dislikes=[3]), history([]), history([7, 19])]
    together = model.score(batch)
    apart = np.vstack([model.score([h]) for h in batch])
    np.testing.assert_allclose(together, apart, rtol=1e-6, atol=1e-7)


def test_arrays_round_trip_exactly(fitted):
    family, model = fitted
    arrays = model.arrays()
    assert set(arrays) == set(model.ARRAYS)
    for name, spec in model.ARRAYS.items():
        assert arrays[name].dtype == np.dtype(spec.dtype) and arrays[name].ndim == spec.ndim
    assert model.check_arrays(arrays, N_USERS, N_ITEMS) == []
    frozen = {}
    for name, array in arrays.items():  # as memory maps would be: read-only
        frozen[name] = array.copy()
        frozen[name].flags.writeable = False
    again = type(model).from_arrays(frozen, model.params, N_ITEMS)
    assert again.family == family.name
    batch = [history([0, 1], dislikes=[5]), history([14], recent=[14])]
    np.testing.assert_array_equal(model.score(batch), again.score(batch))
    assert model.nbytes == sum(a.nbytes for a in arrays.values())


def crafted(arrays: dict, how: str) -> dict:
    out = {name: array.copy() for name, array in arrays.items()}
    floats = next(n for n, a in out.items() if a.dtype == np.float32 and a.size)
    if how == "nan":
        out[floats].reshape(-1)[0] = np.nan
    elif how == "huge":
        out[floats].reshape(-1)[0] = 1e30
    elif how == "shape":
        out[floats] = out[floats][:-1]
    elif how == "dtype":
        out[floats] = out[floats].astype(np.float64)
    elif how == "missing":
        del out[floats]
    elif how == "index":
        indices = next(n for n in out if n.endswith("_indices") and out[n].size)
        out[indices][0] = N_ITEMS
    return out


@pytest.mark.parametrize("how", ["nan", "huge", "shape", "dtype", "missing", "index"])
def test_check_arrays_refuses_a_crafted_snapshot(fitted, how):
    _, model = fitted
    if how == "index" and not any(n.endswith("_indices") for n in model.ARRAYS):
        pytest.skip("dense weights: no indices")
    problems = model.check_arrays(crafted(model.arrays(), how), N_USERS, N_ITEMS)
    assert problems and all(isinstance(p, str) for p in problems)


def test_check_arrays_refuses_another_catalogue_size(fitted):
    _, model = fitted
    assert model.check_arrays(model.arrays(), N_USERS, N_ITEMS + 1)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_random_histories_never_give_non_finite_scores(data):
    for family, params in FAMILIES.values():
        model = _fitted_once(family.name, params)
        size = data.draw(st.integers(0, N_ITEMS))
        cols = data.draw(st.permutations(range(N_ITEMS)))[:size]
        weights = data.draw(
            st.lists(
                st.floats(-1000, 1000, allow_nan=False, width=32), min_size=size, max_size=size
            )
        )
        recent = data.draw(st.lists(st.integers(0, N_ITEMS - 1), max_size=50))
        h = History(
            np.array(cols, np.int64), np.array(weights, np.float32), np.array(recent, np.int64)
        )
        scores = model.score([h, h])
        assert scores.shape == (2, N_ITEMS) and np.all(np.isfinite(scores))
        if size:
            score, _, contributions = model.explain(h, int(cols[0]), 3)
            assert np.isfinite(score) and np.all(np.isfinite(contributions))


_CACHE: dict = {}


def _fitted_once(name, params):
    key = (name, tuple(sorted(params.items())))
    if key not in _CACHE:
        family = next(f for f, p in FAMILIES.values() if f.name == name and p == params)
        _CACHE[key] = family.fit(block_window(), params)
    return _CACHE[key]


@pytest.mark.parametrize("key", sorted(FAMILIES))
def test_settings_are_validated_with_clear_errors(key):
    family, params = FAMILIES[key]
    defaults = family.defaults()
    assert family.validate({}) == defaults
    assert all(name.startswith(family.name + "_") for name in defaults)
    assert family.validate(params) == {**defaults, **params}
    with pytest.raises(ValueError, match="unknown setting"):
        family.validate({family.name + "_typo": 1})
    for name, value in defaults.items():
        bad = "many" if isinstance(value, int | float) and not isinstance(value, bool) else 3.5
        with pytest.raises(ValueError, match=name):
            family.validate({name: bad})
        if isinstance(value, int | float) and not isinstance(value, bool):
            with pytest.raises(ValueError, match=name):
                family.validate({name: -1e9})
            with pytest.raises(ValueError, match=name):
                family.validate({name: float("nan")})


@pytest.mark.parametrize("key", sorted(FAMILIES))
def test_suggestions_are_prefixed_and_valid(key):
    family, _ = FAMILIES[key]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(10):
        suggested = family.suggest(study.ask())
        assert suggested and all(name.startswith(family.name + "_") for name in suggested)
        family.validate(suggested)


@pytest.mark.parametrize("key", sorted(FAMILIES))
def test_cost_is_positive_and_grows_with_the_window(key):
    family, params = FAMILIES[key]
    small = family.cost(1_000, 1_000, 20_000, params)
    large = family.cost(100_000, 20_000, 2_000_000, params)
    assert 0 < small.bytes < large.bytes and 0 < small.seconds < large.seconds


def test_eases_cost_covers_its_dense_matrix():
    assert EaseFamily().cost(100_000, 30_000, 5_000_000, {}).bytes >= 4 * 30_000**2


@pytest.mark.parametrize("key", sorted(FAMILIES))
def test_a_window_without_likes_cannot_be_learnt(key):
    family, params = FAMILIES[key]
    matrix = sp.csr_matrix(
        (np.array([-1.0, 0.0], np.float32), ([0, 1], [0, 1])), shape=(2, 3), dtype=np.float32
    )
    with pytest.raises(TrainingError):
        family.fit(TrainingData(matrix, Sequences.empty(2)), params)


@pytest.mark.parametrize("key", sorted(FAMILIES))
def test_a_fit_stops_when_asked(key):
    family, params = FAMILIES[key]
    with pytest.raises(TrainingAborted):
        family.fit(block_window(), params, should_stop=lambda: True)


@pytest.mark.parametrize("key", sorted(FAMILIES))
def test_dislikes_and_neutral_events_in_the_window_teach_no_resemblance(key):
    """Items 0 and 10 are from different blocks; a user who dislikes one and likes the other,
    or rates one neutral, must not make them similar."""
    family, params = FAMILIES[key]
    data = block_window()
    matrix = data.user_items.tolil()
    for user in range(5):
        matrix[user, 10] = -1.0
        matrix[user + 5, 11] = 0.0
    model = family.fit(TrainingData(matrix.tocsr(), data.sequences), params)
    scores = model.score([history([0])])[0]
    assert scores[10] <= scores[5] and scores[11] <= scores[5]
    assert max(scores[10], scores[11]) <= float(model.score([history([])])[0, 10])
