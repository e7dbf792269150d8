#!/usr/bin/env python3
"""Benchmarks of the online loop, printed as Markdown (copy it into BENCHMARKS.md).

    .venv/bin/python bench/online.py                    # all three (about 3 minutes)
    .venv/bin/python bench/online.py --only logging     # exposure logging's cost on /recommend
    .venv/bin/python bench/online.py --only join        # attribution throughput (events/s)
    .venv/bin/python bench/online.py --only power       # impressions interleaving vs A/B need

Uses the embedded broker unless KAFKA_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import bench_kafka, cpu_seconds, load, report, start_server, trained_snapshot, wait_http  # noqa: E402

from recommender.broker import free_port  # noqa: E402
from recommender.kafka import KafkaSettings, create_topic  # noqa: E402
from recommender.online.attribution import Attribution  # noqa: E402
from recommender.online.experiments import (  # noqa: E402
    ExperimentResults,
    ExperimentSpec,
    ab_arm,
    team_draft,
)
from recommender.online.exposures import Exposure, new_recommendation_id  # noqa: E402
from recommender.online.join import OnlineJoin  # noqa: E402


def bench_logging(kafka: KafkaSettings, seconds: float, concurrency: int, repeats: int) -> None:
    """The same snapshot (20k items) served twice, following the same topic, with exposure
    logging on and off, loaded in interleaved rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        topic = f"bench-online-{uuid.uuid4().hex[:8]}"
        create_topic(kafka, topic, partitions=4)
        trained_snapshot(1_000_000, Path(tmp), topic)
        follow = ["--bootstrap-servers", kafka.bootstrap_servers, "--topic", topic]
        ports = {"on": free_port(), "off": free_port()}
        procs = {
            "on": start_server(tmp, ports["on"], *follow, "--exposures-topic", f"{topic}-exp"),
            "off": start_server(tmp, ports["off"], *follow, "--exposures-topic", "off"),
        }
        try:
            for port in ports.values():
                wait_http(f"http://127.0.0.1:{port}/ready")
            rps: dict[str, list[float]] = {"on": [], "off": []}
            cpu: dict[str, list[float]] = {"on": [], "off": []}
            for _ in range(repeats):
                for name in ("off", "on"):
                    port = ports[name]

                    def url(k: int, port: int = port) -> str:
                        return f"http://127.0.0.1:{port}/recommend?user=u{k * 7919 % 50_000}&n=10"

                    before = cpu_seconds(procs[name].pid)
                    count, _, errors = asyncio.run(load(url, seconds, concurrency))
                    assert errors == 0
                    rps[name].append(count / seconds)
                    cpu[name].append(1e6 * (cpu_seconds(procs[name].pid) - before) / count)
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait()
    on, off = statistics.median(rps["on"]), statistics.median(rps["off"])
    report(
        f"### Exposure logging: `/recommend?n=10`, 20,000 items, {concurrency} clients, "
        f"{seconds:.0f} s a round, {repeats} rounds interleaved"
    )
    report()
    report("| exposures | median req/s | server CPU µs a request (median) |")
    report("| --- | ---: | ---: |")
    for name in ("off", "on"):
        report(
            f"| {name} | {statistics.median(rps[name]):,.0f} | {statistics.median(cpu[name]):.0f} |"
        )
    report()
    report(
        f"Logging costs {1 - on / off:.1%} of throughput (rounds: off "
        f"{', '.join(f'{r:,.0f}' for r in rps['off'])}; "
        f"on {', '.join(f'{r:,.0f}' for r in rps['on'])})."
    )
    report()


def bench_join(exposures: int, per_exposure: float) -> None:
    """The monitor's join alone: exposures of 10 items, then interactions (half of them of
    shown items), through OnlineJoin as the monitor feeds it."""
    rng = random.Random(1)
    users = [f"u{k}" for k in range(20_000)]
    shown = [
        Exposure(
            new_recommendation_id(),
            k * 10,
            rng.choice(users),
            tuple(f"i{rng.randrange(20_000)}" for _ in range(10)),
            "/recommend",
            1,
            "als",
        )
        for k in range(exposures)
    ]
    events = []
    for _ in range(int(exposures * per_exposure)):
        e = shown[rng.randrange(len(shown))]
        item = rng.choice(e.items) if rng.random() < 0.5 else f"i{rng.randrange(20_000)}"
        events.append((e.user, item, e.timestamp_ms + 1000))
    events.sort(key=lambda x: x[2])
    join = OnlineJoin(window_ms=30 * 60_000)
    started = time.perf_counter()
    for k, e in enumerate(shown):
        join.exposure(e, 0, k)
    middle = time.perf_counter()
    for k, (user, item, ts) in enumerate(events):
        join.interaction(user, item, 1.0, ts, 0, k)
    join.release(2**62)
    done = time.perf_counter()
    report(f"### Attribution: {exposures:,} exposures, {len(events):,} interactions (one core)")
    report()
    report(
        f"exposures: {exposures / (middle - started):,.0f}/s; interactions joined: "
        f"{len(events) / (done - middle):,.0f}/s; attributed "
        f"{join.counts['attributed']:,}; pending exposures {len(join.attribution):,}"
    )
    report()


def _ranking(group: int, rng: random.Random, quality: float, items: int = 400) -> list[str]:
    mine = [f"i{k}" for k in range(items) if k % 4 == group]
    other = [f"i{k}" for k in range(items) if k % 4 != group]
    rng.shuffle(mine)
    rng.shuffle(other)
    return [mine.pop() if rng.random() < quality else other.pop() for _ in range(10)]


def _verdict(
    mode: str, quality: tuple[float, float], impressions: int, seed: int
) -> dict[str, object]:
    rng = random.Random(seed)
    spec = ExperimentSpec(f"x{seed}", mode, 0.5, 0.0)  # type: ignore[arg-type]
    results = ExperimentResults(spec)
    join = Attribution(window_ms=10**12)
    for t in range(impressions):
        user = f"u{rng.randrange(2000)}"
        group = int(user[1:]) % 4
        a, b = _ranking(group, rng, quality[0]), _ranking(group, rng, quality[1])
        rec = new_recommendation_id()
        if mode == "interleave":
            items, credit = team_draft(a, b, 10, seed=rec)
            e = Exposure(rec, t, user, tuple(items), "/r", 1, "als", credit=tuple(credit),
                         experiment=spec.id)  # fmt: skip
        else:
            arm = ab_arm(spec, user)
            e = Exposure(rec, t, user, tuple(a if arm == "champion" else b), "/r", 1, "als",
                         arm=arm, experiment=spec.id)  # fmt: skip
        results.exposed(e)
        join.expose(e)
        for position, item in enumerate(e.items):
            if int(item[1:]) % 4 == group and rng.random() < 0.3 / (1 + position):
                results.attributed(join.interact(user, item, 1.0, t))
    return results.verdict(seed=seed)


def bench_power(runs: int) -> None:
    """Impressions until the better arm is named in at least 80 % of seeded runs, for a
    challenger whose hit rate is about 10 % higher (relative)."""
    quality = (0.50, 0.56)  # measured below: the hit rates these give
    report(
        f"### Interleaving vs A/B: impressions needed (challenger's hit rate ~10 % higher; "
        f"{runs} seeded runs per size; a verdict on a 99 % interval)"
    )
    report()
    report("| impressions | interleaving: challenger named | A/B: challenger named |")
    report("| ---: | ---: | ---: |")
    needed: dict[str, int | None] = {"interleave": None, "ab": None}
    for impressions in (500, 1000, 2000, 4000, 8000, 16000):
        row = []
        for mode in ("interleave", "ab"):
            wins = sum(
                _verdict(mode, quality, impressions, seed=1000 + k)["verdict"] == "challenger"
                for k in range(runs)
            )
            row.append(f"{wins}/{runs}")
            if needed[mode] is None and wins >= 0.8 * runs:
                needed[mode] = impressions
        report(f"| {impressions:,} | {row[0]} | {row[1]} |")
    arms = _verdict("ab", quality, 40_000, seed=1)["arms"]
    rates = {a: arms[a]["rate"] for a in ("champion", "challenger")}  # type: ignore[index]
    report()
    report(
        f"The planted arms' hit rates (A/B, 40,000 impressions): champion "
        f"{rates['champion']:.3f}, challenger {rates['challenger']:.3f} "
        f"(+{rates['challenger'] / rates['champion'] - 1:.1%})."
    )
    report(
        f"80 % power reached at: interleaving {needed['interleave'] or '> 16,000'}, A/B "
        f"{needed['ab'] or '> 16,000'} impressions."
    )
    report()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=["logging", "join", "power"], action="append")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20, help="seeded runs per size (power)")
    args = parser.parse_args()
    sections = set(args.only or ["logging", "join", "power"])
    report(f"Command: `{' '.join(['.venv/bin/python', 'bench/online.py', *sys.argv[1:]])}`")
    report()
    report(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    report()
    if "logging" in sections:
        with bench_kafka() as kafka:
            bench_logging(kafka, args.seconds, args.concurrency, args.repeats)
    if "join" in sections:
        bench_join(200_000, 1.0)
    if "power" in sections:
        bench_power(args.runs)


if __name__ == "__main__":
    main()
