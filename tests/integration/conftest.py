"""Fixtures for tests through a real Kafka-protocol broker and real processes.

One embedded broker (Tansu) per test session, on a free port; every test uses fresh topic names.
Set KAFKA_BOOTSTRAP_SERVERS to run against another broker (e.g. Apache Kafka) instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Producer

from recommender.broker import EmbeddedBroker, free_port
from recommender.kafka import KafkaSettings, create_topic
from recommender.producer import produce_values
from recommender.store import LocalStore
from recommender.synthetic import TasteModel

ROOT = Path(__file__).resolve().parents[2]

#: Hidden-taste data shared by the real-time tests.
TASTE = TasteModel(users=200, items=80, groups=4, in_group=0.95)


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory) -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_file=log) as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def kafka(bootstrap) -> KafkaSettings:
    return KafkaSettings(bootstrap)


@pytest.fixture
def topic(kafka) -> Callable[..., str]:
    """Create a fresh topic: topic(partitions=4) -> name."""

    def make(partitions: int = 4, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        create_topic(kafka, name, partitions=partitions)
        return name

    return make


def produce(kafka: KafkaSettings, topic: str, values: list[bytes], *, keyed: bool = True) -> None:
    """Produce and wait for every delivery (keyed by the user id unless ``keyed`` is False)."""
    producer: Producer = kafka.producer()
    keys = [v.partition(b":")[0] if v else b"" for v in values] if keyed else None
    produce_values(producer, topic, values, keys=keys, progress=False)
    assert producer.flush(30) == 0, "not every event was delivered"


def latest_snapshot(model_dir: Path) -> tuple[int, Path] | None:
    """The newest published snapshot in a local model dir, as (version, path)."""
    store = LocalStore(model_dir)
    version = store.latest()
    return None if version is None else (version, store.path_of(version))


def wait_until(check: Callable[[], object], *, timeout: float, what: str, every: float = 0.1):
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (urllib.error.URLError, ConnectionError):
        return 0, {}


class Daemon:
    """A real child process (``python -m recommender ...``) with its output in a file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recommender", *args],
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired as exc:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"process did not stop within {timeout}s:\n{self.output()}"
                ) from exc
        self._out.close()
        return self.proc.returncode


@pytest.fixture
def daemons(tmp_path) -> Iterator[Callable[[str, list[str]], Daemon]]:
    started: list[Daemon] = []

    def start(name: str, args: list[str], env: dict[str, str] | None = None) -> Daemon:
        daemon = Daemon(args, tmp_path / f"{name}.log", env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in reversed(started):
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
        daemon._out.close()


@pytest.fixture
def http_port() -> int:
    return free_port()


@pytest.fixture
def system(kafka, topic, daemons, tmp_path, http_port):
    """Builder (count retrains only) + a real-time server on a topic with a trained model.

    ``system(retrain_every=..., server_args=[...], builder_args=[...])`` returns
    (topic, items topic, base URL, model dir, builder, server).
    """

    def start(*, retrain_every="4000", server_args=(), builder_args=()):
        name = topic(2)
        items_topic = topic(1, prefix="items")
        produce(kafka, name, TASTE.values(*TASTE.sample(4000, np.random.default_rng(7))))
        model_dir = tmp_path / "model"
        kafka_args = ["--bootstrap-servers", kafka.bootstrap_servers]
        builder = daemons(
            "builder",
            [
                "build",
                "--tune",
                "off",
                "--exposures-topic",
                "off",
                "--experiments-topic",
                "off",
                name,
                retrain_every,
                "100000",
                "-b",
                "--factors",
                "8",
                "--iterations",
                "10",
                "--model-dir",
                str(model_dir),
                *kafka_args,
                *builder_args,
            ],
        )
        server = daemons(
            "server",
            server_command(
                model_dir,
                http_port,
                "--topic",
                name,
                "--items-topic",
                items_topic,
                "--poll-interval",
                "0.1",
                *server_args,
                *kafka_args,
            ),
        )
        base = f"http://127.0.0.1:{http_port}"
        wait_until(lambda: get_json(f"{base}/ready")[0] == 200, timeout=60, what="a model")
        return name, items_topic, base, model_dir, builder, server

    return start


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A real S3-compatible server in its own process (moto's standalone server) on loopback;
    yields the AWS_* environment that points clients at it. No in-process mock anywhere."""
    port = free_port()
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    out = log.open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    try:
        wait_until(
            lambda: _http_up(env["AWS_ENDPOINT_URL"]), timeout=30, what="the S3 server to listen"
        )
        yield env
    finally:
        proc.terminate()
        proc.wait(10)
        out.close()


def _http_up(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
        return True
    except urllib.error.HTTPError:
        return True  # it answered
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def make_bucket(env: dict[str, str]) -> str:
    """A fresh bucket on the S3 server of ``env``."""
    import boto3

    name = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    ).create_bucket(Bucket=name)
    return name


def wait_for_manifest(model_dir: Path, predicate, *, timeout: float = 60, what: str = "a snapshot"):
    """The newest manifest in a local model dir once ``predicate`` holds for it."""
    store = LocalStore(model_dir)

    def check():
        version = store.latest()
        manifest = None if version is None else store.read_manifest(version)
        return manifest if manifest is not None and predicate(manifest) else None

    return wait_until(check, timeout=timeout, what=what, every=0.2)


def with_film_catalogue(kafka: KafkaSettings, system, server_args: list[str]) -> tuple[str, str]:
    """The ``system`` fixture's stack with a catalogue of TASTE's items ("Film N", with links);
    returns (topic, base URL) once the server has read it."""
    name, items_topic, base, *_ = system(server_args=server_args)
    records = [
        {"id": f"i{k}", "title": f"Film {k}", "url": f"https://films.example/{k}"}
        for k in range(TASTE.items)
    ]
    produce(kafka, items_topic, [json.dumps(r).encode() for r in records], keyed=False)
    wait_until(
        lambda: get_json(f"{base}/items?q=film&n=1")[1].get("catalog_size") == TASTE.items,
        timeout=20,
        what="the catalogue",
    )
    return name, base


def server_command(model_dir, port, *extra):
    """``recommender serve`` arguments for a model dir (created: a server refuses a folder that
    does not exist) and a loopback port; answers are logged only to topics ``extra`` names."""
    if "://" not in str(model_dir):
        Path(model_dir).mkdir(parents=True, exist_ok=True)
    return [
        "serve", "--model-dir", str(model_dir), "--port", str(port),
        "--exposures-topic", "off", "--experiments-topic", "off", *extra,
    ]  # fmt: skip


def builder_command(topic, model_dir, bootstrap, *extra, factors=8, iterations=8):
    """``recommender build`` arguments for a small untuned model (tests never wait for tuning
    or a ranker; the online loop is off unless ``extra`` names its topics: every test has its
    own).
    ``factors=None``: no ALS flags (pinned ALS settings keep self-tuning to ALS)."""
    als = [] if factors is None else ["--factors", str(factors), "--iterations", str(iterations)]
    return [
        "build", "--tune", "off", "--exposures-topic", "off", "--experiments-topic", "off",
        "--ranker", "off", topic, *extra, "--model-dir", str(model_dir),
        "--bootstrap-servers", bootstrap, *als,
    ]  # fmt: skip
