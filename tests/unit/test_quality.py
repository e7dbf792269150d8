"""The quality gate decides on evidence: refuses a broken model, abstains on too little data,
credits a model that knows more, and never freezes the service."""

import dataclasses
import threading
import time

import numpy as np
import pytest

from recommender.builder import BuilderConfig, BuilderStats
from recommender.builder.publish import Publisher, RetrainJob
from recommender.models import AlsModel, Setting
from recommender.models.als_training import AlsParams, train_als
from recommender.quality import GateModel, compare_models
from recommender.store import LocalStore
from recommender.synthetic import TasteModel
from recommender.window import InteractionWindow

from .helpers import append_events

TASTE = TasteModel(users=600, items=300, groups=6, in_group=0.9)
GOOD = AlsParams(factors=16, iterations=10, regularization=1.0)


def taste_window(count, seed, window=None, start=0):
    window = InteractionWindow(100_000) if window is None else window
    users, items = TASTE.sample(count, np.random.default_rng(seed))
    append_events(
        window,
        list(zip([f"u{u}" for u in users], [f"i{i}" for i in items], strict=True)),
        start_offset=start,
    )
    return window


def gate_model(matrix, params, *, shuffle=False, train=None):
    train = matrix.train_items if train is None else train
    fitted = train_als(train, params)
    factors = fitted.item_factors
    if shuffle:  # a deliberately broken model: every item gets another item's factors
        factors = factors[np.random.default_rng(0).permutation(factors.shape[0])]
    popularity = np.bincount(train.indices, minlength=train.shape[1])
    als = AlsModel(fitted.user_factors, factors, params.to_dict())
    return GateModel(list(matrix.item_ids), als, popularity)


def judge(candidate, serving, matrix, **kwargs):
    return compare_models(
        candidate,
        serving,
        list(matrix.item_ids),
        matrix.train_items,
        matrix.holdout_users,
        matrix.holdout_items,
        matrix.holdout_weights,
        **{"max_drop": 0.2, **kwargs},
    )


@pytest.fixture(scope="module")
def matrix():
    return taste_window(20_000, 1).matrix(holdout_from={0: 18_000}, max_holdout=2000)


def test_a_model_with_shuffled_item_factors_is_refused(matrix):
    good, broken = gate_model(matrix, GOOD), gate_model(matrix, GOOD, shuffle=True)
    verdict = judge(broken, good, matrix)
    assert verdict.decision == "refuse", verdict.reason
    assert verdict.comparison is not None and verdict.comparison.high < 0
    assert verdict.events >= 300 and verdict.comparison.users >= 300
    assert judge(good, good, matrix).decision == "accept"


def test_a_broken_model_is_refused_on_users_who_arrived_after_the_serving_model():
    """Users who arrive, act and leave (a session) are new to both models. The server folds
    their first events in; so does the gate, and a broken model shows on them too, where
    answering them all with the popular items would make both models look the same."""
    rng = np.random.default_rng(5)
    regulars = np.repeat(np.arange(300), 40)
    newcomers = np.repeat(np.arange(300, 600), 8)  # 8 events each, all after the last retrain
    events = []
    for who in (rng.permutation(regulars), rng.permutation(newcomers)):
        users, items = TASTE.sample(who.size, rng, users=who)
        events += list(zip([f"u{u}" for u in users], [f"i{i}" for i in items], strict=True))
    window = InteractionWindow(100_000)
    append_events(window, events)
    matrix = window.matrix(holdout_from={0: regulars.size}, max_holdout=newcomers.size)
    assert not set(matrix.holdout_users.tolist()) & set(
        np.flatnonzero(matrix.train_items.getnnz(1)).tolist()
    )
    good, broken = gate_model(matrix, GOOD), gate_model(matrix, GOOD, shuffle=True)
    verdict = judge(broken, good, matrix)
    assert verdict.decision == "refuse", verdict.reason
    assert verdict.details["fresh_history_events"] == newcomers.size // 2
    assert judge(good, good, matrix).decision == "accept"


def test_a_noisy_small_sample_is_not_refused(matrix):
    """12 users once made the gate refuse a model trained on twice the data."""
    good, broken = gate_model(matrix, GOOD), gate_model(matrix, GOOD, shuffle=True)
    small = dataclasses.replace(
        matrix,
        holdout_users=matrix.holdout_users[:40],
        holdout_items=matrix.holdout_items[:40],
        holdout_weights=matrix.holdout_weights[:40],
    )
    verdict = judge(broken, good, small)
    assert verdict.decision == "abstain"
    assert "needs at least 50 users and 200 events" in verdict.reason


def test_a_within_margin_or_insignificant_drop_is_accepted(matrix):
    good = gate_model(matrix, GOOD)
    other_seed = gate_model(matrix, dataclasses.replace(GOOD, random_seed=7))
    verdict = judge(other_seed, good, matrix)
    assert verdict.decision == "accept", verdict.reason


def test_a_model_that_knows_more_users_and_items_is_not_penalised_for_it():
    """The serving model was trained on the first half of the users' history: held-out users
    it cannot fold in get its popularity answer (as the server does) instead of being skipped,
    and items it never saw count as misses for it."""
    window = taste_window(30_000, 3)
    matrix = window.matrix(holdout_from={0: 28_000}, max_holdout=2000)
    known = matrix.train_items.copy()
    half = np.arange(known.shape[0]) < known.shape[0] // 4  # it knew a quarter of the users
    known = known.multiply(half[:, None]).tocsr()
    few_items = np.zeros(known.shape[1], dtype=bool)
    few_items[: known.shape[1] // 2] = True
    known = known.multiply(few_items[None, :]).tocsr()
    known.eliminate_zeros()
    serving_full = gate_model(matrix, GOOD, train=known)
    keep = np.flatnonzero(few_items)
    serving = GateModel(
        [matrix.item_ids[c] for c in keep],
        AlsModel(
            serving_full.fitted.user_factors, serving_full.fitted.item_factors[keep], GOOD.to_dict()
        ),
        serving_full.popularity[keep],
    )
    verdict = judge(gate_model(matrix, GOOD), serving, matrix)
    assert verdict.decision == "accept"
    assert verdict.comparison.candidate > verdict.comparison.baseline
    assert verdict.comparison.users == verdict.details["users_with_truth"]  # nobody skipped


def test_dislikes_held_out_are_nothing_to_find(matrix):
    good = gate_model(matrix, GOOD)
    disliked = dataclasses.replace(matrix, holdout_weights=-np.abs(matrix.holdout_weights))
    assert judge(good, good, disliked).decision == "abstain"


# -- the publisher: refusals never freeze the service -------------------------------------------


def make_publisher(tmp_path, **overrides):
    config = BuilderConfig(
        topic="t",
        retrain_every=1,
        window_events=100_000,
        store=LocalStore(tmp_path),
        params=GOOD,
        gate_retry=30.0,
        **overrides,
    )
    stats = BuilderStats()
    return Publisher(config, stats, threading.Event()), stats


def retrain(publisher, stats, window, params=None):
    matrix = window.matrix(holdout_from=publisher.holdout_from(), max_holdout=5000)
    partitions = {"0": {"window_start": 0, "next_offset": len(window)}}
    setting = None if params is None else Setting("als", params.to_dict())
    publisher.run(RetrainJob(matrix, partitions, stats.to_dict(), setting=setting))


def test_a_refused_model_is_never_published_and_is_retried_without_new_events(tmp_path):
    publisher, stats = make_publisher(tmp_path)
    window = taste_window(20_000, 2)
    retrain(publisher, stats, window)  # the first model: nothing to compare with
    assert publisher.store.versions() == [1]

    taste_window(3_000, 4, window, start=20_000)  # events the serving model has not seen
    broken = AlsParams(factors=16, iterations=1, regularization=1e7)  # factors crushed to ~0
    retrain(publisher, stats, window, params=broken)
    assert publisher.store.versions() == [1]
    assert stats.quality_rejections == 1 and publisher.consecutive_refusals == 1
    assert publisher.retrain_at is not None  # retried in 30 s even if nothing arrives
    assert 25 < publisher.retrain_at - time.monotonic() <= 30

    retrain(publisher, stats, window)  # the retry, with good settings: published
    assert publisher.store.versions() == [1, 2]
    manifest = publisher.store.read_manifest(2)
    assert manifest["quality"]["decision"] == "accept"
    assert manifest["builder"]["quality_rejections"] == 1
    assert manifest["builder"]["consecutive_refusals_before"] == 1
    assert publisher.consecutive_refusals == 0
    assert manifest["window"]["events"] == 23_000  # held-out events are in the published window


def test_a_serving_model_older_than_the_limit_is_replaced_anyway(tmp_path):
    publisher, stats = make_publisher(tmp_path, max_model_age=60.0)
    window = taste_window(20_000, 2)
    retrain(publisher, stats, window)
    publisher.serving = dataclasses.replace(publisher.serving, created_at=time.time() - 3600)
    taste_window(3_000, 4, window, start=20_000)
    retrain(
        publisher, stats, window, params=AlsParams(factors=16, iterations=1, regularization=1e7)
    )
    assert publisher.store.versions() == [1, 2]
    assert stats.forced_publications == 1
    assert publisher.store.read_manifest(2)["quality"]["forced"] is True


def test_too_few_unseen_events_make_the_gate_abstain_and_say_so(tmp_path):
    publisher, stats = make_publisher(tmp_path)
    window = taste_window(20_000, 2)
    retrain(publisher, stats, window)
    taste_window(30, 4, window, start=20_000)
    retrain(publisher, stats, window)
    quality = publisher.store.read_manifest(2)["quality"]
    assert quality["decision"] == "abstain" and "needs at least" in quality["reason"]
    assert stats.gate_abstentions == 1


def test_gate_can_be_switched_off(tmp_path):
    publisher, _ = make_publisher(tmp_path, max_quality_drop=None)
    assert publisher.holdout_from() is None
    with pytest.raises(Exception, match="max-quality-drop"):
        make_publisher(tmp_path, max_quality_drop=1.5)


def test_each_users_earlier_held_out_half_is_their_fresh_history():
    from recommender.quality import _fresh_history

    users = np.array([7, 3, 7, 3, 7, 9, 3, 7])  # in time order: 7 has 4 events, 3 has 3, 9 one
    assert _fresh_history(users).tolist() == [True, True, True, False, False, False, False, False]
