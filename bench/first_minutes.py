#!/usr/bin/env python3
"""The first two minutes of a real builder with default flags: seconds to its first model and to
the first family its self-tuning adopts, and how good the model it serves at 120 s is against the
best tuned family, on every data set and protocol of EVALUATION.md, printed as Markdown.

    .venv/bin/python bench/first_minutes.py                        # every data set, both protocols
    .venv/bin/python bench/first_minutes.py --data ml-likes --protocols last --at 120 --until 240

For each data set and protocol: the split of bench/families.py (seed 42); the training events
published in time order to a topic of the embedded broker; then ``recommender build TOPIC N N -b``
with nothing else (default flags: ``--model auto``, self-tuning on, 90 s budget) started as a
process. At ``--at`` seconds after its start the newest published snapshot is loaded as the
server loads it and scored on the test users (full ranking, the user's training items left out,
NDCG@10). The best tuned family's NDCG@10 on the same split and users comes from EVALUATION.md's
table "What the daemon serves, against the best family" (bench/families.py --part quality: 16
optuna trials per family on validation); the test users must match in number. The builder runs
until its first tuning session has decided or ``--until`` seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from families_lib import PROTOCOLS, ROOT, Dataset, Task, datasets, ranking, task

from recommender.blas import limit_blas_threads
from recommender.broker import EmbeddedBroker
from recommender.kafka import KafkaSettings, create_topic
from recommender.models import History, LatentModel, family_of
from recommender.producer import produce_values
from recommender.ratings import RatingScale
from recommender.serving.model import RecommenderModel
from recommender.snapshot import load_published
from recommender.store import LocalStore

#: The rating scale of the data sets given as ratings (what their events carry).
SCALES = {"ml-ratings": "0.5..5"}


def best_tuned(evaluation: Path) -> dict[tuple[str, str], tuple[str, float, int]]:
    """(data, protocol) -> (best tuned family, its NDCG@10, test users), from EVALUATION.md."""
    text = evaluation.read_text()
    table = text.split("### What the daemon serves, against the best family", 1)[1]
    found = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and re.fullmatch(r"[\d,]+", cells[2]):
            found[(cells[0], cells[1])] = (
                cells[5],
                float(cells[6]),
                int(cells[2].replace(",", "")),
            )
        elif found and not line.startswith("|"):
            break
    return found


class ServedSnapshot:
    """A published snapshot scored like bench's families (``score(histories)``): each test user
    is looked up by id in the snapshot, as the server does, and its items mapped to the task's."""

    def __init__(self, model: RecommenderModel, t: Task) -> None:
        self.model = model
        self.user_ids = t.split.train.user_ids
        ours = {item: col for col, item in enumerate(t.split.train.item_ids)}
        pairs = [(c, ours[i]) for c, i in enumerate(model.item_ids) if i in ours]
        self.model_cols = np.array([p[0] for p in pairs], np.int64)
        self.task_cols = np.array([p[1] for p in pairs], np.int64)
        self.n_items = len(t.split.train.item_ids)
        self.popular = model.popularity.astype(np.float32)

    def score(self, histories: list[History]) -> np.ndarray:
        out = np.full((len(histories), self.n_items), -np.inf, np.float32)
        for row, h in enumerate(histories):
            history = self.model.history(self.user_ids[h.row])
            fitted = self.model.fitted
            key: Any = fitted.vector(history) if isinstance(fitted, LatentModel) else history
            known = key is not None and (isinstance(key, np.ndarray) or history.cols.size > 0)
            scores = self.model.score(key) if known else self.popular
            out[row, self.task_cols] = scores[self.model_cols]
        return out


@dataclass
class Run:
    first_model: float | None = None
    adopted: tuple[float, str] | None = None  # seconds, family
    decided: tuple[float, str] | None = None  # seconds, what the first session decided
    at: tuple[int, str, float] | None = None  # version, family, NDCG@10 served at --at


def publish(kafka: KafkaSettings, dataset: Dataset, t: Task) -> tuple[str, int]:
    train = t.split.train
    order = (
        np.argsort(train.timestamps, kind="stable")
        if train.timestamps is not None
        else np.arange(len(train))
    )
    users = [train.user_ids[u] for u in train.users[order].tolist()]
    items = [train.item_ids[i] for i in train.items[order].tolist()]
    if dataset.name in SCALES:  # ratings back from their weights (see RatingScale.weights)
        scale = RatingScale.parse(SCALES[dataset.name])
        middle = (scale.low + scale.high) / 2.0
        ratings = (train.weights[order] + middle).tolist()
        values = [f"{u}:{i}:{r:g}".encode() for u, i, r in zip(users, items, ratings, strict=True)]
    else:
        values = [f"{u}:{i}".encode() for u, i in zip(users, items, strict=True)]
    topic = f"first-{dataset.name}-{time.monotonic_ns()}"
    create_topic(kafka, topic, partitions=4)
    producer = kafka.producer()
    produce_values(producer, topic, values, keys=[v.split(b":")[0] for v in values], progress=False)
    producer.flush(60)
    return topic, len(values)


def watch(kafka: KafkaSettings, dataset: Dataset, t: Task, at: float, until: float) -> Run:
    topic, events = publish(kafka, dataset, t)
    work = Path(tempfile.mkdtemp(prefix="first-minutes-"))
    extra = ["--ratings", SCALES[dataset.name]] if dataset.name in SCALES else []
    command = [sys.executable, "-m", "recommender", "build", topic, str(events), str(events), "-b",
               "--model-dir", str(work / "model"), "--bootstrap-servers",
               kafka.bootstrap_servers, *extra]  # fmt: skip
    log = (work / "builder.log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    store, run, first_family = LocalStore(work / "model"), Run(), None
    try:
        while time.monotonic() - started < until and (run.decided is None or run.at is None):
            elapsed = time.monotonic() - started
            version = store.latest()
            if version is not None:
                manifest = store.read_manifest(version)
                family = family_of(manifest)
                if run.first_model is None:
                    run.first_model, first_family = elapsed, family
                if run.adopted is None and manifest.get("params_source") == "tuned":
                    run.adopted = (elapsed, family)
                session = ((store.read_status() or {}).get("tuning") or {}).get("last")
                if run.decided is None and session is not None:
                    run.decided = (elapsed, "adopted" if session["adopted"] else "kept defaults")
                if run.at is None and elapsed >= at:
                    model = RecommenderModel(load_published(store, version), ann=None)
                    ndcg, _ = ranking(ServedSnapshot(model, t), t)
                    run.at = (version, model.family, float(np.nanmean(ndcg)))
            time.sleep(0.25)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    print(
        f"  {dataset.name}: first family {first_family}, log {work / 'builder.log'}",
        file=sys.stderr,
    )
    shutil.rmtree(work / "model", ignore_errors=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="", help="comma-separated data sets (default: all)")
    parser.add_argument("--protocols", default="random,last")
    parser.add_argument("--at", type=float, default=120.0, help="seconds: score what is served")
    parser.add_argument("--until", type=float, default=240.0, help="seconds: stop the builder")
    parser.add_argument("--evaluation", type=Path, default=ROOT / "EVALUATION.md")
    args = parser.parse_args()
    limit_blas_threads()
    reference = best_tuned(args.evaluation)
    print(f"Command: `.venv/bin/python bench/first_minutes.py {' '.join(sys.argv[1:])}`\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}, load average "
        f"{os.getloadavg()[0]:.1f} at the start\n"
    )
    lines = [
        f"| data | protocol | events | first model s | first adoption s (family) | first session "
        f"decided s | served at {args.at:.0f} s | its NDCG@10 | best tuned family | its NDCG@10 "
        f"| served / best |",
        "| --- | --- | ---: | ---: | --- | --- | --- | ---: | --- | ---: | ---: |",
    ]
    with EmbeddedBroker() as broker:
        kafka = KafkaSettings(broker.bootstrap_servers)
        for dataset in datasets([n for n in args.data.split(",") if n]):
            for protocol in args.protocols.split(","):
                if (dataset.name, protocol) not in reference:
                    continue  # e.g. leave-last-out on the anime sets (no time)
                family, best, users = reference[(dataset.name, protocol)]
                t = task(PROTOCOLS[protocol](dataset.data, 42), dataset)
                assert t.users.size == users, (dataset.name, protocol, t.users.size, users)
                run = watch(kafka, dataset, t, args.at, args.until)
                adopted = f"{run.adopted[0]:.0f} ({run.adopted[1]})" if run.adopted else "none"
                decided = (
                    f"{run.decided[0]:.0f} ({run.decided[1]})"
                    if run.decided
                    else f"not in {args.until:.0f}"
                )
                served, ndcg = ("-", float("nan"))
                if run.at is not None:
                    served, ndcg = f"v{run.at[0]} {run.at[1]}", run.at[2]
                lines.append(
                    f"| {dataset.name} | {protocol} | {len(t.split.train):,} | "
                    f"{run.first_model or float('nan'):.0f} | {adopted} | {decided} | {served} | "
                    f"{ndcg:.3f} | {family} | {best:.3f} | {ndcg / best:.0%} |"
                )
                print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
