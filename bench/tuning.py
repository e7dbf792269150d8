"""Evidence for self-tuning, static defaults and the quality gate, across every data set we have.

    .venv/bin/python bench/tuning.py --part defaults   # pick static defaults (validation only)
    .venv/bin/python bench/tuning.py --part serve      # defaults / daemon / full search, on test
    .venv/bin/python bench/tuning.py --part budget     # daemon quality vs tuning budget
    .venv/bin/python bench/tuning.py --part search     # optuna TPE + pruning vs random search
    .venv/bin/python bench/tuning.py --part gate       # gate decisions on replayed streams
    .venv/bin/python bench/tuning.py --part decay      # half-life vs plain window, prequential
    .venv/bin/python bench/tuning.py --part daemon     # the real builder: time to a tuned model

Data sets: MovieLens ml-latest-small (ratings >= 4 as positives; and every rating through the
1..5 scale, dislikes included), the anime history and ratings (>= 7), and synthetic hidden-taste
data with a planted answer (the issue's 2,000 users x 30 events, 1,000 items in 10 groups, 85 %
in-group; a sparse and a dense variant). Protocol: per-user temporal holdout (each user's last
20 % is test); anything chosen is chosen on a validation split of the training part only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.blas import limit_blas_threads  # noqa: E402
from recommender.datasets import datasets_dir  # noqa: E402
from recommender.evaluation.daemon import daemon_settings, window_events  # noqa: E402
from recommender.evaluation.data import Interactions, read_interactions  # noqa: E402
from recommender.evaluation.models import AlsModel, Popularity  # noqa: E402
from recommender.evaluation.offline import evaluate_model, search_als  # noqa: E402
from recommender.evaluation.splits import Split, per_user_holdout  # noqa: E402
from recommender.models import Setting  # noqa: E402
from recommender.models.als_training import AlsParams  # noqa: E402
from recommender.ratings import RatingScale  # noqa: E402
from recommender.synthetic import TasteModel  # noqa: E402

OLD_DEFAULTS = AlsParams(factors=64, regularization=0.05, alpha=1.0, iterations=15)
K = 10


def planted(users: int, per_user: int, items: int, groups: int, in_group: float) -> Interactions:
    taste = TasteModel(users=users, items=items, groups=groups, in_group=in_group)
    rng = np.random.default_rng(7)
    who = np.repeat(np.arange(users), per_user)
    rng.shuffle(who)
    u, i = taste.sample(who.size, rng, users=who)
    return Interactions(
        u.astype(np.int64),
        i.astype(np.int64),
        np.ones(u.size, np.float32),
        np.arange(u.size, dtype=np.int64),
        [taste.user_id(k) for k in range(users)],
        [taste.item_id(k) for k in range(items)],
        f"planted taste {users} users x {per_user}, {items} items, {groups} groups, {in_group:.0%}",
    )


def with_scale(data: Interactions, spec: str) -> Interactions:
    weights, _ = RatingScale.parse(spec).weights(data.weights)
    return Interactions(
        data.users, data.items, weights.astype(np.float32), data.timestamps,
        data.user_ids, data.item_ids, data.source + f", ratings as {spec}",
    )  # fmt: skip


def datasets() -> dict[str, Callable[[], tuple[Interactions, bool]]]:
    """name -> loader of (data, binary)."""
    found: dict[str, Callable[[], tuple[Interactions, bool]]] = {
        "planted": lambda: (planted(2000, 30, 1000, 10, 0.85), True),
        "planted-sparse": lambda: (planted(8000, 8, 4000, 40, 0.8), True),
        "planted-dense": lambda: (planted(600, 120, 400, 5, 0.7), True),
    }
    shared = datasets_dir()
    if shared is not None:
        ml = shared / "movielens-latest-small" / "ratings.csv"
        anime = shared / "anime"
        found["movielens"] = lambda: (read_interactions(ml, min_rating=4), True)
        found["movielens-ratings"] = lambda: (with_scale(read_interactions(ml), "0.5..5"), False)
        found["anime-history"] = lambda: (read_interactions(anime / "anime_history.dat"), True)
        found["anime-ratings"] = lambda: (
            read_interactions(anime / "anime_ratings.dat", min_rating=7),
            True,
        )
    return found


def ndcg(params: AlsParams, split: Split, binary: bool) -> float:
    return evaluate_model(AlsModel(params), split, [K], binary=binary).metrics[K]["ndcg"]


def in_group_share(params: AlsParams, data: Interactions, groups: int) -> float:
    """Share of top-10 items from the user's own hidden group (the planted answer)."""
    from recommender.evaluation.data import to_matrix

    train = to_matrix(data)
    model = AlsModel(params)
    model.fit(train)
    users = np.arange(len(data.user_ids))
    top = model.recommend(users, 10)
    user_group = np.array([int(u[1:]) % groups for u in data.user_ids])
    item_group = np.array([int(i[1:]) % groups for i in data.item_ids])
    valid = top >= 0
    return float((item_group[top[valid]] == np.repeat(user_group, valid.sum(axis=1))).mean())


GRID = [
    AlsParams(factors=f, regularization=r, alpha=a, iterations=15)
    for f in (32, 64, 128)
    for r in (0.05, 0.5, 2.0, 8.0, 32.0)
    for a in (1.0, 4.0, 16.0)
]


def part_defaults(names: list[str]) -> None:
    print("## Static defaults: validation NDCG@10 of a grid, relative to each data set's best")
    print()
    table: dict[str, list[float]] = {}
    for name in names:
        data, binary = datasets()[name]()
        validation = per_user_holdout(per_user_holdout(data).train)
        started = time.perf_counter()
        table[name] = [ndcg(p, validation, binary) for p in GRID]
        print(f"- {name}: {len(data):,} events, grid in {time.perf_counter() - started:.0f} s")
    ratios = np.array([np.array(v) / max(v) for v in table.values()])
    worst, mean = ratios.min(axis=0), ratios.mean(axis=0)
    order = np.lexsort((-mean, -worst))
    print()
    print("| factors | reg. | alpha | worst ratio | mean ratio | " + " | ".join(table) + " |")
    print("| ---: | ---: | ---: | ---: | ---: |" + " ---: |" * len(table))
    for k in [*order[:8], GRID.index(AlsParams(factors=64, regularization=0.05, alpha=1.0))]:
        p = GRID[k]
        cells = " | ".join(f"{ratios[d, k]:.2f}" for d in range(len(table)))
        setting = f"{p.factors} | {p.regularization:g} | {p.alpha:g}"
        print(f"| {setting} | {worst[k]:.2f} | {mean[k]:.2f} | {cells} |")
    print()
    print(f"chosen (best worst-case ratio, then mean): {GRID[order[0]]}")


def part_serve(names: list[str], daemon_budget: float, search_budget: float) -> None:
    print(f"## Test NDCG@{K}: defaults, the daemon (self-tuned {daemon_budget:g} s), full search "
          f"({search_budget:g} s)")  # fmt: skip
    print()
    print("| data | popularity | old defaults | new defaults | daemon | full search "
          "| daemon / full | daemon settings |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name in names:
        data, binary = datasets()[name]()
        split = per_user_holdout(data)
        pop = evaluate_model(Popularity(), split, [K], binary=binary).metrics[K]["ndcg"]
        setting, outcome = daemon_settings(split.train, budget_seconds=daemon_budget, binary=binary)
        served = AlsParams(**setting.params)
        best, _ = search_als(split.train, budget_seconds=search_budget, binary=binary)
        old, new = ndcg(OLD_DEFAULTS, split, binary), ndcg(AlsParams(), split, binary)
        daemon, full = ndcg(served, split, binary), ndcg(best, split, binary)
        settings = (
            f"{served.factors}, reg. {served.regularization:.3g}, alpha {served.alpha:.3g}, "
            f"{served.iterations} it." + ("" if outcome.adopted else " (kept defaults)")
        )
        print(f"| {name} | {pop:.4f} | {old:.4f} | {new:.4f} | {daemon:.4f} | {full:.4f} | "
              f"{daemon / full:.0%} | {settings} |", flush=True)  # fmt: skip
        if name.startswith("planted"):
            groups = {"planted": 10, "planted-sparse": 40, "planted-dense": 5}[name]
            shares = [in_group_share(p, data, groups) for p in (OLD_DEFAULTS, AlsParams(), served)]
            print(f"|  ↳ in-group share of top-10 | | {shares[0]:.0%} | {shares[1]:.0%} | "
                  f"{shares[2]:.0%} | | | |")  # fmt: skip


def part_budget(names: list[str], budgets: list[float]) -> None:
    print(f"## Daemon quality vs tuning budget (test NDCG@{K}; seconds of one core)")
    print()
    print("| data | " + " | ".join(f"{b:g} s" for b in budgets) + " |")
    print("| --- |" + " ---: |" * len(budgets))
    for name in names:
        data, binary = datasets()[name]()
        split = per_user_holdout(data)
        cells = []
        for budget in budgets:
            setting, outcome = daemon_settings(split.train, budget_seconds=budget, binary=binary)
            served = AlsParams(**setting.params)
            cells.append(f"{ndcg(served, split, binary):.4f} ({len(outcome.trials)} trials)")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def part_search(names: list[str], budgets: list[float]) -> None:
    """Same validation data, same budget: the best setting each search finds, scored on test."""
    from recommender.tuning import tune

    print(f"## Search strategies at equal budget (test NDCG@{K} of the setting each picks)")
    print()
    print("| data | budget | random search | optuna TPE + median pruning |")
    print("| --- | ---: | ---: | ---: |")
    for name in names:
        data, binary = datasets()[name]()
        split = per_user_holdout(data)
        for budget in budgets:
            random_best, trials = search_als(split.train, budget_seconds=budget, binary=binary)
            outcome = tune(
                window_events(split.train, binary=binary),
                current=Setting("als", AlsParams().to_dict()),
                budget_seconds=budget,
                seed=42,
            )
            print(
                f"| {name} | {budget:g} s | {ndcg(random_best, split, binary):.4f} "
                f"({len(trials)} trials) | "
                f"{ndcg(AlsParams(**outcome.best.params), split, binary):.4f} "
                f"({len(outcome.trials)} trials, "
                f"{sum(t.state == 'pruned' for t in outcome.trials)} pruned) |",
                flush=True,
            )


def replay_gate(data: Interactions, *, every: int, window: int, planted_bad: bool) -> dict:
    """Replay ``data`` in time order; retrain every ``every`` events and ask the gate, exactly as
    the builder does (held-out = events the serving model has not seen, by offset)."""
    from recommender.events import format_event, parse_values
    from recommender.models.als_training import solve_users, train_als
    from recommender.quality import GateModel, compare_models
    from recommender.window import InteractionWindow

    # Without timestamps a file is grouped by user, which no live stream is: interleave at random.
    order = (
        np.argsort(data.timestamps, kind="stable")
        if data.timestamps is not None
        else np.random.default_rng(1).permutation(len(data))
    )
    values = [
        format_event(data.user_ids[u], data.item_ids[i])
        for u, i in zip(data.users[order].tolist(), data.items[order].tolist(), strict=True)
    ]
    params = AlsParams()
    w = InteractionWindow(window)
    serving = None
    positions: dict[int, int] = {}
    counts = {"accept": 0, "abstain": 0, "refuse": 0, "refused_bad": 0, "bad": 0}
    rng = np.random.default_rng(0)
    for lo in range(0, len(values), every):
        batch = parse_values(values[lo : lo + every])
        n = len(batch)
        offsets = np.arange(lo, lo + n, dtype=np.int64)
        w.append(batch, timestamps_ms=offsets, partitions=np.zeros(n, np.int64), offsets=offsets)
        matrix = w.matrix(holdout_from=positions if serving else None, max_holdout=5000)
        if serving is None or matrix.train_items is None:
            fitted = train_als(matrix.user_items, params)
        else:
            fitted = train_als(matrix.train_items, params)
            factors = fitted.item_factors
            bad = planted_bad and rng.random() < 0.5
            if bad:  # a deliberately broken model: shuffled item factors
                factors = factors[rng.permutation(factors.shape[0])]
                counts["bad"] += 1
            train = matrix.train_items
            candidate = GateModel(
                list(matrix.item_ids), factors,
                np.bincount(train.indices, minlength=train.shape[1]), params.alpha,
                params.regularization,
            )  # fmt: skip
            verdict = compare_models(
                candidate, serving, list(matrix.item_ids), train, matrix.holdout_users,
                matrix.holdout_items, matrix.holdout_weights, max_drop=0.2,
            )  # fmt: skip
            counts[verdict.decision] += 1
            if verdict.refused:
                counts["refused_bad"] += bad
                continue
            fitted = type(fitted)(
                solve_users(fitted.item_factors, matrix.user_items, params),
                fitted.item_factors,
                fitted.seconds,
            )
        serving = GateModel(
            list(matrix.item_ids), fitted.item_factors, matrix.popularity, params.alpha,
            params.regularization,
        )  # fmt: skip
        positions = {0: lo + n}
    return counts


def part_gate(names: list[str], every: int, window: int) -> None:
    print(f"## Gate decisions on replayed streams (retrain every {every:,} events, "
          f"window {window:,})")  # fmt: skip
    print()
    print("| data | planted bad models | retrains judged | accepted | abstained | refused | "
          "bad models refused |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        data, _ = datasets()[name]()
        if len(data) > 150_000:
            keep = np.zeros(len(data), bool)
            keep[:150_000] = True
            data = data.subset(keep)
        for bad in (False, True):
            c = replay_gate(data, every=every, window=window, planted_bad=bad)
            judged = c["accept"] + c["abstain"] + c["refuse"]
            print(f"| {name} | {'half of the retrains' if bad else 'none'} | {judged} | "
                  f"{c['accept']} | {c['abstain']} | {c['refuse']} | "
                  f"{c['refused_bad']} of {c['bad']} |", flush=True)  # fmt: skip


def drifting(users: int = 1500, per_user: int = 40, days: int = 40) -> Interactions:
    """Taste that changes: each user's events are spread over ``days`` and switch to another
    hidden group (100 items each, 85 % in-group) at a random moment in the middle half."""
    groups, size, day = 10, 100, 86_400
    rng = np.random.default_rng(11)
    who = np.repeat(np.arange(users), per_user)
    when = rng.integers(0, days * day, who.size)
    before = rng.integers(0, groups, users)
    after = (before + rng.integers(1, groups, users)) % groups
    switch = rng.integers(days * day // 4, 3 * days * day // 4, users)
    group = np.where(when < switch[who], before[who], after[who])
    in_group = rng.random(who.size) < 0.85
    items = np.where(
        in_group,
        group * size + rng.integers(0, size, who.size),
        rng.integers(0, groups * size, who.size),
    )
    return Interactions(
        who.astype(np.int64), items.astype(np.int64), np.ones(who.size, np.float32),
        when.astype(np.int64), [f"u{k}" for k in range(users)],
        [f"i{k}" for k in range(groups * size)],
        f"drifting taste: {users} users x {per_user} over {days} days, one switch of group each",
    )  # fmt: skip


def part_decay(names: list[str], half_lives_days: list[float]) -> None:
    """Prequential replay (each event scored against the model a live system had) per half-life.
    ``names``: movielens (ratings >= 4: real timestamps) and/or drift (planted taste changes)."""
    from recommender.evaluation.prequential import run_prequential

    shared = datasets_dir()
    cases: dict[str, tuple[Callable[[], Interactions], int, int]] = {
        "drift": (drifting, 30_000, 1000),
    }
    if shared is not None:
        ml = shared / "movielens-latest-small" / "ratings.csv"
        cases["movielens"] = (lambda: read_interactions(ml, min_rating=4), 20_000, 1000)
    for name in names:
        if name not in cases:
            print(f"(no {name} data for the decay study)")
            continue
        load, window, every = cases[name]
        data = load()
        print(f"## Time decay: prequential replay of {data.source}, window {window:,}, "
              f"retrain every {every:,}")  # fmt: skip
        print()
        print("| half-life | recall@10 of each next event | retrains |")
        print("| --- | ---: | ---: |")
        for days in [0.0, *half_lives_days]:
            half_life = None if days == 0 else int(days * 86_400_000)
            result = run_prequential(
                data, window_events=window, retrain_every=every, params=AlsParams(),
                half_life_ms=half_life,
            )  # fmt: skip
            label = "none (plain window)" if days == 0 else f"{days:g} days"
            print(f"| {label} | {float(result.hits.mean()):.4f} | {result.retrains} |", flush=True)
        print()


def part_daemon() -> None:
    """The real builder process on the embedded broker: seconds to the first and the tuned model."""
    from recommender.broker import EmbeddedBroker
    from recommender.kafka import KafkaSettings, create_topic
    from recommender.producer import produce_values
    from recommender.store import LocalStore

    print("## The daemon with default flags: time to a tuned model (real processes, 2 cores)")
    print()
    print("| data | events | first model | tuning decided | settings served | in-group share |")
    print("| --- | ---: | ---: | ---: | --- | ---: |")
    runs: list[tuple[str, Interactions, int | None]] = [
        ("planted", planted(2000, 30, 1000, 10, 0.85), 10)
    ]
    shared = datasets_dir()
    if shared is not None:
        ml = read_interactions(shared / "movielens-latest-small" / "ratings.csv")
        runs.append(("movielens (all 100k ratings as events)", ml, None))
    with EmbeddedBroker() as broker:
        kafka = KafkaSettings(broker.bootstrap_servers)
        for name, data, groups in runs:
            topic = f"t{abs(hash(name)) % 10**8}"
            create_topic(kafka, topic, partitions=4)
            order = (
                np.argsort(data.timestamps, kind="stable")
                if data.timestamps is not None
                else np.arange(len(data))
            )
            values = [
                f"{data.user_ids[u]}:{data.item_ids[i]}".encode()
                for u, i in zip(data.users[order].tolist(), data.items[order].tolist(), strict=True)
            ]
            producer = kafka.producer()
            produce_values(
                producer, topic, values, keys=[v.split(b":")[0] for v in values], progress=False
            )
            producer.flush(60)
            model_dir = Path(tempfile.mkdtemp()) / "model"
            started = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "recommender", "build", topic, str(len(values)),
                 str(len(values)), "-b", "--model-dir", str(model_dir), "--bootstrap-servers",
                 kafka.bootstrap_servers],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            # Done when the first tuning session has decided: adopted (then the next manifest
            # carries the tuned settings) or kept the defaults (nothing new to publish: the
            # decision is in the builder's status document).
            store, first, tuned = LocalStore(model_dir), None, None
            while time.monotonic() - started < 400 and tuned is None:
                version = store.latest()
                if version is not None:
                    manifest = store.read_manifest(version)
                    first = first or time.monotonic() - started
                    session = ((store.read_status() or {}).get("tuning") or {}).get("last")
                    if manifest.get("params_source") == "tuned":
                        tuned = (time.monotonic() - started, manifest, "adopted")
                    elif session is not None and not session["adopted"]:
                        tuned = (time.monotonic() - started, manifest, "kept the defaults")
                time.sleep(0.5)
            proc.terminate()
            proc.wait(30)
            if tuned is None:
                print(f"| {name} | {len(values):,} | {first or 0:.0f} s | no decision in 400 s "
                      "| | |", flush=True)  # fmt: skip
                continue
            seconds, manifest, decision = tuned
            p = AlsParams(**manifest["params"])
            share = f"{in_group_share(p, data, groups):.0%}" if groups else "-"
            print(f"| {name} | {len(values):,} | {first:.0f} s | {seconds:.0f} s ({decision}) | "
                  f"{p.factors}, reg. {p.regularization:.3g}, alpha {p.alpha:.3g}, "
                  f"{p.iterations} it. | {share} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = ["defaults", "serve", "budget", "search", "gate", "decay", "daemon"]
    parser.add_argument("--part", required=True, choices=parts)
    parser.add_argument("--data", help="comma-separated data set names (default: all found)")
    parser.add_argument("--daemon-budget", type=float, default=90.0)
    parser.add_argument("--search-budget", type=float, default=120.0)
    parser.add_argument("--gate-every", type=int, default=2000, help="events between retrains")
    parser.add_argument("--gate-window", type=int, default=20_000)
    args = parser.parse_args()
    limit_blas_threads()
    names = args.data.split(",") if args.data else list(datasets())
    print(f"Command: `.venv/bin/python bench/tuning.py {' '.join(sys.argv[1:])}` "
          f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)\n")  # fmt: skip
    if args.part == "defaults":
        part_defaults(names)
    elif args.part == "serve":
        part_serve(names, args.daemon_budget, args.search_budget)
    elif args.part == "budget":
        part_budget(names, [10, 30, 60, 90])
    elif args.part == "search":
        part_search(names, [20, 60])
    elif args.part == "gate":
        part_gate(names, args.gate_every, args.gate_window)
    elif args.part == "decay":
        part_decay(args.data.split(",") if args.data else ["movielens", "drift"], [1, 7, 30, 180])
    else:
        part_daemon()


if __name__ == "__main__":
    main()
