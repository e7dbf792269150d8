"""``recommender evaluate`` checks what every protocol needs before running any, skips those the
data cannot support, writes what it computed even when a protocol fails, and headlines the
strongest baseline."""

import csv
import json

import numpy as np
import pytest

from recommender.cli import main
from recommender.errors import ConfigError, RecommenderError
from recommender.evaluation.data import Interactions
from recommender.evaluation.options import EvaluateOptions
from recommender.evaluation.preconditions import (
    check_options,
    plan_protocols,
    prequential_retrains,
    reason_not_to_run,
)
from recommender.synthetic import TasteModel

QUICK = [
    "--search-budget", "0.3", "--daemon-budget", "0", "--family-budget", "0",
    "--no-plots", "--no-progress",
]  # fmt: skip


def taste_file(path, *, users, per_user=10, stamps=True, seed=0):
    """``per_user`` events for each of ``users`` users from four taste groups; ratings 1..10;
    optionally a timestamp column."""
    who = np.repeat(np.arange(users), per_user)
    _, items = TasteModel(users=users, items=100, groups=4).sample(
        who.size, np.random.default_rng(seed), users=who
    )
    times = np.random.default_rng(seed + 1).permutation(who.size) + 1_000_000
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user", "item", "rating", "timestamp"][: 4 if stamps else 3])
        for u, i, t in zip(who.tolist(), items.tolist(), times.tolist(), strict=True):
            row = [u + 1, i + 1, 1 + (u * 7 + i * 3) % 10, t]
            writer.writerow(row[: 4 if stamps else 3])
    return path


def evaluate(data_file, out, *protocols, extra=()):
    args = ["evaluate", str(data_file), "--output-dir", str(out)]
    for protocol in protocols:
        args += ["--protocol", protocol]
    return main([*args, *QUICK, *extra])


def test_protocol_all_on_600_users_skips_the_seed_protocol_and_reports_the_others(tmp_path, capsys):
    out = tmp_path / "report"
    extra = ["--windows", "3000", "--retrain-every", "2000"]
    assert evaluate(taste_file(tmp_path / "d.csv", users=600), out, "all", extra=extra) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["protocols"]["ran"] == ["temporal", "last", "global", "prequential"]
    assert list(report["protocols"]["skipped"]) == ["seed"]
    assert "more than 1,000 users" in report["protocols"]["skipped"]["seed"]
    text = (out / "report.md").read_text()
    for heading in (
        "## Per-user holdout", "## Leave-last-out by time", "## Global time cut-off",
        "## Prequential",
    ):  # fmt: skip
        assert heading in text
    assert "## The seed's protocol" not in text
    assert "not run: needs more than 1,000 users" in text and "the file has 600" in text
    skips = [line for line in capsys.readouterr().err.splitlines() if "not running" in line]
    assert len(skips) == 1 and "seed" in skips[0]


def test_the_headline_names_the_strongest_non_als_baseline_with_users_and_interval(tmp_path):
    out = tmp_path / "report"
    assert evaluate(taste_file(tmp_path / "d.csv", users=300), out, "temporal") == 0
    section = json.loads((out / "report.json").read_text())["Per-user holdout"]
    ndcg = {m["name"]: m["metrics"]["10"]["ndcg"] for m in section["models"]}
    non_als = {name: v for name, v in ndcg.items() if not name.startswith("ALS")}
    assert set(non_als) == {"popularity", "item-kNN (cosine)", "item-kNN (bm25)"}
    headline = section["headline"]
    assert headline["baseline"] == max(non_als, key=non_als.get)
    assert headline["baseline_score"] == max(non_als.values())
    assert headline["candidate_score"] == ndcg["ALS, tuned on validation"]
    tested = section["models"][0]["metrics"]["10"]["users"]
    assert headline["users"] == tested == headline["interval"]["users"]
    low, high = headline["interval"]["interval"]
    assert low <= headline["difference"] <= high
    text = (out / "report.md").read_text()
    assert f"(NDCG@10, {int(tested):,} test users): tuned ALS" in text
    assert f"the strongest non-ALS baseline, {headline['baseline']}" in text


def test_when_no_protocol_can_run_it_exits_2_saying_what_the_data_lacks(tmp_path, capsys):
    data_file = taste_file(tmp_path / "d.csv", users=600, stamps=False)
    out = tmp_path / "report"
    assert evaluate(data_file, out, "global", "seed") == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "no timestamps" in errors[0] and "more than 1,000 users" in errors[0]
    assert not (out / "report.md").exists()


def test_a_failing_protocol_leaves_the_others_in_the_report(tmp_path, monkeypatch, capsys):
    import recommender.evaluation.prequential_section as section

    def broken(*args, **kwargs):
        raise RuntimeError("replay broke")

    monkeypatch.setattr(section, "run_prequential", broken)  # injected fault
    out = tmp_path / "report"
    data_file = taste_file(tmp_path / "d.csv", users=200)
    assert evaluate(data_file, out, "temporal", "prequential", "global") == 1
    report = json.loads((out / "report.json").read_text())
    assert report["protocols"]["ran"] == ["temporal", "global"]
    assert report["protocols"]["failed"] == {"prequential": "RuntimeError: replay broke"}
    assert "Per-user holdout" in report and "Global time cut-off" in report
    text = (out / "report.md").read_text()
    assert "## Prequential stream replay\n\nNot completed: failed (RuntimeError: replay broke)" in (
        text
    )
    assert "Events replayed" not in text  # the half-written section is gone
    assert "replay broke" in capsys.readouterr().err


def test_the_seed_protocol_judges_the_files_ratings_even_with_a_rating_scale(tmp_path):
    """--ratings maps 1..10 to -4.5..+4.5; the seed's "rating above 5" must read the file."""
    out = tmp_path / "report"
    data_file = taste_file(tmp_path / "d.dat", users=1100, per_user=8, stamps=False)
    assert evaluate(data_file, out, "seed", extra=["--ratings", "1..10"]) == 0
    seed = json.loads((out / "report.json").read_text())["seed_protocol"]
    scores = {row["model"]: row["f_measure"] for row in seed["test"]}
    assert all(f > 0 for f in scores.values())
    non_als = {m: f for m, f in scores.items() if not m.startswith("ALS")}
    assert seed["headline"]["baseline"] == max(non_als, key=non_als.get)
    assert seed["headline"]["users"] == 1000
    assert "It judges the file's own ratings" in (out / "report.md").read_text()


def interactions(users, items, *, weights=None, stamps=None):
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    return Interactions(
        users,
        items,
        np.ones(users.size, np.float32) if weights is None else np.asarray(weights, np.float32),
        None if stamps is None else np.asarray(stamps, np.int64),
        [str(u) for u in range(users.max() + 1)],
        [str(i) for i in range(items.max() + 1)],
        "test",
    )


def each_user(n_users, per_user, **kwargs):
    users = np.repeat(np.arange(n_users), per_user)
    items = np.tile(np.arange(per_user), n_users) + users % 3
    return interactions(users, items, **kwargs)


def options(**kwargs):
    return EvaluateOptions(data_file=None, output_dir=None, **kwargs)


def test_the_per_user_holdout_needs_users_with_enough_events_to_hide_one():
    data = each_user(50, 3)
    assert "the 5 events a 20% per-user holdout needs" in reason_not_to_run(
        "temporal", data, data, options()
    )
    assert reason_not_to_run("temporal", data, data, options(test_fraction=0.5)) is None


def test_a_global_cut_off_needs_timestamps_and_events_before_the_cut():
    data = each_user(50, 10)
    assert "no timestamps" in reason_not_to_run("global", data, data, options())
    same_time = each_user(50, 10, stamps=np.full(500, 7))
    assert "nothing to train on" in reason_not_to_run("global", same_time, same_time, options())
    timed = each_user(50, 10, stamps=np.arange(500))
    assert reason_not_to_run("global", timed, timed, options()) is None


def test_the_replay_needs_a_retrain_before_the_stream_ends():
    data = each_user(90, 10)  # 900 events
    wide = options(retrain_every=(1000, 5000))
    assert "never comes before its end" in reason_not_to_run("prequential", data, data, wide)
    some = options(retrain_every=(500, 5000))
    assert reason_not_to_run("prequential", data, data, some) is None
    assert prequential_retrains(data, some) == [500]


def test_the_seed_protocol_needs_1001_users_ratings_out_of_10_and_users_to_hide_from():
    assert "more than 1,000 users" in reason_not_to_run(
        "seed", each_user(600, 10), each_user(600, 10, weights=np.full(6000, 8)), options()
    )
    plain = each_user(1100, 10)  # implicit feedback: weight 1
    assert "highest rating is 1" in reason_not_to_run("seed", plain, plain, options())
    few = each_user(1100, 3, weights=np.full(3300, 8))
    assert "test users has the 5 ratings" in reason_not_to_run("seed", few, few, options())
    rated = each_user(1100, 10, weights=np.full(11000, 8))
    assert reason_not_to_run("seed", rated, rated, options()) is None


def test_a_plan_runs_what_it_can_and_refuses_when_nothing_can():
    data = each_user(600, 10)
    plan = plan_protocols(data, data, options(protocols=("seed", "temporal", "temporal")))
    assert plan.runnable == ["temporal"] and list(plan.skipped) == ["seed"]
    with pytest.raises(RecommenderError, match=r"no protocol can run on test: .*no timestamps"):
        plan_protocols(data, data, options(protocols=("global",)))


@pytest.mark.parametrize(
    ("settings", "flag"),
    [
        ({"ks": (0, 10)}, "--k"),
        ({"protocols": ("global",), "cutoff": 1.0}, "--cutoff"),
        ({"protocols": ("temporal",), "test_fraction": 0.0}, "--test-fraction"),
        ({"protocols": ("prequential",), "retrain_every": (0,)}, "--retrain-every"),
    ],
)
def test_settings_out_of_range_are_refused_before_anything_runs(settings, flag):
    with pytest.raises(ConfigError, match=flag):
        check_options(options(**settings))
    check_options(options(protocols=("seed",), cutoff=1.0, test_fraction=0.0))  # not used


def result(name, per_user):
    from recommender.evaluation.offline import ModelResult

    scores = np.asarray(per_user, np.float64)
    return ModelResult(name, {10: {"ndcg": float(scores.mean())}}, 0.0, {10: scores})


def test_a_baseline_that_wins_beyond_the_noise_is_said_to_win():
    from recommender.evaluation.headline import compare_with_strongest

    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, 400)
    weaker = result("popularity", base - 0.15)
    knn = result("item-kNN (cosine)", base)
    als = result("ALS, tuned", base - 0.05 + rng.normal(0, 0.01, 400))
    headline = compare_with_strongest(als, [weaker, knn], 10, label="tuned ALS")
    assert headline.baseline == "item-kNN (cosine)" and headline.winner == "baseline"
    assert headline.clear and headline.ratio < 1 and headline.users == 400
    text = headline.text()
    assert "**a baseline wins**: item-kNN (cosine) scores higher than tuned ALS" in text
    assert "(the interval excludes 0)" in text and "400 test users" in text


def test_a_difference_within_the_noise_has_no_clear_winner():
    from recommender.evaluation.headline import compare_with_strongest

    rng = np.random.default_rng(1)
    base = rng.uniform(0.0, 1.0, 50)
    als = result("ALS", base + rng.normal(0.01, 0.3, 50))
    headline = compare_with_strongest(als, [result("popularity", base)], 10)
    assert headline.interval.low < 0 < headline.interval.high
    assert headline.clear is False and "no clear winner" in headline.text()


def test_a_baseline_scoring_zero_gives_no_ratio():
    from recommender.evaluation.headline import compare_with_strongest

    headline = compare_with_strongest(result("ALS", [0.5, 0.3]), [result("pop", [0, 0])], 10)
    assert headline.ratio is None and headline.winner == "candidate"
    assert "the baseline scores 0" in headline.text()
