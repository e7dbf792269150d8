"""``recommender demo``: the whole system on one machine, started and stopped by one command.

Embedded broker -> synthetic (or replayed) traffic -> model builder -> server. Every daemon is a
real child process with its log in the work directory; Ctrl-C stops them all.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from .broker import EmbeddedBroker, port_is_free
from .datasets import RATING_SCALES, DatasetName, datasets_dir
from .errors import RecommenderError
from .kafka import KafkaSettings, create_topic

__all__ = ["DemoOptions", "run_demo"]

log = logging.getLogger(__name__)

TOPIC = "interactions"
ITEMS = "items"
#: What the demo replays for each --dataset: anime replays its 1..10 ratings (the chat flow).
REPLAY = {"synthetic": "synthetic", "movielens": "movielens", "anime": "anime-ratings"}
#: Ids that exist in each data set, for the printed examples: two users, two items.
EXAMPLES = {
    "synthetic": ("u1", "u2", "i3", "i11"),
    "movielens": ("1", "2", "1", "2571"),  # Toy Story, The Matrix
    "anime": ("1", "2", "1", "2"),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoOptions:
    port: int = 8000
    broker_port: int = 0
    workdir: Path = Path(".demo")
    rate: float = 2000.0
    dataset: str = "synthetic"
    #: The live experiment's challenger: ``small-als`` or ``ranker`` (see ``recommender demo -h``).
    challenger: str = "small-als"


def _get_json(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class _Children:
    """Child processes, each logging to a file; stopped together."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def start(self, name: str, args: list[str]) -> None:
        out = (self.workdir / f"{name}.log").open("wb")
        self._logs.append(out)
        self.procs[name] = subprocess.Popen(
            [sys.executable, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
        )

    def dead(self) -> str | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name
        return None

    def stop(self) -> None:
        """SIGTERM every child at once (newest first: traffic before builders before the
        server), then wait for them together: Ctrl-C takes as long as the slowest, not the sum;
        one still running after 10 s is killed."""
        procs = list(reversed(self.procs.values()))
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for out in self._logs:
            out.close()


def run_demo(options: DemoOptions) -> int:
    """Run the demo until Ctrl-C; returns the exit code."""
    if options.dataset != "synthetic":
        # Checked before anything starts: a missing data set is the newcomer's usual first error.
        needs = cast(
            "list[DatasetName]", [options.dataset, REPLAY.get(options.dataset, options.dataset)]
        )
        if any(datasets_dir(name) is None for name in needs):
            raise RecommenderError(
                f"the {options.dataset} data set is not on this machine: "
                f"`recommender datasets fetch {options.dataset}` gets it or says how"
            )
    if not port_is_free(options.port):
        raise RecommenderError(
            f"port {options.port} is taken; stop what uses it or pass --port (make demo PORT=...)"
        )
    workdir = options.workdir.resolve()
    model_dir = workdir / "model"
    shutil.rmtree(model_dir, ignore_errors=True)  # the broker starts empty: so must the model
    model_dir.mkdir(parents=True)  # the server starts before the builder has written anything
    workdir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    print(f"starting the embedded broker (log: {workdir / 'broker.log'})", flush=True)
    broker = EmbeddedBroker(port=options.broker_port, log_file=workdir / "broker.log")
    broker.start()
    children = _Children(workdir)
    try:
        servers = broker.bootstrap_servers
        create_topic(KafkaSettings(servers), TOPIC, partitions=4)
        kafka = ["--bootstrap-servers", servers]
        print(f"publishing the {options.dataset} item catalogue to {ITEMS!r}", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from recommender.traffic import items_main as m; m()",
                "--dataset",
                options.dataset,
                "--topic",
                ITEMS,
                "--no-progress",
                *kafka,
            ],
            check=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        replay = REPLAY.get(options.dataset, options.dataset)
        scale = RATING_SCALES.get(replay)
        synthetic = options.dataset == "synthetic"
        # --challenger ranker: the same untuned ALS on both sides, the ranker the only difference
        ranker_trial = synthetic and options.challenger == "ranker"
        same_als = ["--tune", "off", "--retrain-interval", "10"]
        children.start(
            "builder",
            [
                "-m",
                "recommender",
                "build",
                TOPIC,
                "20000",
                "100000",
                "--from-beginning",
                "--retrain-interval",
                "3",
                "--model-dir",
                str(model_dir),
                "--items-topic",  # the catalogue's categories and attributes: ranker features
                ITEMS,
                *(["--ratings", scale] if scale else []),
                *([*same_als, "--ranker", "off"] if ranker_trial else []),
                *kafka,
            ],
        )
        experiment: list[str] = []
        if synthetic:
            # A challenger for the live experiment: another builder, smaller factors, no tuning
            # (or, --challenger ranker, the champion's ALS with a ranker pinned on).
            challenger_dir = workdir / "challenger"
            shutil.rmtree(challenger_dir, ignore_errors=True)
            challenger_dir.mkdir(parents=True)
            contender = (
                [*same_als, "--ranker", "on", "--ranker-interval", "2m", "--items-topic", ITEMS]
                if ranker_trial
                else ["--retrain-interval", "10", "--tune", "off", "--factors", "8"]
            )
            children.start(
                "challenger",
                [
                    "-m", "recommender", "build", TOPIC, "20000", "100000", "--from-beginning",
                    *contender, "--exposures-topic", "off", "--model-dir", str(challenger_dir),
                    *kafka,
                ],
            )  # fmt: skip
            experiment = [
                "--challenger-model-dir", str(challenger_dir), "--experiment", "interleave",
            ]  # fmt: skip
        children.start(
            "server",
            [
                "-m",
                "recommender",
                "serve",
                "--model-dir",
                str(model_dir),
                "--port",
                str(options.port),
                "--topic",
                TOPIC,
                "--items-topic",
                ITEMS,
                "--enable-ingest",
                *experiment,
                *kafka,
            ],
        )
        producer = ["-c", "from recommender.traffic import interactions_main as m; m()"]
        children.start(
            "producer",
            [
                *producer,
                "--dataset",
                replay,
                "--rate",
                str(options.rate),
                "--no-progress",
                *kafka,
            ],
        )
        base = f"http://127.0.0.1:{options.port}"
        if synthetic:  # simulated users acting on what they are shown: the live hit rate
            children.start(
                "clicks",
                ["-c", "from recommender.online.clicks import clicks_main as m; m()",
                 "--server", base],
            )  # fmt: skip
        started = time.monotonic()
        while not stop.is_set():
            if (name := children.dead()) is not None:
                raise RecommenderError(f"the {name} exited early; see {workdir / (name + '.log')}")
            try:
                status, body = _get_json(f"{base}/ready")
            except (urllib.error.URLError, OSError, ValueError):
                status, body = 0, {}
            if status == 200:
                break
            print(
                f"\rwaiting for the first model to train ... {time.monotonic() - started:4.0f}s",
                end="",
                flush=True,
            )
            stop.wait(0.5)
        if stop.is_set():
            return 0
        u1, u2, a, b = EXAMPLES.get(options.dataset, EXAMPLES["synthetic"])
        print(
            f"\rready: model v{body.get('model_version')} after "
            f"{time.monotonic() - started:.0f}s{' ' * 20}\n\n"
            f"  page:    {base}/\n"
            f"  try:     curl '{base}/recommend?user={u1}&n=5'\n"
            f"           curl '{base}/?userId={u2}&recommendationsNumber=3'\n"
            f"           curl '{base}/recommend?items={a},{b}&n=5'\n"
            f"           curl '{base}/similar?item={a}&n=5'\n"
            f"           curl -X POST --data-binary 'me:{a}' -H 'Content-Type: text/plain' "
            f"{base}/interactions\n"
            f"           curl '{base}/recommend?user=me&n=5'   # folded in at once\n"
            f"           curl '{base}/model'\n"
            f"           curl '{base}/metrics'\n"
            f"  kafka:   --bootstrap-servers {servers} (topic {TOPIC!r})\n"
            f"           curl '{base}/experiments'   # champion vs challenger, interleaved\n"
            f"  logs:    {workdir}/{{broker,builder,server,producer,clicks}}.log\n\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        while not stop.is_set():
            if (name := children.dead()) is not None:
                raise RecommenderError(f"the {name} exited; see {workdir / (name + '.log')}")
            stop.wait(0.5)
        print("\nstopping ...", flush=True)
        return 0
    finally:
        children.stop()
        broker.stop()
