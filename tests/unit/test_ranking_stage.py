"""The serving side of the learned ranker computes each candidate's features exactly as the
builder's training did (one module, two callers): the same rows as the candidate table for the
same user, candidates and time; a fresh event counts at once; a snapshot with a broken ranker is
refused by its checks, or answers in the family's order."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import numpy as np
import pytest

from recommender.errors import SnapshotError
from recommender.events import parse_values
from recommender.features import item_information
from recommender.items import Catalog
from recommender.items.fresh import FreshItems
from recommender.models import History, make_family
from recommender.ranker import Context, candidate_table
from recommender.ranker.window_fit import SOURCE, train_on_window, window_features
from recommender.serving.learned import LearnedRanking
from recommender.serving.model import RecommenderModel
from recommender.serving.pipeline import ModelPipeline
from recommender.serving.query import Ask
from recommender.snapshot import load_snapshot, publish_snapshot, ranker_arrays, snapshot_arrays
from recommender.synthetic import TasteModel
from recommender.window import InteractionWindow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    taste = TasteModel(users=400, items=200, groups=4)
    users, items = taste.sample(12_000, np.random.default_rng(5))
    values = taste.values(users, items)
    window = InteractionWindow(100_000)
    window.append(
        parse_values(values),
        timestamps_ms=1_700_000_000_000 + np.arange(len(values)) * 1_000,
        partitions=np.zeros(len(values), np.int16),
        offsets=np.arange(len(values), dtype=np.int64),
    )
    events, matrix = window.events(), window.matrix()
    # a catalogue: every other item has a category and a price, a few a rarer attribute
    catalog = Catalog()
    prices = np.random.default_rng(6).uniform(1, 100, taste.items)
    catalog.update(
        json.dumps(
            {"id": taste.item_id(k), "categories": [f"g{k % 4}", f"h{k % 3}"],
             "labels": {"brand": f"b{k % 5}", "in_stock": k % 3 == 0},
             "attributes": {"price": prices[k], **({"year": 1990 + k} if k % 10 == 0 else {})}}
        ).encode()
        for k in range(0, taste.items, 2)
    )  # fmt: skip
    information = item_information(events.item_ids, catalog.record)
    family = make_family("als")
    params = family.validate({"factors": 16, "iterations": 5})
    outcome = train_on_window(
        events, lambda d: family.fit(d, params), mode="on", min_users=20, information=information
    )
    fitted = family.fit(matrix.training_data(), params)
    features = window_features(events, information)
    extra, section = ranker_arrays(outcome, features)
    manifest = {"model": {"family": "als", "params": params}, "params": params, "ranker": section}
    model_dir = tmp_path_factory.mktemp("model")
    publish_snapshot(model_dir, 1, snapshot_arrays(matrix, fitted, extra=extra), manifest)
    model = RecommenderModel(load_snapshot(model_dir / "v000000000001"))
    return model, fitted, features, model_dir


def test_serving_features_are_the_training_features_of_the_same_candidates(served):
    model, fitted, features, _ = served
    ranking = LearnedRanking.of(model)
    assert ranking is not None
    ranking.made_at = 1e18  # the clock stands at the window's newest event
    catalog = Catalog()
    pipeline = ModelPipeline(model, catalog=catalog, new_items=FreshItems(catalog))

    async def score(m: RecommenderModel, key: object) -> np.ndarray:
        return m.score_many([key])[0]  # type: ignore[list-item]

    for user in ("u3", "u150"):
        ask = Ask(kind="user", route="/recommend", n=ranking.candidates, user=user)
        answer = asyncio.run(pipeline.answer(ask, score))
        served_rows = ranking.features(ask, answer)
        row = model.user_index[user]
        seen = model.seen[row]
        history = History(seen.indices.astype(np.int64), seen.data.astype(np.float32), row=row)
        cols = np.array([model.item_index[s.item] for s in answer.items], np.int64)
        table = candidate_table(
            {SOURCE: fitted.score},
            [history],
            np.array([row]),
            Context(features.items, features.users, features.newest_ms, features.information),
            per_source=ranking.candidates,
            given=[cols],
        )
        names = list(ranking.ranker.schema.names)
        assert list(table.names) == names
        assert {"match.category", "match.labels", "attr.price", "attr.year"} <= set(names)
        np.testing.assert_allclose(served_rows, table.features, rtol=1e-5, atol=1e-4)


def test_a_fresh_event_counts_in_the_user_features_at_once(served):
    model, _, _, _ = served
    ranking = LearnedRanking.of(model)
    assert ranking is not None
    names = list(ranking.ranker.schema.names)
    answer_ask = Ask(kind="user", route="/recommend", n=5, user="u3")
    from recommender.models.answers import Answer, ScoredItem

    answer = Answer([ScoredItem(model.item_ids[k], 1.0 - k / 10) for k in range(5)], "x")
    before = ranking.features(answer_ask, answer)
    fresh = Ask(kind="user", route="/recommend", n=5, user="u3", fresh=(("i1", 1.0),))
    after = ranking.features(fresh, answer)
    events = names.index("user.events")
    # one more event, against the window's mean per user
    mean = ranking.users.mean_events
    assert after[0, events] == pytest.approx(before[0, events] + 1 / mean, rel=1e-5)
    assert after[0, names.index("user.days_since_last")] == pytest.approx(0.0, abs=1e-6)


def test_the_server_may_rank_fewer_candidates_than_trained(served):
    model, _, _, _ = served
    catalog = Catalog()

    async def score(m: RecommenderModel, key: object) -> np.ndarray:
        return m.score_many([key])[0]  # type: ignore[list-item]

    def answer(ranking, n):
        pipeline = ModelPipeline(
            model, catalog=catalog, new_items=FreshItems(catalog), ranker=ranking
        )
        ask = Ask(kind="user", route="/recommend", n=n, user="u3")
        return [s.item for s in asyncio.run(pipeline.answer(ask, score)).items]

    few = LearnedRanking.of(model, candidates=15)
    assert few is not None and few.candidates == 15 and few.trained_candidates == 200
    family_top = answer(None, 15)
    ranked = answer(few, 10)
    assert len(ranked) == 10 and set(ranked) <= set(family_top)
    assert ranked != family_top[:10]  # reordered by the ranker, among those 15


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("feature_user_events", np.zeros(3, np.int64)),
        ("feature_item_attributes", np.zeros((3, 2), np.float32)),
        ("feature_item_attributes", None),  # an infinite value
        ("feature_item_category_indptr", np.zeros(3, np.int64)),
        ("feature_item_label_indptr", np.zeros(3, np.int64)),
    ],
)
def test_ranker_arrays_that_do_not_match_the_window_are_refused(served, tmp_path, name, bad):
    _, _, _, model_dir = served
    import json
    import shutil

    broken = tmp_path / "v000000000001"
    shutil.copytree(model_dir / "v000000000001", broken)
    if bad is None:
        bad = np.load(broken / f"{name}.npy").copy()
        bad[0, 0] = np.inf
    np.save(broken / f"{name}.npy", bad)
    manifest = json.loads((broken / "manifest.json").read_text())
    from recommender.snapshot.files import _sha256  # the checksum must match to get that far

    meta = manifest["files"][name]
    meta["sha256"], meta["shape"] = _sha256(broken / f"{name}.npy"), list(bad.shape)
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SnapshotError, match=name):
        load_snapshot(broken)


def test_concurrent_requests_are_ranked_together_as_each_alone_and_a_failure_keeps_the_order(
    served,
):
    model, _, _, _ = served
    ranking = LearnedRanking.of(model)
    assert ranking is not None
    ranking.made_at = 1e18  # one clock for both ways
    catalog = Catalog()
    wide = ModelPipeline(model, catalog=catalog, new_items=FreshItems(catalog))

    async def score(m: RecommenderModel, key: object) -> np.ndarray:
        return m.score_many([key])[0]  # type: ignore[list-item]

    asks = [Ask(kind="user", route="/recommend", n=5, user=f"u{k}") for k in range(12)]
    asks.append(Ask(kind="items", route="/recommend", n=5, items=("i1", "i2")))

    async def run():
        answers = [
            await wide.answer(dataclasses.replace(a, n=50), score)  # the family's top 50
            for a in asks
        ]
        alone = [ranking.rank_many([a], [b])[0] for a, b in zip(asks, answers, strict=True)]
        before = ranking._batch.batches
        together = await asyncio.gather(
            *(ranking.rank(a, b) for a, b in zip(asks, answers, strict=True))
        )
        return answers, alone, together, ranking._batch.batches - before

    answers, alone, together, batches = asyncio.run(run())
    assert batches == 1  # one prediction for the 13 requests
    for one, both in zip(alone, together, strict=True):
        assert [s.item for s in one.items] == [s.item for s in both.items]
        np.testing.assert_allclose([s.score for s in one.items], [s.score for s in both.items])

    def broken(asks, answers):
        raise RuntimeError("a broken model")

    ranking._batch.rank_many = broken
    fallback = asyncio.run(ranking.rank(asks[0], answers[0]))
    assert [s.item for s in fallback.items] == [s.item for s in answers[0].items[:5]]
    assert ranking.failures == 1
