"""A backlog start: nothing published before every partition is read, nothing lost after a kill.

Found by a fault campaign (issue 14): a fresh builder with ``-b`` on a multi-partition topic
published its first snapshot while some partitions were unread and recorded those at their end,
so a builder killed after that snapshot never read their backlog, and a live one logged a false
log reset when their first events arrived.
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from recommender.events import format_event
from recommender.snapshot import load_snapshot
from recommender.store import LocalStore

from .conftest import builder_command, produce, wait_for_manifest, wait_until
from .test_faults import newest_pairs, snapshot_pairs


def _events(users: int, per_user: int, seed: int) -> list[bytes]:
    order = np.repeat(np.arange(users), per_user)
    np.random.default_rng(seed).shuffle(order)
    return [format_event(f"u{u}", f"i{(u * 7 + k) % 300}") for k, u in enumerate(order)]


def _pairs_of(path) -> dict:
    snapshot = load_snapshot(path)
    indptr, indices = snapshot.arrays["seen_indptr"], snapshot.arrays["seen_indices"]
    weights = snapshot.arrays["seen_weights"]
    return {
        (user, snapshot.item_ids[indices[k]]): float(weights[k])
        for row, user in enumerate(snapshot.user_ids)
        for k in range(indptr[row], indptr[row + 1])
    }


@pytest.mark.parametrize("partitions", [2, 4])
def test_a_builder_killed_right_after_its_first_snapshot_loses_no_backlog(
    kafka, topic, daemons, tmp_path, partitions
):
    name = topic(partitions)
    produce(kafka, name, _events(4000, 10, seed=partitions))
    model_dir = tmp_path / "model"
    args = builder_command(name, model_dir, kafka.bootstrap_servers, "1000", "10000", "-b")
    builder = daemons("builder", args)
    store = LocalStore(model_dir)
    wait_until(store.versions, timeout=90, what="the first snapshot", every=0.02)
    builder.stop(signal.SIGKILL)
    first = store.versions()[0]
    # The first publication waited for the whole backlog: it is the topic's newest events.
    assert _pairs_of(store.path_of(first)) == newest_pairs(kafka, name, partitions, 10_000)
    assert "was reset" not in builder.output()

    produce(kafka, name, _events(500, 4, seed=99))  # new events after the restart
    restarted = daemons("restarted", args)
    manifest = wait_for_manifest(
        model_dir,
        lambda m: sum(p["next_offset"] for p in m["partitions"].values()) == 42_000,
        timeout=90,
        what="a snapshot of every event",
    )
    assert restarted.stop() == 0
    assert snapshot_pairs(model_dir) == newest_pairs(kafka, name, partitions, 10_000)
    assert manifest["builder"]["log_resets"] == 0
    assert "was reset" not in restarted.output()


def test_no_snapshot_before_the_backlog_is_read_and_none_records_an_unread_end(
    kafka, topic, daemons, tmp_path
):
    """Every manifest of a backlog start covers every partition up to where it ended at start,
    and the builder says it is catching up meanwhile."""
    name = topic(4)
    produce(kafka, name, _events(3000, 10, seed=3))
    model_dir = tmp_path / "model"
    builder = daemons(
        "builder",
        builder_command(name, model_dir, kafka.bootstrap_servers, "2000", "50000", "-b"),
    )
    wait_for_manifest(model_dir, lambda m: True, timeout=90)
    time.sleep(1.0)
    assert builder.stop() == 0
    store = LocalStore(model_dir)
    for version in store.versions():
        manifest = store.read_manifest(version)
        offsets = {int(p): pos["next_offset"] for p, pos in manifest["partitions"].items()}
        assert sum(offsets.values()) == 30_000, (version, offsets)
        assert manifest["partial"] is False
        assert manifest["window"]["events"] == 30_000
    output = builder.output()
    assert "reading the backlog before the first publication" in output
    assert "caught up with the backlog" in output
    assert "was reset" not in output


def test_partial_models_are_published_early_and_marked(kafka, topic, daemons, tmp_path):
    name = topic(4)
    produce(kafka, name, _events(3000, 10, seed=4))
    model_dir = tmp_path / "model"
    builder = daemons(
        "builder",
        builder_command(
            name, model_dir, kafka.bootstrap_servers, "500", "50000", "-b", "--partial-models"
        ),
    )
    last = wait_for_manifest(
        model_dir,
        lambda m: m["window"]["events"] == 30_000 and not m["partial"],
        timeout=90,
        what="a caught-up model",
    )
    assert builder.stop() == 0
    store = LocalStore(model_dir)
    manifests = [store.read_manifest(v) for v in store.versions()]
    # Never held against a model of the whole backlog: the gate does not judge after one.
    assert last["builder"]["quality_rejections"] == 0
    assert all(m["partial"] == (m["window"]["events"] < 30_000) for m in manifests)
