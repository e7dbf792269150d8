"""``serve --workers N`` (issue 14): workers listen only once ready, die with their parent, and
count into one set of metrics; and ``serve``'s operator mistakes are one line and exit 2."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request

from tests.unit.helpers import block_events, publish_window

from .conftest import get_json, server_command, wait_until


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _requests_total(base: str, route: str) -> tuple[float, str]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        text = response.read().decode()
    total, worker = 0.0, ""
    for line in text.splitlines():
        if line.startswith("recommender_http_requests_total{") and f'route="{route}"' in line:
            total += float(line.rsplit(" ", 1)[1])
        if line.startswith("recommender_worker_info{"):
            worker = line.split('worker="', 1)[1].split('"', 1)[0]
    return total, worker


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_workers_listen_once_ready_and_share_their_counters(daemons, tmp_path, http_port):
    model_dir = tmp_path / "model"
    server = daemons(
        "workers", server_command(model_dir, http_port, "--workers", "2", "--poll-interval", "0.1")
    )
    base = f"http://127.0.0.1:{http_port}"
    wait_until(lambda: len(_children(server.proc.pid)) >= 2, timeout=30, what="two workers")
    time.sleep(2.0)  # started, and no model to serve: nobody listens
    assert get_json(f"{base}/ready")[0] == 0
    publish_window(model_dir, 1, block_events())
    wait_until(lambda: get_json(f"{base}/ready")[0] == 200, timeout=30, what="a ready worker")
    # Every connection now meets a worker with a model (the other one does not listen yet).
    assert {get_json(f"{base}/ready")[0] for _ in range(60)} == {200}
    for _ in range(30):
        status, body = get_json(f"{base}/recommend?user=g0u1&n=1")
        assert status == 200 and body["items"][0]["item"] == "g0i1"
    seen = set()
    for _ in range(12):  # whichever worker answers, it reports both workers' requests
        total, worker = _requests_total(base, "/recommend")
        assert total == 30
        seen.add(worker)
    assert seen <= {"0", "1"} and seen
    # Chat registrations are one set for both workers: a user is new exactly once.
    answers = [_post(f"{base}/register", {"chat_id": 4242})["exists"] for _ in range(20)]
    assert answers == [0] + [1] * 19
    assert server.stop() == 0


def test_workers_die_with_a_killed_parent(daemons, tmp_path, http_port):
    model_dir = tmp_path / "model"
    publish_window(model_dir, 1, block_events())
    server = daemons("workers", server_command(model_dir, http_port, "--workers", "2"))
    base = f"http://127.0.0.1:{http_port}"
    wait_until(lambda: get_json(f"{base}/ready")[0] == 200, timeout=30, what="the workers")
    workers = _children(server.proc.pid)
    assert len(workers) >= 2
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    wait_until(
        lambda: not any(_alive(p) for p in workers), timeout=15, what="the orphaned workers to stop"
    )
    assert get_json(f"{base}/ready")[0] == 0


def test_serve_mistakes_are_one_line_and_exit_2(daemons, tmp_path, http_port):
    model_dir = tmp_path / "model"
    publish_window(model_dir, 1, block_events())
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        for workers in ("1", "2"):
            busy = daemons("busy", server_command(model_dir, port, "--workers", workers))
            assert busy.proc.wait(30) == 2
            out = busy.output()
            assert f"port {port} on 127.0.0.1 is in use" in out and "--port" in out
            assert "Traceback" not in out and "serving on" not in out
    bad_port = daemons("bad-port", ["serve", "--model-dir", str(model_dir), "--port", "99999"])
    assert bad_port.proc.wait(30) == 2
    assert "a port is from 1 to 65535" in bad_port.output()
    assert "Traceback" not in bad_port.output()
    nowhere = daemons("nowhere", ["serve", "--model-dir", str(tmp_path / "typo"), "--port", "1"])
    assert nowhere.proc.wait(30) == 2
    assert "no such directory" in nowhere.output() and "Traceback" not in nowhere.output()
    few = daemons("few", server_command(model_dir, http_port, "--ranker-candidates", "0"))
    assert few.proc.wait(30) == 2
    assert "--ranker-candidates must be from 1 to 10000" in few.output()
    assert "Traceback" not in few.output()
