"""Self-tuning on a window: the split, the search, pinned values, and adoption on evidence."""

import time

import numpy as np
import pytest

from recommender.models import FAMILIES, Setting
from recommender.models.als_training import AlsParams
from recommender.synthetic import SessionModel, TasteModel
from recommender.tuning import SearchSpace, split, tune
from recommender.window import InteractionWindow

from .helpers import append_events

TASTE = TasteModel(users=800, items=400, groups=8, in_group=0.85)


def als(**params):
    return Setting("als", AlsParams(**params).to_dict())


DEFAULTS = als()


@pytest.fixture(scope="module")
def events():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(800), 25)
    rng.shuffle(users)
    u, i = TASTE.sample(users.size, rng, users=users)
    window = InteractionWindow(100_000)
    append_events(window, list(zip([f"u{x}" for x in u], [f"i{x}" for x in i], strict=True)))
    return window.events()


def test_validation_is_each_users_newest_events_and_the_halves_are_disjoint(events):
    data = split(events, seed=1)
    assert not set(data.search_users) & set(data.confirm_users)
    assert abs(data.search_users.size - data.confirm_users.size) <= 1
    assert data.search_users.size + data.confirm_users.size > 700
    # Validation items are never training items of the same user.
    assert data.truth.multiply(data.train != 0).nnz == 0
    # For one user: validation holds the newest fifth of their events.
    user = int(data.search_users[0])
    mine = np.flatnonzero(events.users == user)
    newest = set(events.items[mine[np.argsort(events.timestamps[mine])][-5:]].tolist())
    assert set(data.truth[user].indices.tolist()) <= newest


def test_events_at_the_same_millisecond_are_split_in_the_order_they_arrived():
    # A burst produced at once: the window's order (offsets) is the only order there is. (Not
    # each user's items in id order: that is a sorted file's order, see test_timeorder.py.)
    steps = [3, 7, 0, 9, 1, 5, 8, 2, 6, 4]
    window = InteractionWindow(1000)
    pairs = [(f"u{u}", f"i{10 * u + step}") for u in range(40) for step in steps]
    append_events(window, pairs, timestamps=np.zeros(len(pairs), np.int64))
    events = window.events()
    assert events.timed
    data = split(events, seed=1)
    for user in data.search_users[:5].tolist():
        name = events.user_ids[user]
        newest = {f"i{10 * int(name[1:]) + step}" for step in steps[-2:]}
        assert {events.item_ids[i] for i in data.truth[user].indices} == newest
        assert [events.item_ids[i] for i in data.sequences.of(user)][-1] == (
            f"i{10 * int(name[1:]) + steps[-3]}"
        )


def test_tuning_beats_a_poor_setting_and_adopts_it_on_evidence(events):
    poor = Setting(
        "als", AlsParams(factors=128, regularization=0.001, alpha=50.0, iterations=5).to_dict()
    )
    started = time.perf_counter()
    outcome = tune(events, current=poor, budget_seconds=6.0, seed=0)
    assert time.perf_counter() - started < 25  # the budget plus one confirmation
    assert outcome.adopted, outcome.reason
    assert outcome.comparison is not None and outcome.comparison.low > 0
    assert outcome.best != poor and len(outcome.trials) >= 10
    record = outcome.to_dict()
    assert record["trail"] and record["trail"][0]["ndcg"] >= record["trail"][-1]["ndcg"]
    assert record["confirmation"]["users"] == outcome.validation["confirm_users"]


def test_pinned_values_are_never_changed(events):
    outcome = tune(
        events,
        current=Setting(
            "als", AlsParams(factors=8, regularization=0.01, alpha=1.0, iterations=6).to_dict()
        ),
        space=SearchSpace(pinned={"factors": 8, "alpha": 1.0}),
        budget_seconds=2.0,
    )
    assert all(t.params["factors"] == 8 and t.params["alpha"] == 1.0 for t in outcome.trials)


def test_too_little_data_is_said_and_nothing_changes():
    window = InteractionWindow(100)
    append_events(window, [("u1", "a"), ("u1", "b"), ("u2", "a")])
    outcome = tune(window.events(), current=DEFAULTS, budget_seconds=1.0)
    assert not outcome.adopted and "too little" in outcome.reason


def test_time_spent_paused_does_not_count_against_the_budget(events):
    calls = []

    def pause():
        calls.append(1)
        if len(calls) < 20:
            time.sleep(0.05)  # a retrain is running: tuning waits

    outcome = tune(events, current=DEFAULTS, budget_seconds=1.5, pause=pause)
    assert len(calls) >= 20
    assert outcome.seconds >= 1.5 + 0.9  # 19 pauses of 50 ms did not eat the budget


def test_stopping_ends_the_search_early(events):
    started = time.perf_counter()
    outcome = tune(events, current=DEFAULTS, budget_seconds=60.0, should_stop=lambda: True)
    assert time.perf_counter() - started < 5
    assert not outcome.adopted


def test_a_family_over_the_memory_budget_is_left_out_and_said(events):
    outcome = tune(
        events, current=DEFAULTS, space=SearchSpace(max_bytes=1 << 10), budget_seconds=1.0
    )
    assert not outcome.adopted and "memory budget" in outcome.reason
    assert "als" in outcome.to_dict()["excluded_families"]


def test_where_order_is_the_signal_tuning_adopts_the_sequence_family_on_evidence():
    # Walks on a hidden graph: each user's newest events are what follows their older ones,
    # which no co-occurrence model can see (bench/families.py: 0.77 vs ALS's 0.14 NDCG@10).
    _, walks = SessionModel(items=300).draw(600, 20, np.random.default_rng(3))
    window = InteractionWindow(100_000)
    append_events(window, [(f"s{u}", f"i{i}") for u, row in enumerate(walks) for i in row])
    outcome = tune(
        window.events(),
        current=DEFAULTS,
        space=SearchSpace(families=tuple(FAMILIES)),
        budget_seconds=8.0,
        seed=0,
    )
    assert outcome.adopted, outcome.reason
    assert outcome.best.family == "sequence", outcome.to_dict()["trail"]
    assert outcome.comparison is not None and outcome.comparison.low > 0
    assert {t.family for t in outcome.trials} >= {"als", "sequence"}


def test_a_pinned_family_is_the_only_one_searched(events):
    outcome = tune(
        events,
        current=Setting("knn", {}),
        space=SearchSpace(families=("knn",)),
        budget_seconds=2.0,
    )
    assert outcome.trials and {t.family for t in outcome.trials} == {"knn"}


def test_a_pinned_setting_of_another_family_is_never_searched(events):
    outcome = tune(
        events,
        current=Setting("knn", {}),
        space=SearchSpace(families=("knn",), pinned={"knn_weighting": "bm25", "knn_bm25_k1": 3.0}),
        budget_seconds=1.5,
    )
    assert len(outcome.trials) > 3
    assert all(t.params["knn_weighting"] == "bm25" for t in outcome.trials)
    assert all(t.params["knn_bm25_k1"] == 3.0 for t in outcome.trials)
    assert len({t.params["knn_neighbours"] for t in outcome.trials}) > 1  # the rest is searched


def test_pinned_als_flags_keep_self_tuning_to_als(tmp_path):
    """``--factors 64`` with ``--model auto``: the pinned setting never silently stops applying
    because another family won; without ALS flags every family is searched."""
    from recommender.builder.config import BuilderConfig
    from recommender.store import LocalStore

    common = {
        "topic": "t",
        "retrain_every": 10,
        "window_events": 100,
        "store": LocalStore(tmp_path),
    }
    assert BuilderConfig(**common, pinned=frozenset({"factors"})).families == ("als",)
    assert set(BuilderConfig(**common).families) == set(FAMILIES)
    assert BuilderConfig(**common, model="ease").families == ("ease",)


def test_every_affordable_familys_defaults_are_tried_first_and_the_budget_is_wall_clock(events):
    """A first session (current: ALS's defaults) tries each family's defaults before searching;
    a budget far below one fit stops the session near it, not after the fits it started."""
    from recommender.models import make_family

    current = Setting("als", make_family("als").validate(make_family("als").defaults()))
    outcome = tune(
        events,
        current=current,
        space=SearchSpace(families=tuple(FAMILIES)),
        budget_seconds=60,
        max_trials=len(FAMILIES),
    )
    tried = {t.family: t.params for t in outcome.trials[: len(FAMILIES)]}
    assert set(tried) == set(FAMILIES)
    for family, params in tried.items():
        defaults = make_family(family).validate(make_family(family).defaults())
        assert params == defaults, family
    quick = tune(events, current=current, space=SearchSpace(families=tuple(FAMILIES)),
                 budget_seconds=0.05)  # fmt: skip
    # The first fit is stopped at its first checkpoint; nothing else is started.
    assert len(quick.trials) == 1 and quick.trials[0].state == "failed", quick.trials
    assert not quick.adopted
