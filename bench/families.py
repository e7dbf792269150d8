"""Evidence for the model families (recommender/models/): quality on every data set we have, the
defaults, the fit and score costs.

    .venv/bin/python bench/families.py --part quality   # NDCG/recall@10, both protocols, vs ALS
    .venv/bin/python bench/families.py --part defaults  # each family's grid on validation only
    .venv/bin/python bench/families.py --part weighting # learn from likes as 1, or their weights
    .venv/bin/python bench/families.py --part ease-scale      # EASE fit time and memory vs items
    .venv/bin/python bench/families.py --part ease-precision  # float32 against float64
    .venv/bin/python bench/families.py --part score-speed     # score() per history, 20k/200k
    .venv/bin/python bench/families.py --part fit-scale       # sparse families' fits, cost()
    .venv/bin/python bench/families.py --part knn-speed       # ours against implicit's kNN
    .venv/bin/python bench/families.py --part sasrec-estimate # a transformer block's throughput
    .venv/bin/python bench/families.py --part headline  # tables from --part quality's results
    .venv/bin/python bench/families.py --part report    # --part quality's tables again

Data, protocols and scoring: bench/families_lib.py; the parts: bench/families_parts.py (quality)
and bench/families_cost.py (cost). BLAS runs single-threaded (as the builder
runs it); results go to --out as JSON, tables to stdout as Markdown.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from families_lib import (
    CANDIDATES,
    PROTOCOLS,
    Dataset,
    Oracle,
    Popularity,
    datasets,
    measured_fit,
    planted_sessions,
    ranking,
    task,
    tune,
)

from recommender.blas import limit_blas_threads
from recommender.synthetic import TasteModel
from recommender.user_metrics import paired_bootstrap

OUT = Path("/work/scratch/families/results")


def taste_oracle(dataset: Dataset) -> Any:
    """planted-tastes' answer: P(item | user's group) of the generator (bench/tuning.py's)."""
    taste = TasteModel(users=2000, items=1000, groups=10, in_group=0.85)
    per_group = -(-taste.items // taste.groups)
    within, overall = taste._zipf(per_group), taste._zipf(taste.items)
    items = np.arange(taste.items)
    table = np.empty((taste.groups, taste.items), np.float32)
    for group in range(taste.groups):
        inside = np.where(items % taste.groups == group, within[items // taste.groups], 0.0)
        table[group] = taste.in_group * inside + (1 - taste.in_group) * overall

    class TasteOracle:
        def score(self, hs):
            return np.vstack([table[h.row % taste.groups] for h in hs])

    return TasteOracle()


def row(label, setting, ndcg, recall, fit_s=None, peak=None, params=None, estimate=None):
    return {
        "model": label,
        "settings": setting,
        "ndcg": float(np.nanmean(ndcg)),
        "recall": float(np.nanmean(recall)),
        "per_user_ndcg": ndcg.tolist(),
        "fit_s": fit_s,
        "peak_mib": peak,
        "params": params or {},
        "estimate_mib_s": estimate,
    }


def part_quality(names, protocols, trials: int, out: Path) -> None:
    for dataset in datasets(names):
        for protocol in protocols:
            if protocol == "last" and not dataset.ordered:
                print(f"\n{dataset.name}, last: skipped (no event time in the file)")
                continue
            started = time.perf_counter()
            split = PROTOCOLS[protocol](dataset.data, 42)
            t = task(split, dataset)
            validation = task(PROTOCOLS[protocol](split.train, 43), dataset)
            rows = [row("popularity", "-", *ranking(Popularity(t.data), t))]
            # The planted next item is the answer to leave-last-out only (a random holdout hides
            # items from anywhere in the walk).
            if dataset.name == "planted-sessions" and protocol == "last":
                rows.append(
                    row("oracle (planted)", "-", *ranking(Oracle(planted_sessions()[1]), t))
                )
            if dataset.name == "planted-tastes":
                rows.append(row("oracle (planted)", "-", *ranking(taste_oracle(dataset), t)))
            for candidate in CANDIDATES:
                # EASE has one setting: half the trials find it as well.
                tuned, _ = tune(
                    candidate, validation, trials // 2 if candidate.label == "EASE" else trials
                )
                for setting, params in (("default", {}), ("tuned", tuned)):
                    model, seconds, peak = measured_fit(candidate, t.data, params)
                    rows.append(
                        row(
                            candidate.label,
                            setting,
                            *ranking(model, t),
                            seconds,
                            peak,
                            params,
                            candidate.cost(t.data, params),
                        )
                    )
                print(f"  {dataset.name}/{protocol}: {candidate.label} done", flush=True)
            result = {
                "dataset": dataset.name,
                "source": dataset.data.source,
                "protocol": protocol,
                "description": split.description,
                "events": len(dataset.data),
                "users": dataset.data.n_users,
                "items": dataset.data.n_items,
                "test_users": int(t.users.size),
                "validation_users": int(validation.users.size),
                "trials": trials,
                "seconds": time.perf_counter() - started,
                "rows": rows,
            }
            out.mkdir(parents=True, exist_ok=True)
            (out / f"quality-{dataset.name}-{protocol}.json").write_text(json.dumps(result))
            print_quality(result)


def print_quality(result: dict) -> None:
    rows = result["rows"]
    als = {r["settings"]: np.array(r["per_user_ndcg"]) for r in rows if r["model"] == "ALS"}
    print(
        f"\n### {result['dataset']}, {result['protocol']}: {result['source']}; "
        f"{result['description']}; {result['test_users']:,} test users "
        f"({result['validation_users']:,} validation users, {result['trials']} trials per "
        f"family; {result['seconds']:.0f} s)\n"
    )
    print("| model | settings | NDCG@10 | recall@10 | Δ NDCG vs ALS [95 % CI] | fit s | peak MiB |")
    print("| --- | --- | ---: | ---: | --- | ---: | ---: |")
    for r in rows:
        base = als.get(r["settings"], als.get("default"))
        compare = "" if r["model"] == "ALS" else _difference(np.array(r["per_user_ndcg"]), base)
        fit = "" if r["fit_s"] is None else f"{r['fit_s']:.2f}"
        peak = "" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        print(
            f"| {r['model']} | {r['settings']} | {r['ndcg']:.4f} | {r['recall']:.4f} | "
            f"{compare} | {fit} | {peak} |"
        )


def _difference(candidate: np.ndarray, baseline: np.ndarray | None) -> str:
    if baseline is None:
        return ""
    c = paired_bootstrap(candidate, baseline)
    mark = "**" if c.low > 0 or c.high < 0 else ""
    return f"{mark}{c.difference:+.4f} [{c.low:+.4f}, {c.high:+.4f}]{mark}"


ORDER = ["ml-likes", "ml-ratings", "anime-history", "anime-ratings", "planted-tastes",
         "planted-sessions"]  # fmt: skip


def print_headline(out: Path, metric: str) -> None:
    """One table per setting: models x (data set, protocol), the metric at 10; with NDCG, a cell
    is bold where the paired-bootstrap 95 % interval of its difference to ALS excludes 0 (▲ above
    ALS, ▼ below)."""
    results = {}
    for path in out.glob("quality-*.json"):
        r = json.loads(path.read_text())
        results[(r["dataset"], r["protocol"])] = r
    columns = sorted(results, key=lambda k: (ORDER.index(k[0]), k[1] != "random"))
    models = [m for m in dict.fromkeys(r["model"] for r in results[columns[0]]["rows"])]
    models += [
        m for c in columns for m in (r["model"] for r in results[c]["rows"]) if m not in models
    ]
    models = list(dict.fromkeys(models))
    for setting in ("default", "tuned"):
        print(
            f"\n{metric}@10, {setting} settings (test users per column: "
            + ", ".join(f"{d}/{p} {results[(d, p)]['test_users']:,}" for d, p in columns)
            + ")\n"
        )
        print("| model | " + " | ".join(f"{d} {p}" for d, p in columns) + " |")
        print("| --- |" + " ---: |" * len(columns))
        for model in models:
            cells = []
            for c in columns:
                rows = {(r["model"], r["settings"]): r for r in results[c]["rows"]}
                r = rows.get((model, setting)) or rows.get((model, "-"))
                if r is None:
                    cells.append("-")
                    continue
                base = rows[("ALS", setting)]
                text = f"{r[metric]:.3f}"
                if metric == "ndcg" and model != "ALS":
                    diff = paired_bootstrap(
                        np.array(r["per_user_ndcg"]), np.array(base["per_user_ndcg"])
                    )
                    if diff.low > 0:
                        text = f"**{text}** ▲"
                    elif diff.high < 0:
                        text = f"{text} ▼"
                cells.append(text)
            print(f"| {model} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", required=True)
    parser.add_argument("--data", default="", help="comma-separated data sets (default: all)")
    parser.add_argument("--protocols", default="random,last")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--sizes", default="", help="ease-scale: catalogue sizes")
    parser.add_argument("--threads", type=int, default=1, help="ease-scale: BLAS threads")
    parser.add_argument("--grid", default="1", help="defaults: grid round (1 or 2)")
    parser.add_argument("--families", default="", help="defaults: table labels to run")
    args = parser.parse_args()
    limit_blas_threads()
    names = [n for n in args.data.split(",") if n]
    if args.part == "quality":
        part_quality(names, args.protocols.split(","), args.trials, args.out)
    elif args.part == "headline":
        print_headline(args.out, "ndcg")
        print_headline(args.out, "recall")
    elif args.part == "report":
        for path in sorted(args.out.glob("quality-*.json")):
            print_quality(json.loads(path.read_text()))
    else:
        from families_cost import PARTS as COST
        from families_parts import PARTS as QUALITY

        {**QUALITY, **COST}[args.part](names, args)


if __name__ == "__main__":
    main()
