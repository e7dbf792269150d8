"""``recommender experiment``: what an operator reads, and one line with exit 2 for mistakes
(the end-to-end start/stop through a real server and broker is in tests/integration)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from recommender.broker import free_port
from recommender.cli import main
from recommender.cli.experiment import render_experiment


def test_an_ab_experiment_shows_the_verdict_and_each_arm():
    text = render_experiment(
        {
            "champion": {"version": 7, "family": "als"},
            "challenger": {"version": 3, "family": "ease"},
            "challenger_store": "s3://models/challenger",
            "experiment": {"id": "e-1", "mode": "ab", "share": 0.25},
            "verdict": "challenger",
            "results": {
                "reason": "difference of hit rates +0.0400, 99% interval [+0.0100, +0.0700]",
                "arms": {
                    "champion": {"users": 900, "exposures": 3000, "hits": 600, "rate": 0.2},
                    "challenger": {"users": 300, "exposures": 1000, "hits": 240, "rate": 0.24},
                },
            },
        }
    )
    assert "Champion     v7 (als)" in text
    assert "Challenger   v3 (ease) from s3://models/challenger" in text
    assert "ab e-1, challenger share 25%" in text
    assert "Verdict      challenger: difference of hit rates +0.0400" in text
    assert "challenger 300 users, 1,000 answers, 240 hits (24.0%)" in text


def test_no_experiment_says_off_and_how_to_get_a_challenger():
    text = render_experiment({"champion": None, "challenger": None, "experiment": None})
    assert "no model yet" in text and "--challenger-model-dir" in text
    assert text.endswith("Experiment   off")


class _Refusing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.dumps({"error": "unauthorized", "message": "a bearer token is required"})
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def test_operator_mistakes_are_one_line_and_exit_2(capsys):
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{port}"
        assert main(["experiment", "start", "interleave", "--server", base]) == 2
        assert main(["experiment", "start", "--server", base]) == 2  # no mode
        assert main(["experiment", "stop", "ab", "--server", base]) == 2
        assert main(["experiment", "start", "ab", "--share", "1.5", "--server", base]) == 2
    finally:
        server.shutdown()
        server.server_close()
    assert main(["experiment", "show", "--server", f"http://127.0.0.1:{free_port()}"]) == 2
    err = capsys.readouterr().err
    assert "pass --api-token" in err and "a bearer token is required" in err
    assert "needs a mode" in err and "takes no mode" in err and "--share must be" in err
    assert "cannot reach a server" in err and "check --server" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("action", ["show", "start", "stop"])
def test_every_action_is_documented(action, capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "--help"])
    assert action in capsys.readouterr().out


def test_a_refused_challenger_says_why():
    text = render_experiment(
        {
            "champion": {"version": 4, "family": "als"},
            "challenger": None,
            "challenger_store": "/srv/challenger",
            "challenger_problem": "no challenger snapshot could be loaded from /srv/challenger: "
            "v2 was built from topic 'other'",
            "experiment": {"id": "e-2", "mode": "interleave"},
        }
    )
    assert "Challenger   not answering: no challenger snapshot could be loaded" in text
    assert "topic 'other'" in text
