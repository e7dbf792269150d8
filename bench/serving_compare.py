#!/usr/bin/env python3
"""Serving throughput of several checkouts side by side: `/recommend` against `/health`, per tree.

    .venv/bin/python bench/serving_compare.py --trees ../before .     # defaults: 20k and 200k
    .venv/bin/python bench/serving_compare.py --trees ../before . --sizes 170000 --families als \
        --experiment off
    .venv/bin/python bench/serving_compare.py --trees ../before . --sizes 20000 --families als,knn \
        --experiment on --rounds 7

For each catalogue size, one synthetic window (bench/scale.py's `fill_window`: taste groups,
nearly every item occurs) and one snapshot per model family, fitted with its defaults (EASE only
up to 20,000 items: its items x items matrix is 4 n² bytes). For each (size, family, experiment)
every tree serves that same snapshot: one `recommender serve` per tree, all started at once on
their own ports, each with the tree on PYTHONPATH and the tree as its working directory, and
nothing of the installed checkout (see ``ISOLATE``; where `recommender` comes from is checked
before anything is timed). After an untimed warm-up (the first requests touch the mapped arrays
and the graph), rounds interleaved across trees (every other round in reverse order):
`/recommend?user=...&n=10` for the same known users (20-50 window items each) from 16 concurrent
clients (bench/run.py's load loop), then `/health` from the same clients. `/health` costs a
server its HTTP and middleware work only, so recommend/health, the share of that rate left once
a recommendation is computed, cancels part of the machine's drift (the load generator shares the
cores, and the machine may be shared); "vs first tree" divides each tree's figure by the first
tree's. Server CPU µs a request (the server process's CPU time over the requests it answered in
a round) is usually the steadier figure: req/s is capped by the load generator and by whatever
else runs, CPU a request much less so.

`--experiment on`: the servers also get `--challenger-model-dir` (a second store holding ALS
with 8 factors, a differently shaped challenger) and `--experiment interleave`, so every answer
is both models' rankings merged by team draft. Trees without experiments (no such flags in
`recommender serve --help`) skip those rows, and trees without model families serve ALS only.

Fixed for every tree, so that only its code differs: the same snapshot files (ALS's without the
`recent_*` arrays, which ALS never reads and snapshots before model families do not have),
servers that follow no Kafka (no fresh events; answers get their recommendation id, nothing is
produced, as in bench/families_serving.py), and OMP_NUM_THREADS=1 for the servers, so each
builds the same HNSW graph above 50,000 items (a multi-threaded build need not be deterministic,
and a different graph would show as a difference between trees). Figures are medians over rounds of
this one run; compare ratios, not req/s from separate runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from families_serving import EASE_MAX_ITEMS  # noqa: E402
from run import cpu_seconds, load, report, wait_http  # noqa: E402
from scale import fill_window  # noqa: E402

from recommender.blas import limit_blas_threads  # noqa: E402
from recommender.broker import free_port  # noqa: E402
from recommender.evaluation.families import LABELS  # noqa: E402
from recommender.models import ALIASES, make_family  # noqa: E402
from recommender.snapshot import RECENT_ARRAYS, publish_snapshot, snapshot_arrays  # noqa: E402

CHALLENGER_FACTORS = 8
EXPERIMENTS = ("off", "on")

#: First in every process run for a tree: an editable install of the project (a setuptools
#: finder on sys.meta_path) would otherwise supply any module the tree lacks from the installed
#: checkout, silently (a tree from before model families would find today's recommender.models).
ISOLATE = """
import sys
sys.meta_path[:] = [
    f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable_")
]
"""
#: `python -m recommender ...` for a tree, isolated.
RUN_MODULE = (
    ISOLATE
    + """
import runpy
sys.argv[0] = "recommender"
runpy.run_module("recommender", run_name="__main__", alter_sys=True)
"""
)
#: Run for each tree: where `recommender` comes from and what that tree serves.
PROBE = (
    ISOLATE
    + """
import json, subprocess
import recommender
try:
    from recommender.models import FAMILIES
    families = sorted(FAMILIES)
except ImportError:  # before model families: ALS only
    families = ["als"]
serve_help = subprocess.run(
    [sys.executable, "-c", sys.argv[1], "serve", "--help"],
    capture_output=True, text=True, check=True,
).stdout
experiments = "--challenger-model-dir" in serve_help and "interleave" in serve_help
print(json.dumps({"module": recommender.__file__, "families": families,
                  "experiments": experiments}))
"""
)


@dataclass(frozen=True)
class Tree:
    """A checkout to serve from, and what its `recommender serve` can do."""

    path: Path
    label: str
    families: frozenset[str]
    experiments: bool

    def env(self) -> dict[str, str]:
        return tree_env(self.path)


def tree_env(path: Path) -> dict[str, str]:
    """The environment a tree's processes run in: its code first; one OpenMP thread (the HNSW
    graph built the same way in every tree)."""
    return {**os.environ, "PYTHONPATH": str(path), "OMP_NUM_THREADS": "1"}


def probe_tree(path: Path) -> Tree:
    """What the checkout at ``path`` serves; fails unless its own `recommender` is imported."""
    path = path.resolve()
    if not (path / "recommender" / "__init__.py").is_file():
        raise SystemExit(f"{path}: not a checkout of this project (no recommender/)")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, RUN_MODULE],
        cwd=path,
        env=tree_env(path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise SystemExit(f"{path}: probing its recommender failed:\n{out.stderr}")
    found = json.loads(out.stdout.strip().splitlines()[-1])
    module = Path(found["module"]).resolve()
    if not module.is_relative_to(path):
        raise SystemExit(f"{path}: `import recommender` found {module} instead")
    commit = subprocess.run(
        ["git", "-C", str(path), "log", "-1", "--format=%h"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    label = f"{path.name} ({commit or 'no git'}{', modified' if dirty else ''})"
    return Tree(path, label, frozenset(found["families"]), bool(found["experiments"]))


#: Run for each tree and snapshot: whether that tree's snapshot reader takes it (else its server
#: would reject it and never be ready).
LOADS = (
    ISOLATE
    + """
from pathlib import Path
from recommender.snapshot import load_snapshot
for path in sys.argv[1:]:
    load_snapshot(Path(path) / "v000000000001")
"""
)


def refusal(tree: Tree, *model_dirs: Path) -> str | None:
    """Why ``tree`` cannot read these stores' snapshots, or None when it can."""
    out = subprocess.run(
        [sys.executable, "-c", LOADS, *map(str, model_dirs)],
        cwd=tree.path,
        env=tree.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode == 0:
        return None
    return (out.stderr.strip().splitlines() or ["no message"])[-1]


def start_tree_server(
    tree: Tree, model_dir: Path, port: int, *extra: str
) -> subprocess.Popen[bytes]:
    """bench/run.py's start_server, for another checkout: that tree's code alone (on PYTHONPATH,
    as the working directory, and without the editable install's finder: see ``ISOLATE``)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            RUN_MODULE,
            "serve",
            "--model-dir",
            str(model_dir),
            "--port",
            str(port),
            "--log-level",
            "WARNING",
            *extra,
        ],
        cwd=tree.path,
        env=tree.env(),
    )


# -- snapshots ------------------------------------------------------------------------------------


@dataclass
class Catalogue:
    """One size's window, its snapshots and the users asked for."""

    items: int
    users: int
    history: int
    dirs: dict[str, Path] = field(default_factory=dict)
    challenger: Path | None = None
    request_users: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def publish(model_dir: Path, matrix: Any, fitted: Any, family: str, params: dict) -> Path:
    arrays = snapshot_arrays(matrix, fitted)
    if family == "als":  # ALS never reads them; trees from before model families refuse them
        arrays = {name: a for name, a in arrays.items() if name not in RECENT_ARRAYS}
    manifest = {"topic": "bench", "model": {"family": family, "params": params}, "params": params}
    publish_snapshot(model_dir, 1, arrays, manifest)
    return model_dir


def build_catalogue(
    root: Path, size: int, users: int, events: int, families: list[str], challenger: bool
) -> Catalogue:
    """Fit each family (and, with ``challenger``, an 8-factor ALS) on one window; publish each."""
    started = time.perf_counter()
    window, _ = fill_window(events, users, size)
    matrix = window.matrix()
    data = matrix.training_data()
    seen = matrix.user_items
    lengths = np.diff(seen.indptr)
    rows = np.random.default_rng(7).permutation(np.flatnonzero((lengths >= 20) & (lengths <= 50)))
    rows = rows[:5000]
    out = Catalogue(
        items=len(matrix.item_ids),
        users=len(matrix.user_ids),
        history=int(np.median(lengths[rows])),
        request_users=[matrix.user_ids[r] for r in rows.tolist()],
    )
    for family in families:
        if family == "ease" and out.items > EASE_MAX_ITEMS:
            out.skipped.append(f"EASE at {out.items:,} items (over {EASE_MAX_ITEMS:,})")
            continue
        trainer = make_family(family)
        params = trainer.validate(trainer.defaults())
        fitted = trainer.fit(data, params)
        out.dirs[family] = publish(root / f"{family}-{size}", matrix, fitted, family, params)
        del fitted
    if challenger:
        trainer = make_family("als")
        params = trainer.validate({**trainer.defaults(), "factors": CHALLENGER_FACTORS})
        fitted = trainer.fit(data, params)
        out.challenger = publish(root / f"challenger-{size}", matrix, fitted, "als", params)
    print(
        f"[{size:,}: {out.items:,} items, {out.users:,} users, snapshots published in "
        f"{time.perf_counter() - started:.0f} s]",
        file=sys.stderr,
        flush=True,
    )
    return out


# -- serving ---------------------------------------------------------------------------------------


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    """Until /ready answers 200 (the server builds its graph first); fails if the server exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {proc.returncode}")
        try:
            wait_http(f"http://127.0.0.1:{port}/ready", timeout=5)
            return
        except RuntimeError:
            continue
    raise RuntimeError(f"the server on port {port} was not ready within {timeout:.0f} s")


def check_answers(port: int, user: str, experiment: str, timeout: float) -> None:
    """One /recommend answers as timed: 10 items for a known user, interleaved with `on` (the
    challenger loads after /ready: until then the champion answers alone)."""
    url = f"http://127.0.0.1:{port}/recommend?user={user}&n=10"
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        ok = len(body["items"]) == 10 and body["source"] == "personalised"
        if ok and (experiment == "off" or body.get("arm") == "interleaved"):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port}: /recommend answered {body} (experiment {experiment})")
        time.sleep(0.5)


@dataclass
class Runs:
    """One tree's rounds of one case: req/s, server CPU µs a request, errors."""

    rps: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    errors: int = 0


def measure(
    trees: list[Tree],
    catalogue: Catalogue,
    family: str,
    experiment: str,
    args: argparse.Namespace,
) -> dict[str, dict[str, Runs]]:
    """Serve ``family`` from every tree at once; rounds interleaved. Returns runs per tree
    label and case (recommend, health)."""
    users = catalogue.request_users
    extra: list[str] = []
    if experiment == "on":
        assert catalogue.challenger is not None
        extra = ["--challenger-model-dir", str(catalogue.challenger), "--experiment", "interleave"]
    ports = {tree.label: free_port() for tree in trees}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    results = {tree.label: {"recommend": Runs(), "health": Runs()} for tree in trees}
    try:
        for tree in trees:
            port = ports[tree.label]
            procs[tree.label] = start_tree_server(tree, catalogue.dirs[family], port, *extra)
        for tree in trees:
            wait_ready(procs[tree.label], ports[tree.label], args.ready_timeout)
            check_answers(ports[tree.label], users[0], experiment, args.ready_timeout)

        def urls(port: int) -> dict[str, Callable[[int], str]]:
            return {
                "recommend": lambda k: (
                    f"http://127.0.0.1:{port}/recommend?user={users[k * 7919 % len(users)]}&n=10"
                ),
                "health": lambda k: f"http://127.0.0.1:{port}/health",
            }

        for tree in trees:  # untimed: first touches of the mapped arrays and the graph
            for url_for in urls(ports[tree.label]).values():
                asyncio.run(load(url_for, args.warmup, args.concurrency))
        for r in range(args.rounds):
            for tree in trees if r % 2 == 0 else trees[::-1]:
                pid = procs[tree.label].pid
                for case, url_for in urls(ports[tree.label]).items():
                    before = cpu_seconds(pid)
                    count, _, errors = asyncio.run(load(url_for, args.seconds, args.concurrency))
                    used = cpu_seconds(pid) - before
                    runs = results[tree.label][case]
                    runs.rps.append(count / args.seconds)
                    runs.cpu_us.append(1e6 * used / max(1, count))
                    runs.errors += errors
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return results


# -- report ----------------------------------------------------------------------------------------


def report_rows(
    catalogue: Catalogue,
    family: str,
    experiment: str,
    first: Tree,
    results: dict[str, dict[str, Runs]],
) -> list[str]:
    """Table rows, one per tree that served; compared with ``first`` when it served too."""
    medians = {
        label: (
            statistics.median(runs["recommend"].rps),
            statistics.median(runs["health"].rps),
            statistics.median(runs["recommend"].cpu_us),
        )
        for label, runs in results.items()
    }
    base = medians.get(first.label)
    rows = []
    for label, runs in results.items():
        rec_rps, health_rps, cpu_us = medians[label]
        ratio = rec_rps / health_rps
        versus = (
            f"{ratio / (base[0] / base[1]):.2f} | {rec_rps / base[0]:.2f} | {cpu_us / base[2]:.2f}"
            if base is not None
            else "- | - | -"
        )
        errors = runs["recommend"].errors + runs["health"].errors
        rows.append(
            f"| {label} | {catalogue.items:,} | {LABELS[family]} | {experiment} | "
            f"{rec_rps:,.0f} | {health_rps:,.0f} | {ratio:.3f} | {cpu_us:,.0f} | "
            f"{statistics.median(runs['health'].cpu_us):,.0f} | {versus} | "
            + ", ".join(f"{v:,.0f}" for v in runs["recommend"].rps)
            + f" | {errors} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--trees", nargs="+", type=Path, required=True, help="checkouts to compare (first: base)"
    )
    parser.add_argument("--sizes", default="20000,200000", help="catalogue sizes, items")
    parser.add_argument(
        "--families",
        default="als,ease,rp3beta,knn,seq",
        help="comma-separated (EASE only up to 20,000 items)",
    )
    parser.add_argument(
        "--experiment",
        choices=["both", *EXPERIMENTS],
        default="both",
        help="off: the champion alone; on: interleaved with an 8-factor ALS challenger",
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=4.0, help="load per case and round")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="untimed load per case before the rounds"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=1_500_000, help="window events")
    parser.add_argument(
        "--ready-timeout", type=float, default=600.0, help="seconds for a server to be ready"
    )
    args = parser.parse_args()
    # A SIGTERM (timeout, CI) unwinds like Ctrl-C, so the servers started are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    limit_blas_threads()  # fits as the builder runs them
    families = [ALIASES.get(f, f) for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in LABELS]
    if unknown:
        parser.error(f"unknown families: {', '.join(unknown)}")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    experiments = list(EXPERIMENTS) if args.experiment == "both" else [args.experiment]
    trees = [probe_tree(path) for path in args.trees]
    if len({t.label for t in trees}) != len(trees):
        parser.error("give each tree once")

    report(f"Command: `{shlex.join([sys.executable, *sys.argv])}` (cwd `{os.getcwd()}`)")
    report()
    report(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}; load average before: "
        + ", ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    report()
    for tree in trees:
        report(
            f"- {tree.label}: `{tree.path}`; families {', '.join(sorted(tree.families))}; "
            f"experiments {'yes' if tree.experiments else 'no'}"
        )
    report()
    rows: list[str] = []
    notes: list[str] = []
    facts: list[str] = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="serving-compare-") as tmp:
            catalogue = build_catalogue(
                Path(tmp), size, args.users, args.events, families, "on" in experiments
            )
            facts.append(
                f"{size:,} asked: {catalogue.items:,} items occur, {catalogue.users:,} users; "
                f"the {len(catalogue.request_users):,} users asked have {catalogue.history} "
                "window items (median)"
            )
            notes += catalogue.skipped
            for family in catalogue.dirs:
                for experiment in experiments:
                    stores = [catalogue.dirs[family]]
                    if experiment == "on" and catalogue.challenger is not None:
                        stores.append(catalogue.challenger)
                    serving: list[Tree] = []
                    for tree in trees:
                        why: str | None
                        if family not in tree.families:
                            why = "this tree has no such family"
                        elif experiment == "on" and not tree.experiments:
                            why = "this tree has no experiments"
                        else:
                            why = refusal(tree, *stores)
                        if why is None:
                            serving.append(tree)
                        else:
                            notes.append(
                                f"{LABELS[family]}, experiment {experiment}, at "
                                f"{catalogue.items:,} items in {tree.label}: {why}"
                            )
                    if not serving:
                        continue
                    results = measure(serving, catalogue, family, experiment, args)
                    rows += report_rows(catalogue, family, experiment, trees[0], results)
                    print(rows[-len(serving) :], file=sys.stderr, flush=True)
    report(
        f"### `/recommend?user=...&n=10` (known users) and `/health`: {args.concurrency} "
        f"concurrent clients (one aiohttp process on the same machine), {args.seconds:g} s a "
        f"case, {args.rounds} rounds interleaved across trees"
    )
    report()
    for line in facts:
        report(f"- {line}")
    report()
    report(
        "| tree | items | family | experiment | /recommend req/s (median) | /health req/s "
        "(median) | recommend / health | server CPU µs a /recommend | server CPU µs a /health "
        "| vs first tree: recommend / health | vs first tree: /recommend req/s | vs first tree: "
        "CPU µs a /recommend | /recommend req/s per round | errors |"
    )
    report(
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
        "| ---: |"
    )
    for row in rows:
        report(row)
    report()
    for note in notes:
        report(f"Not run: {note}.")
    if notes:
        report()


if __name__ == "__main__":
    main()
