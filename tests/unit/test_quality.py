"""The builder's quality gate: it refuses a deliberately broken model and accepts a good one."""

import dataclasses
import threading

import numpy as np
import pytest

from recommender.builder import BuilderConfig, BuilderStats
from recommender.builder.publish import Publisher, RetrainJob
from recommender.quality import FactorModel, judge
from recommender.store import LocalStore
from recommender.synthetic import TasteModel
from recommender.training import AlsParams, train_als
from recommender.window import InteractionWindow

from .helpers import append_events

TASTE = TasteModel(users=600, items=300, groups=6, in_group=0.9)
GOOD = AlsParams(factors=16, iterations=10)
BROKEN = AlsParams(factors=16, iterations=1, regularization=1e7)  # factors crushed to ~0


def taste_window(count, seed, window=None):
    window = InteractionWindow(100_000) if window is None else window
    users, items = TASTE.sample(count, np.random.default_rng(seed))
    start = len(window) if len(window) else 0
    append_events(
        window,
        list(zip([f"u{u}" for u in users], [f"i{i}" for i in items], strict=True)),
        start_offset=start,
    )
    return window


def factor_model(matrix, params):
    fitted = train_als(matrix.train_items, params)
    return FactorModel(
        list(matrix.item_ids), fitted.item_factors, params.alpha, params.regularization
    )


def test_judge_prefers_a_real_model_to_a_broken_one():
    matrix = taste_window(20_000, 1).matrix(holdout_from={0: 19_000}, max_holdout=1000)
    good, broken = factor_model(matrix, GOOD), factor_model(matrix, BROKEN)
    args = (list(matrix.item_ids), matrix.train_items, matrix.holdout_users, matrix.holdout_items)
    refused = judge(broken, good, *args, max_drop=0.2)
    assert not refused.passed and refused.candidate < 0.5 * refused.serving
    accepted = judge(good, good, *args, max_drop=0.2)
    assert accepted.passed and accepted.candidate > 0.2  # in-group tastes are learnable


def test_the_builder_never_publishes_a_model_the_gate_refuses(tmp_path):
    store = LocalStore(tmp_path)
    config = BuilderConfig(
        topic="t", retrain_every=1, window_events=100_000, store=store, params=GOOD
    )
    stats = BuilderStats()
    publisher = Publisher(config, stats, threading.Event())
    window = InteractionWindow(100_000)
    taste_window(20_000, 2, window)

    def retrain():
        end = len(window)
        matrix = window.matrix(holdout_from=publisher.holdout_from(), max_holdout=2000)
        partitions = {"0": {"window_start": 0, "next_offset": end}}
        publisher.run(RetrainJob(matrix, partitions, stats.to_dict()))

    retrain()  # first model: nothing to compare with, published as is
    assert store.versions() == [1]

    taste_window(2_000, 3, window)  # events the serving model has not seen: the holdout
    publisher.config = dataclasses.replace(config, params=BROKEN)
    retrain()
    assert store.versions() == [1]
    assert stats.quality_rejections == 1

    publisher.config = config
    retrain()
    assert store.versions() == [1, 2]
    manifest = store.read_manifest(2)
    assert manifest["quality"]["passed"] is True
    assert manifest["quality"]["holdout_events"] == 2000
    assert manifest["builder"]["quality_rejections"] == 1
    assert manifest["window"]["events"] == 22_000  # held-out events are in the published window


def test_gate_can_be_switched_off(tmp_path):
    config = BuilderConfig(
        topic="t",
        retrain_every=1,
        window_events=1000,
        store=LocalStore(tmp_path),
        max_quality_drop=None,
    )
    assert Publisher(config, BuilderStats(), threading.Event()).holdout_from() is None
    with pytest.raises(Exception, match="max-quality-drop"):
        BuilderConfig(
            topic="t",
            retrain_every=1,
            window_events=10,
            max_quality_drop=1.5,
            store=LocalStore(tmp_path),
        )
