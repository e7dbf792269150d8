"""Evaluation: splits, the search's isolation from test data, and an end-to-end report."""

import csv
import json

import numpy as np

from recommender.cli import main
from recommender.evaluation.data import read_interactions
from recommender.evaluation.offline import search_als
from recommender.evaluation.splits import global_cutoff, per_user_holdout, truth_sets
from recommender.synthetic import TasteModel

TASTE = TasteModel(users=150, items=80, groups=4)


def sample_file(path, events=6000, seed=0):
    users, items = TASTE.sample(events, np.random.default_rng(seed))
    stamps = np.sort(np.random.default_rng(seed + 1).integers(1_000_000, 2_000_000, events))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user", "item", "rating", "timestamp"])
        for u, i, t in zip(users.tolist(), items.tolist(), stamps.tolist(), strict=True):
            writer.writerow([f"u{u}", f"i{i}", 4.0 + (u + i) % 2, t])
    return path


def events_of(data):
    return set(zip(data.users.tolist(), data.items.tolist(), data.timestamps.tolist(), strict=True))


def test_per_user_holdout_takes_each_users_latest_events(tmp_path):
    data = read_interactions(sample_file(tmp_path / "d.csv"))
    split = per_user_holdout(data, fraction=0.2)
    assert len(split.train) + len(split.test) == len(data)
    for u in range(0, data.n_users, 17):
        train_t = split.train.timestamps[split.train.users == u]
        test_t = split.test.timestamps[split.test.users == u]
        if test_t.size:
            assert train_t.max() <= test_t.min()
            assert train_t.size >= 1
    truth = truth_sets(split)
    for u, items in truth.items():
        assert not items & set(split.train.items[split.train.users == u].tolist())
    cut = global_cutoff(data, quantile=0.9)
    assert cut.train.timestamps.max() <= cut.test.timestamps.min()


def test_min_rating_keeps_only_positives(tmp_path):
    data = read_interactions(sample_file(tmp_path / "d.csv"), min_rating=5)
    assert len(data) and (data.weights >= 5).all()


def test_the_search_never_sees_test_events(tmp_path):
    data = read_interactions(sample_file(tmp_path / "d.csv"))
    split = per_user_holdout(data, fraction=0.2)
    test_events, train_events = events_of(split.test), events_of(split.train)
    seen_splits = []

    def spy(params, validation):
        seen_splits.append(validation)
        return float(params.factors)  # any score: only what the search is given matters here

    best, trials = search_als(split.train, budget_seconds=5, max_trials=4, fit_and_score=spy)
    assert len(trials) == 4 and best.factors == max(t.params.factors for t in trials)
    for validation in seen_splits:
        given = events_of(validation.train) | events_of(validation.test)
        assert given <= train_events
        assert not given & test_events


def test_evaluate_command_writes_report_json_and_plots(tmp_path):
    data_file = sample_file(tmp_path / "d.csv")
    out = tmp_path / "report"
    code = main(
        [
            "evaluate",
            str(data_file),
            "--output-dir",
            str(out),
            "--protocol",
            "temporal",
            "--protocol",
            "last",
            "--protocol",
            "global",
            "--protocol",
            "prequential",
            "--k",
            "5,10",
            "--search-budget",
            "2",
            "--daemon-budget",
            "2",
            "--family-budget",
            "0.5",
            "--windows",
            "2000,0",
            "--retrain-every",
            "1000",
            "--no-progress",
            "--log-level",
            "WARNING",
        ]
    )
    assert code == 0
    text = (out / "report.md").read_text()
    for heading in (
        "## Per-user holdout", "## Leave-last-out by time", "## Global time cut-off",
        "## Prequential",
    ):  # fmt: skip
        assert heading in text
    report = json.loads((out / "report.json").read_text())
    for section in ("Per-user holdout", "Leave-last-out by time"):
        names = [m["name"] for m in report[section]["models"]]
        assert names[0] == "popularity" and names[-1] == "ALS, tuned on validation"
        assert "what the daemon serves (self-tuned 2 s)" in names[-3]
        assert names[-2] == names[-3] + " + learned ranker"
        # precision@1 for every row where a ranker is judged (its gains show at the top)
        assert all("1" in m["metrics"] for m in report[section]["models"])
        families = {name.split(",")[0] for name in names[5:-3]}
        assert families == {"EASE", "RP3beta", "item-kNN", "sequence"}, names
    assert "what the builder serves after its first tuning session" in text
    assert text.count("The learned ranker") >= 2, text
    assert text.count("precision@1 ") + text.count("was not trained") >= 2, text
    assert (
        text.count("of the best learnt model's NDCG@10")
        + text.count("is the best learnt model here")
        >= 3
    )
    assert len(report["prequential"]) == 2
    assert all(0 <= run["recall"] <= 1 for run in report["prequential"])
    for png in ("ndcg_vs_k_per-user.png", "prequential_over_time.png", "prequential_by_window.png"):
        assert (out / png).stat().st_size > 1000


def test_shared_data_sets_replay_in_time_order_or_a_seeded_shuffle():
    import pytest

    from recommender.datasets import datasets_dir, load_interactions, load_items

    if datasets_dir() is None:
        pytest.skip("../shared/datasets is not on this machine")
    movies = load_interactions("movielens")
    assert len(movies) == 100_836 and movies.order == "by timestamp"
    assert (np.diff(movies.timestamps) >= 0).all()
    anime = load_interactions("anime", limit=1000, seed=3)
    assert len(anime) == 1000 and anime.timestamps is None
    assert anime.users == load_interactions("anime", limit=1000, seed=3).users  # reproducible
    titles = {info.id: info for info in load_items("movielens")}
    assert titles["1"].title == "Toy Story (1995)"
    assert titles["1"].url == "https://www.imdb.com/title/tt0114709/"


def test_headerless_files_with_string_ids_keep_their_first_row(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("alice,book\nbob,film\n")
    data = read_interactions(plain)
    assert len(data) == 2 and data.user_ids == ["alice", "bob"]
    with_header = tmp_path / "header.csv"
    with_header.write_text("user,item,weight\nalice,book,2\n")
    assert len(read_interactions(with_header)) == 1


def test_a_file_without_timestamps_gets_a_shuffled_event_time_for_the_daemon(tmp_path):
    """Sorted files (by user, then item) must not make a user's 'newest' events their highest
    item ids when the daemon's tuning is replayed offline."""
    from recommender.evaluation.daemon import window_events

    lines = "\n".join(f"u{u}\ti{i}\t1" for u in range(20) for i in range(50))
    path = tmp_path / "sorted.dat"
    path.write_text("User_ID\tAnime_ID\tFeedback\n" + lines + "\n")
    data = read_interactions(path)
    assert data.timestamps is None
    events = window_events(data)
    newest = events.items[np.argsort(events.timestamps)[-100:]]
    assert len(set(newest.tolist())) > 30  # not just the last few item ids
    assert window_events(data).timestamps.tolist() == events.timestamps.tolist()  # seeded


def test_rating_scales_in_evaluation_make_dislikes_training_signal_but_never_targets(tmp_path):
    from recommender.evaluation.data import with_rating_scale
    from recommender.evaluation.splits import Split, truth_sets
    from recommender.ratings import RatingScale

    path = tmp_path / "r.csv"
    path.write_text("user,item,rating,ts\nu,a,5,1\nu,b,1,2\nu,c,3,3\nv,a,4,1\nv,d,0.2,2\n")
    data = with_rating_scale(read_interactions(path), RatingScale.parse("1..5"))
    assert len(data) == 4  # 0.2 is off the 1..5 scale
    assert sorted(data.weights.tolist()) == [-2.0, 0.0, 1.0, 2.0]
    everything = np.ones(len(data), bool)
    split = Split(data.subset(~everything), data.subset(everything), "all held out")
    assert truth_sets(split) == {data.user_ids.index("u"): {data.item_ids.index("a")},
                                 data.user_ids.index("v"): {data.item_ids.index("a")}}  # fmt: skip


def test_evaluate_replays_the_best_prequential_setting_with_each_half_life(tmp_path):
    """Users check --half-life on their own data before turning it on in the builder."""
    data_file = sample_file(tmp_path / "d.csv")  # event times span about 11.6 days
    out = tmp_path / "report"
    args = ["evaluate", str(data_file), "--output-dir", str(out), "--protocol", "prequential"]
    args += ["--windows", "2000,4000", "--retrain-every", "1000", "--half-lives", "1h,10000d"]
    assert main([*args, "--no-plots", "--no-progress", "--log-level", "WARNING"]) == 0
    report = json.loads((out / "report.json").read_text())
    plain = max(run["recall"] for run in report["prequential"])
    decay = {row["half_life_seconds"]: row["recall"] for row in report["prequential_decay"]}
    assert decay[0.0] == plain
    # A half-life far longer than the data weighs every event alike: the plain window again.
    assert abs(decay[10000 * 86400] - plain) < 0.01
    assert decay[3600] != plain  # an hour's half-life forgets most of the window
    assert "### Time decay (`--half-life`)" in (out / "report.md").read_text()


def test_prequential_fold_in_weighs_fresh_events_as_the_newest_window_events(tmp_path, monkeypatch):
    """The replay must serve as the server does: with a half-life, fresh events are scaled by
    the window's newest weight (else decay would be judged against a handicapped fold-in)."""
    import recommender.evaluation.prequential as prequential
    from recommender.models.als_training import AlsParams

    built = []

    class Recording(prequential.RecommenderModel):
        def __init__(self, snapshot):
            super().__init__(snapshot)
            built.append(self.fresh_weight)

    monkeypatch.setattr(prequential, "RecommenderModel", Recording)
    data = read_interactions(sample_file(tmp_path / "d.csv", events=3000))
    params = AlsParams(factors=4, iterations=2)
    prequential.run_prequential(
        data, window_events=3000, retrain_every=1000, params=params, half_life_ms=86_400_000
    )
    assert len(built) == 3 and all(weight > 1.5 for weight in built)
    built.clear()
    prequential.run_prequential(data, window_events=3000, retrain_every=1000, params=params)
    assert built == [1.0, 1.0, 1.0]


def test_leave_last_out_holds_out_each_users_newest_like_and_nothing_later():
    from recommender.evaluation.data import Interactions
    from recommender.evaluation.splits import leave_last_out

    # u0: likes at t=1,2,3 then a dislike at t=4; u1: one like only; u2: likes at t=5, 1.
    data = Interactions(
        np.array([0, 0, 0, 0, 1, 2, 2]),
        np.array([0, 1, 2, 3, 0, 4, 5]),
        np.array([1, 1, 1, -1, 1, 1, 1], np.float32),
        np.array([1, 2, 3, 4, 1, 5, 1], np.int64),
        ["u0", "u1", "u2"],
        [f"i{i}" for i in range(6)],
        "test",
    )
    split = leave_last_out(data)
    test = sorted(zip(split.test.users.tolist(), split.test.items.tolist(), strict=True))
    assert test == [(0, 2), (2, 4)]
    train = sorted(zip(split.train.users.tolist(), split.train.items.tolist(), strict=True))
    assert train == [(0, 0), (0, 1), (1, 0), (2, 5)]  # u0's later dislike is in neither
