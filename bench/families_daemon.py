#!/usr/bin/env python3
"""What the daemon serves with default flags, against the best model family tuned on validation
(issue 15's target: at least 95 % of its NDCG@10 on every data set and protocol, after the first
tuning session, about 2 minutes), printed as Markdown.

    .venv/bin/python bench/families_daemon.py                     # every data set, both protocols
    .venv/bin/python bench/families_daemon.py --data ml-likes --protocols last --budget 90

For each data set and protocol: the same split as bench/families.py --part quality (seed 42); the
daemon's first tuning session on the training events exactly as the builder runs it on its window
(``recommender.evaluation.daemon.daemon_settings``: ALS defaults first, every family searched,
adopted only on its confirmation interval) within ``--budget`` seconds of one core; the setting it
serves fitted on the training events and scored on the test users (full ranking, NDCG@10). The
best family is the best *tuned* row of ``--results`` (bench/families.py --part quality's JSON,
16 optuna trials per family on validation), same split and users, so the two are paired: the
ratio, and a paired bootstrap interval of the difference (2,000 resamples over users).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from families_lib import PROTOCOLS, datasets, ranking, task

from recommender.blas import limit_blas_threads
from recommender.evaluation.daemon import daemon_settings
from recommender.models import FAMILIES, make_family
from recommender.user_metrics import paired_bootstrap

RESULTS = Path("/work/scratch/families/results")
LEARNT = ("ALS", "EASE", "RP3beta", "item-kNN cosine", "item-kNN BM25", "sequence")


def best_tuned(result: dict) -> dict:
    rows = [r for r in result["rows"] if r["settings"] == "tuned" and r["model"] in LEARNT]
    return max(rows, key=lambda r: r["ndcg"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="", help="comma-separated data sets (default: all)")
    parser.add_argument("--protocols", default="random,last")
    parser.add_argument("--budget", type=float, default=90.0, help="the builder's --tune-budget")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    limit_blas_threads()
    print(f"Command: `.venv/bin/python bench/families_daemon.py {' '.join(sys.argv[1:])}`\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}\n"
    )
    header = (
        "| data | protocol | test users | daemon serves | its NDCG@10 | best tuned family | its "
        "NDCG@10 | share | difference (95 % interval) | ≥ 95 % | session s (trials) |"
    )
    lines = [header, "| --- | --- | ---: | --- | ---: | --- | ---: | ---: | --- | --- | ---: |"]
    names = [n for n in args.data.split(",") if n]
    for dataset in datasets(names):
        for protocol in args.protocols.split(","):
            path = args.results / f"quality-{dataset.name}-{protocol}.json"
            if not path.exists():
                continue  # e.g. leave-last-out on the anime sets (no time)
            result = json.loads(path.read_text())
            best = best_tuned(result)
            split = PROTOCOLS[protocol](dataset.data, 42)
            t = task(split, dataset)
            started = time.perf_counter()
            setting, outcome = daemon_settings(
                split.train,
                budget_seconds=args.budget,
                binary=dataset.binary,
                families=tuple(FAMILIES),
            )
            session = time.perf_counter() - started
            family = make_family(setting.family)
            model = family.fit(t.data, family.validate(setting.params))
            ndcg, _ = ranking(model, t)
            theirs = np.asarray(best["per_user_ndcg"], np.float64)
            assert theirs.size == ndcg.size, (dataset.name, protocol, theirs.size, ndcg.size)
            comparison = paired_bootstrap(ndcg, theirs, seed=0)
            share = float(np.nanmean(ndcg)) / best["ndcg"]
            served = f"{setting.family}{' (adopted)' if outcome.adopted else ' (defaults)'}"
            lines.append(
                f"| {dataset.name} | {protocol} | {ndcg.size:,} | {served} | "
                f"{np.nanmean(ndcg):.3f} | {best['model']} | {best['ndcg']:.3f} | {share:.0%} | "
                f"{comparison.difference:+.3f} [{comparison.low:+.3f}, {comparison.high:+.3f}] | "
                f"{'yes' if share >= 0.95 else '**no**'} | {session:.0f} "
                f"({len(outcome.trials)}) |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
            print(f"  {outcome.reason}", file=sys.stderr, flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
