"""Replicas follow the store (issue 14): a store whose history changed underneath, a deposed
writer's late snapshot, and a stray snapshot of another topic, with real processes."""

from __future__ import annotations

import shutil

from recommender.store import LocalStore
from tests.unit.helpers import block_events, publish_window

from .conftest import builder_command, get_json, produce, server_command, wait_until
from .test_faults import metric


def _writer(store_id: str, token: int) -> dict:
    return {"store": {"id": store_id, "writer": {"owner": "test", "token": token}}}


def test_a_server_refuses_a_deposed_writers_snapshot_and_follows_a_store_that_was_replaced(
    daemons, tmp_path, http_port
):
    model_dir = tmp_path / "model"
    events = block_events(users_per=6)
    publish_window(model_dir, 1, events, manifest=_writer("store-a", 1))
    publish_window(model_dir, 2, events, manifest=_writer("store-a", 2))
    server = daemons("server", server_command(model_dir, http_port, "--poll-interval", "0.1"))
    base = f"http://127.0.0.1:{http_port}"

    def serving():
        return get_json(f"{base}/ready")[1].get("model_version")

    wait_until(lambda: serving() == 2, timeout=30, what="v2")
    # A builder that lost the lock publishes late, with its old token: refused.
    publish_window(model_dir, 3, events, manifest=_writer("store-a", 1))
    wait_until(
        lambda: metric(base, "recommender_model_swap_failures_total") == 1,
        timeout=10,
        what="the refusal",
    )
    assert serving() == 2
    assert "lost the store's lock" in server.output()
    # The directory is emptied and a new history starts at v1: followed, logged and counted.
    for path in model_dir.glob("v*"):
        shutil.rmtree(path)
    publish_window(model_dir, 1, events, manifest=_writer("store-b", 1))
    wait_until(lambda: serving() == 1, timeout=10, what="the new history's v1")
    assert metric(base, "recommender_store_history_changes_total") == 1
    assert "history changed" in server.output()
    publish_window(model_dir, 2, events, manifest=_writer("store-b", 1))
    wait_until(lambda: serving() == 2, timeout=10, what="the new history's v2")


def test_a_stray_snapshot_of_another_topic_is_moved_aside_not_a_reason_to_stop(
    kafka, topic, daemons, tmp_path
):
    name = topic(1)
    events = block_events(users_per=6)
    produce(kafka, name, [f"{u}:{i}".encode() for u, i in events])
    model_dir = tmp_path / "model"
    partitions = {"0": {"window_start": 0, "next_offset": len(events)}}
    publish_window(model_dir, 1, events, manifest={"topic": name, "partitions": partitions})
    publish_window(model_dir, 2, events, manifest={"topic": "another-topic"})
    builder = daemons(
        "builder", builder_command(name, model_dir, kafka.bootstrap_servers, "5", "1000")
    )
    wait_until(
        lambda: "resuming from snapshot v1" in builder.output(), timeout=30, what="the resume"
    )
    assert builder.proc.poll() is None
    assert "moved foreign snapshot v2 aside" in builder.output()
    assert LocalStore(model_dir).versions() == [1]
    assert builder.stop() == 0

    only_foreign = tmp_path / "foreign"
    publish_window(only_foreign, 1, events, manifest={"topic": "another-topic"})
    refused = daemons(
        "refused", builder_command(name, only_foreign, kafka.bootstrap_servers, "5", "1000")
    )
    assert refused.proc.wait(30) == 2
    assert "use another --model-dir" in refused.output()
    assert "Traceback" not in refused.output()
    assert LocalStore(only_foreign).versions() == [1]  # another builder's store: untouched
