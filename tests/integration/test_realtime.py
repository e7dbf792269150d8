"""Real time through the real broker: fold-in, sessions, swaps, ingest, catalogue."""

from __future__ import annotations

import json
import time
import urllib.request

import numpy as np

from recommender.events import format_event
from recommender.snapshot import read_manifest

from .conftest import TASTE, get_json, latest_snapshot, produce, server_command, wait_until


def group_share(items, group):
    return np.mean([TASTE.item_group(i["item"]) == group for i in items])


def test_a_new_users_clicks_personalise_their_answer_within_seconds(kafka, system):
    name, _, base, *_ = system()
    user, group = "visitor-1", 2
    _, body = get_json(f"{base}/recommend?user={user}&n=5")
    assert body["source"] == "popular"
    clicks = TASTE.group_items(group)[:3]
    sent = time.monotonic()
    produce(kafka, name, [format_event(user, item) for item in clicks])

    def personalised():
        _, body = get_json(f"{base}/recommend?user={user}&n=5")
        return body if body.get("fresh_events") == 3 else None

    body = wait_until(personalised, timeout=5, what="the clicks to reach the answer", every=0.02)
    elapsed = time.monotonic() - sent
    assert body["source"] == "fold-in"
    assert group_share(body["items"], group) >= 0.8, body["items"]
    assert not set(clicks) & {i["item"] for i in body["items"]}
    print(f"fresh events reflected after {elapsed * 1000:.0f} ms")


def test_an_existing_users_fresh_events_are_filtered_from_their_answer(kafka, system):
    name, _, base, *_ = system()
    _, before = get_json(f"{base}/recommend?user=u3&n=3")
    assert before["source"] == "personalised"
    top = before["items"][0]["item"]
    produce(kafka, name, [format_event("u3", top)])
    body = wait_until(
        lambda: (b := get_json(f"{base}/recommend?user=u3&n=3")[1]).get("fresh_events") and b,
        timeout=5,
        what="the fresh event",
    )
    assert body["source"] == "fold-in"
    assert top not in {i["item"] for i in body["items"]}
    _, items = get_json(f"{base}/users/u3/items")
    assert items["fresh"] == [{"item": top, "weight": 1.0}]


def test_a_snapshot_swap_keeps_fresh_events_newer_than_it(kafka, system):
    name, _, base, model_dir, *_ = system(retrain_every="2000")
    first = read_manifest(latest_snapshot(model_dir)[1])["version"]
    # Enough background events to trigger one retrain; then a fresh event the retrain cannot see.
    produce(kafka, name, TASTE.values(*TASTE.sample(2000, np.random.default_rng(8))))
    wait_until(
        lambda: get_json(f"{base}/ready")[1].get("model_version", 0) > first,
        timeout=60,
        what="a retrain and swap",
    )
    produce(kafka, name, [format_event("late-user", TASTE.group_items(1)[0])])
    wait_until(
        lambda: get_json(f"{base}/recommend?user=late-user")[1].get("fresh_events") == 1,
        timeout=5,
        what="the late event",
    )
    # Another swap (a retrain on more background events, produced after the late event)...
    version = get_json(f"{base}/ready")[1]["model_version"]
    produce(kafka, name, TASTE.values(*TASTE.sample(2000, np.random.default_rng(9))))
    wait_until(
        lambda: get_json(f"{base}/ready")[1]["model_version"] > version,
        timeout=60,
        what="a second swap",
    )
    # ...covers the late event: it is now in the window, not fresh, and still counts as seen.
    # (The covered fresh copy is dropped just after the swap, off the event loop.)
    items = wait_until(
        lambda: (i := get_json(f"{base}/users/late-user/items")[1])["fresh"] == [] and i,
        timeout=5,
        what="the covered fresh event to be dropped",
    )
    assert items["known_to_model"]
    assert items["window"] == [{"item": TASTE.group_items(1)[0], "weight": 1.0}]


def test_fresh_events_survive_a_swap_that_does_not_cover_them(kafka, system, tmp_path):
    name, _, base, model_dir, builder, _ = system()
    assert builder.stop() == 0  # no retrains now: swaps come only from snapshots we publish
    produce(kafka, name, [format_event("keeper", TASTE.group_items(0)[0])])
    wait_until(
        lambda: get_json(f"{base}/recommend?user=keeper")[1].get("fresh_events") == 1,
        timeout=5,
        what="the fresh event",
    )
    # Republish the served snapshot as a newer version: same offsets, so it covers nothing new.
    import shutil

    version, path = latest_snapshot(model_dir)
    new = model_dir / f"v{version + 1:012d}"
    shutil.copytree(path, tmp_path / "copy")
    manifest = json.loads((tmp_path / "copy" / "manifest.json").read_text())
    manifest["version"] = version + 1
    (tmp_path / "copy" / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "copy").rename(new)
    wait_until(
        lambda: get_json(f"{base}/ready")[1]["model_version"] == version + 1,
        timeout=10,
        what="the swap",
    )
    assert get_json(f"{base}/recommend?user=keeper")[1]["fresh_events"] == 1


def test_anonymous_session_recommendations_follow_the_sessions_group(system):
    _, _, base, *_ = system()
    items = ",".join(TASTE.group_items(3)[:3])
    _, body = get_json(f"{base}/recommend?items={items}&n=5")
    assert body["source"] == "fold-in"
    assert group_share(body["items"], 3) >= 0.8


def post(url, payload, *, content_type="application/json", token=None):
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": content_type}
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_posted_events_go_through_kafka_and_personalise(kafka, system):
    _, _, base, *_ = system(server_args=["--enable-ingest", "--api-token", "tok"])
    clicks = TASTE.group_items(0)[:3]
    events = [{"user": "poster", "item": i} for i in clicks] + [{"user": "bad:id", "item": "x"}]
    status, body = post(f"{base}/interactions", events)
    assert status == 401
    status, body = post(f"{base}/interactions", events, token="tok")
    assert status == 200 and body["accepted"] == 3 and body["rejected"] == 1
    assert [(e["index"], e["reason"]) for e in body["errors"]] == [(3, "colon_in_id")]
    assert "cannot contain ':'" in body["errors"][0]["message"]
    status, body = post(
        f"{base}/interactions",
        b"poster:" + clicks[0].encode() + b":2.5\nbroken",
        content_type="text/plain",
        token="tok",
    )
    assert (
        status == 200 and body["accepted"] == 1 and body["errors"][0]["reason"] == "missing_field"
    )
    answer = wait_until(
        lambda: (
            (b := get_json(f"{base}/recommend?user=poster&n=5")[1]).get("fresh_events") == 4 and b
        ),
        timeout=5,
        what="posted events to come back from Kafka",
    )
    assert group_share(answer["items"], 0) >= 0.8


def test_catalogue_from_the_items_topic(kafka, system):
    _, items_topic, base, *_ = system()
    records = [
        {"id": f"i{k}", "title": f"Film number {k}", "url": f"https://example.org/{k}"}
        for k in range(80)
    ]
    produce(kafka, items_topic, [json.dumps(r).encode() for r in records], keyed=False)
    found = wait_until(
        lambda: get_json(f"{base}/items?q=NUMBER%2012&n=5")[1].get("items"),
        timeout=10,
        what="the catalogue",
    )
    assert found[0]["id"] == "i12"
    _, body = get_json(f"{base}/recommend?user=u1&n=3")
    assert all(i["metadata"]["title"].startswith("Film number") for i in body["items"])


def test_several_workers_share_one_port_and_stop_together(daemons, tmp_path, http_port):
    import os

    from tests.unit.helpers import block_events, publish_window

    model_dir = tmp_path / "model"
    publish_window(model_dir, 1, block_events())
    server = daemons(
        "workers",
        server_command(model_dir, http_port, "--workers", "2"),
    )
    base = f"http://127.0.0.1:{http_port}"
    wait_until(lambda: get_json(f"{base}/ready")[0] == 200, timeout=30, what="the workers")
    for _ in range(20):  # connections are spread over both processes; every answer is right
        status, body = get_json(f"{base}/recommend?user=g0u1&n=1")
        assert status == 200 and body["items"][0]["item"] == "g0i1"
    workers = [
        p
        for p in os.listdir("/proc")
        if p.isdigit() and _parent_of(int(p)) == server.proc.pid and b"spawn_main" in _cmdline(p)
    ]
    assert len(workers) == 2
    assert server.stop() == 0
    assert not [p for p in workers if os.path.exists(f"/proc/{p}")]


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_status_command_reports_snapshot_lag_and_server(kafka, system, daemons, tmp_path):
    _, _, base, model_dir, *_ = system()
    report = daemons(
        "status",
        [
            "status",
            "--model-dir",
            str(model_dir),
            "--server",
            base,
            "--bootstrap-servers",
            kafka.bootstrap_servers,
        ],
    )
    assert report.proc.wait(30) == 0, report.output()
    text = report.output()
    assert "Window       4,000 events" in text
    assert "serving v1" in text
    assert "partition" in text and "lag" in text
    rows = [line.split() for line in text.splitlines() if line[:1].isdigit()]
    assert len(rows) == 2 and all(row[-1] == "0" for row in rows), text  # caught up: no lag
    assert sum(int(row[3].replace(",", "")) for row in rows) == 4000  # end offsets: exact
    empty = daemons("status-empty", ["status", "--model-dir", str(tmp_path / "nothing")])
    assert empty.proc.wait(30) == 2
    assert "no snapshot" in empty.output() and "is the builder running" in empty.output()


def test_common_mistakes_get_messages_that_say_what_to_do(kafka, daemons, tmp_path):
    missing = daemons(
        "missing",
        [
            "build",
            "--tune",
            "off",
            "no-such-topic-here",
            "10",
            "100",
            "--model-dir",
            str(tmp_path / "m1"),
            "--bootstrap-servers",
            kafka.bootstrap_servers,
        ],
    )
    assert missing.proc.wait(60) == 2
    assert "no-such-topic-here" in missing.output() and "create it" in missing.output()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    unwritable = daemons(
        "unwritable",
        [
            "build",
            "--tune",
            "off",
            "t",
            "10",
            "100",
            "--model-dir",
            str(blocker),
            "--bootstrap-servers",
            kafka.bootstrap_servers,
        ],
    )
    assert unwritable.proc.wait(60) == 2
    assert "not writable" in unwritable.output()
    from recommender.broker import free_port

    down = daemons(
        "down",
        [
            "build",
            "--tune",
            "off",
            "t",
            "10",
            "100",
            "--model-dir",
            str(tmp_path / "m2"),
            "--bootstrap-servers",
            f"127.0.0.1:{free_port()}",
        ],
    )
    assert down.proc.wait(60) == 2
    assert "is the broker reachable" in down.output()
