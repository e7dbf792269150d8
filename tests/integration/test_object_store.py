"""Snapshots in an object store: one builder and two server replicas on a real S3-compatible
server (moto's standalone server, its own process), a real broker, real processes."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import boto3
import numpy as np

from recommender.store import open_store

from .conftest import ROOT, TASTE, get_json, make_bucket, produce, wait_until


def s3_client(env):
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )


def swap_failures(base: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("recommender_model_swap_failures_total "):
                return float(line.split()[1])
    return 0.0


def test_a_builder_and_two_replicas_share_snapshots_through_s3(
    s3_server, kafka, topic, daemons, tmp_path, monkeypatch
):
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    bucket = make_bucket(s3_server)
    url = f"s3://{bucket}/recs"
    name = topic(2)
    produce(kafka, name, TASTE.values(*TASTE.sample(3000, np.random.default_rng(1))))
    kafka_args = ["--bootstrap-servers", kafka.bootstrap_servers]
    builder = daemons(
        "builder",
        ["build", name, "1500", "100000", "-b", "--tune", "off", "--factors", "8",
         "--iterations", "8", "--model-dir", url, *kafka_args],
        env=s3_server,
    )  # fmt: skip
    from recommender.broker import free_port

    bases = []
    for replica in (1, 2):
        port = free_port()
        daemons(
            f"server{replica}",
            ["serve", "--model-dir", url, "--cache-dir", str(tmp_path / f"cache{replica}"),
             "--port", str(port), "--poll-interval", "0.2"],
            env=s3_server,
        )  # fmt: skip
        bases.append(f"http://127.0.0.1:{port}")

    def versions():
        return [get_json(f"{b}/ready")[1].get("model_version") for b in bases]

    first = wait_until(
        lambda: (v := versions())[0] and v[0] == v[1] and v[0], timeout=90, what="both replicas"
    )
    # Nothing was written locally under a folder named after the scheme.
    assert not (ROOT / "s3:").exists()
    assert all((tmp_path / f"cache{r}").is_dir() for r in (1, 2))
    # A new publication reaches both replicas.
    produce(kafka, name, TASTE.values(*TASTE.sample(1500, np.random.default_rng(2))))
    second = wait_until(
        lambda: (v := versions())[0] and v[0] == v[1] and v[0] > first and v[0],
        timeout=90,
        what="the next publication on both",
    )
    assert builder.stop() == 0
    # A corrupt object: the served snapshot republished as a newer version, one array flipped.
    s3 = s3_client(s3_server)
    source, target = f"recs/v{second:012d}", f"recs/v{second + 1:012d}"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=source)["Contents"]]
    manifest_key = next(k for k in keys if k.endswith("manifest.json"))
    for key in [k for k in keys if k != manifest_key] + [manifest_key]:  # manifest last
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if key.endswith("item_factors.npy"):
            body = body[:-8] + bytes(b ^ 0xFF for b in body[-8:])
        if key == manifest_key:
            body = body.replace(b'"version": %d' % second, b'"version": %d' % (second + 1))
        s3.put_object(Bucket=bucket, Key=key.replace(source, target), Body=body)
    wait_until(
        lambda: all(swap_failures(b) == 1 for b in bases), timeout=30, what="both to reject it"
    )
    assert versions() == [second, second]
    # recommender status reads the same store.
    report = subprocess.run(
        [sys.executable, "-m", "recommender", "status", "--model-dir", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **s3_server},
        timeout=60,
    )
    assert report.returncode == 0, report.stderr
    assert f"v{second + 1:012d} in {url}" in report.stdout


def test_one_builder_per_store_and_a_killed_ones_lock_is_taken_over_later(s3_server, monkeypatch):
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    url = f"s3://{make_bucket(s3_server)}/recs"
    from recommender.errors import ConfigError

    store = open_store(url)
    with store.writer_lock():
        try:
            with open_store(url).writer_lock():
                raise AssertionError("a second builder got the lock")
        except ConfigError as exc:
            assert "another builder" in str(exc)
    with open_store(url).writer_lock():  # released on exit: the next one gets it
        pass


def test_an_unknown_scheme_is_an_error_at_start_never_a_local_folder(daemons, tmp_path):
    for argv in (
        ["serve", "--model-dir", "ftp://host/models"],
        ["status", "--model-dir", "s3:models"],
        ["build", "t", "10", "100", "--model-dir", "gopher://x/y"],
    ):
        daemon = daemons("bad", argv)
        assert daemon.proc.wait(30) == 2
        assert "--model-dir" in daemon.output()
    assert not (ROOT / "ftp:").exists() and not (ROOT / "gopher:").exists()
