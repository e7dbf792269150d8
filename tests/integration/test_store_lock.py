"""One builder per object store, through a store that hangs and one that flaps (issue 14).

Found by a fault campaign: the old lock's refresh overwrote the lock without checking who held
it, a lock left unrefreshed by a 45 s store hang was taken over by a plain overwrite while its
owner still ran, and two builders then published into one store, racing for version numbers.
Every test here runs a real S3-compatible server, real builders and a TCP proxy on loopback
that makes the store hang or flap for one builder.
"""

from __future__ import annotations

import contextlib
import json
import time

import boto3
import numpy as np
import pytest

from recommender.errors import ConfigError, LockLost
from recommender.snapshot import load_published, writer_of
from recommender.store import open_store
from tests.tcp_proxy import TcpProxy

from .conftest import TASTE, builder_command, make_bucket, produce, wait_until


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    return s3_server


@pytest.fixture
def proxy(s3_env):
    port = int(s3_env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    proxy = TcpProxy(port)
    yield proxy
    proxy.close()


def _lock_body(env: dict, bucket: str) -> dict:
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"])
    return json.loads(s3.get_object(Bucket=bucket, Key="recs/.builder.lock")["Body"].read())


def test_a_lock_taken_over_is_lost_by_its_old_owner_whose_release_leaves_it_alone(s3_env):
    bucket = make_bucket(s3_env)
    url = f"s3://{bucket}/recs"
    s3 = boto3.client(
        "s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name=s3_env["AWS_REGION"]
    )
    with contextlib.ExitStack() as old_owner, contextlib.ExitStack() as new_owner:
        first = old_owner.enter_context(open_store(url).writer_lock(ttl=30))
        first.check()
        with pytest.raises(ConfigError, match="another builder"), open_store(url).writer_lock():
            pass
        # The first owner's refreshes stall (a hung store) until its lock looks abandoned.
        body = {**_lock_body(s3_env, bucket), "refreshed_at": time.time() - 60}
        s3.put_object(Bucket=bucket, Key="recs/.builder.lock", Body=json.dumps(body).encode())
        second = new_owner.enter_context(open_store(url).writer_lock(ttl=30))
        assert second.token == first.token + 1
        with pytest.raises(LockLost) as lost:
            first.check()  # as before its next publication
        assert lost.value.taken and first.lost.is_set()
        old_owner.close()  # the old owner gives the lock back: the new owner's lock stays
        assert _lock_body(s3_env, bucket)["owner"] == second.owner
        with pytest.raises(ConfigError, match="another builder"), open_store(url).writer_lock():
            pass
        second.check()
    assert _lock_body(s3_env, bucket)["released"] is True  # the new owner freed it
    with open_store(url).writer_lock(ttl=30) as third:
        assert third.token == second.token + 1


def test_a_builder_whose_store_hangs_past_the_ttl_loses_the_lock_and_stops_publishing(
    s3_env, proxy, kafka, topic, daemons, tmp_path
):
    bucket = make_bucket(s3_env)
    url = f"s3://{bucket}/recs"
    name = topic(2)
    rng = np.random.default_rng(3)
    produce(kafka, name, TASTE.values(*TASTE.sample(1000, rng)))
    args = builder_command(
        name, url, kafka.bootstrap_servers, "500", "100000", "-b", "--lock-ttl", "6",
        "--gate-retry", "1",
    )  # fmt: skip
    hung = daemons("hung", args, env={"AWS_ENDPOINT_URL": proxy.url})
    store = open_store(url)
    wait_until(store.versions, timeout=60, what="the first builder's first snapshot")
    proxy.set_mode("hang")
    hung_at = time.monotonic()
    produce(kafka, name, TASTE.values(*TASTE.sample(1000, rng)))
    # Its retrain of these is not published, and says so (never silent).
    wait_until(
        lambda: "could not publish the snapshot" in hung.output(),
        timeout=90,
        what="the hung builder's failed publication",
    )
    time.sleep(max(0.0, hung_at + 7 - time.monotonic()))  # past the TTL: looks abandoned
    successor = daemons("successor", args)
    wait_until(
        lambda: any(writer_of(store.read_manifest(v))[1] > 1 for v in store.versions()),
        timeout=60,
        what="a publication by the builder that took over",
    )
    proxy.set_mode("pass")  # the hung builder's requests go through now
    assert hung.proc.wait(60) == 2
    assert "took over the lock" in hung.output()
    assert "Traceback" not in hung.output()
    produce(kafka, name, TASTE.values(*TASTE.sample(1000, rng)))
    wait_until(lambda: len(store.versions()) >= 3, timeout=60, what="more publications")
    assert successor.stop() == 0
    tokens = [writer_of(store.read_manifest(v))[1] for v in store.versions()]
    assert tokens == sorted(tokens) and tokens[0] >= 1 and tokens[-1] == 2
    for version in store.versions():
        load_published(store, version)  # one builder's manifest over its own arrays only
    assert _lock_body(s3_env, bucket)["released"] is True


def test_a_flapping_store_costs_no_lock_and_a_second_builder_is_still_refused(
    s3_env, proxy, kafka, topic, daemons
):
    bucket = make_bucket(s3_env)
    url = f"s3://{bucket}/recs"
    name = topic(2)
    rng = np.random.default_rng(4)
    produce(kafka, name, TASTE.values(*TASTE.sample(1000, rng)))
    args = builder_command(
        name, url, kafka.bootstrap_servers, "500", "100000", "-b", "--lock-ttl", "6",
        "--gate-retry", "1",
    )  # fmt: skip
    proxy.set_mode("flap")
    flapping = daemons("flapping", args, env={"AWS_ENDPOINT_URL": proxy.url})
    store = open_store(url)
    for round_ in range(3):
        produce(kafka, name, TASTE.values(*TASTE.sample(600, rng)))
        wait_until(
            lambda r=round_: len(store.versions()) >= r + 1,
            timeout=90,
            what="a publication through the flapping store",
        )
    second = daemons("second", args)
    assert second.proc.wait(60) == 2
    assert "another builder" in second.output()
    assert flapping.proc.poll() is None  # no lock lost to flapping
    proxy.set_mode("pass")
    assert flapping.stop() == 0
    assert {writer_of(store.read_manifest(v))[1] for v in store.versions()} == {1}


def test_a_killed_builder_restarted_on_its_machine_takes_its_lock_over_at_once(
    s3_env, kafka, topic, daemons
):
    """A supervisor restarts a SIGKILLed builder: the lock names a process that provably no
    longer runs (same host, boot and pid namespace), so the new builder takes it over without
    waiting for the lock's TTL (here 600 s), with the next fencing token, and publishes."""
    import signal

    bucket = make_bucket(s3_env)
    url = f"s3://{bucket}/recs"
    name = topic(2)
    produce(kafka, name, TASTE.values(*TASTE.sample(1000, np.random.default_rng(5))))
    args = builder_command(name, url, kafka.bootstrap_servers, "500", "100000", "-b",
                           "--lock-ttl", "600")  # fmt: skip
    store = open_store(url)
    first = daemons("first", args)
    wait_until(lambda: store.versions(), timeout=90, what="a first publication")
    first.stop(signal.SIGKILL)
    assert _lock_body(s3_env, bucket)["released"] is False  # killed: nothing released it
    restarted = daemons("restarted", args)
    produce(kafka, name, TASTE.values(*TASTE.sample(600, np.random.default_rng(6))))
    wait_until(
        lambda: writer_of(store.read_manifest(store.versions()[-1]))[1] == 2,
        timeout=90,
        what="a publication under the next fencing token",
    )
    assert "no longer runs here" in restarted.output()
    assert restarted.stop() == 0
