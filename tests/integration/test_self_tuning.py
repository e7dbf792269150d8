"""The builder tunes itself on a quiet topic, and the gate's refusals are visible to operators:
through the real broker and real processes."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import numpy as np

from recommender.store import LocalStore
from recommender.synthetic import TasteModel

from .conftest import ROOT, get_json, produce, server_command, wait_for_manifest, wait_until

TASTE = TasteModel(users=800, items=400, groups=8, in_group=0.85)
#: Sparse users (5 events each): where the static defaults are beatable (bench/tuning.py:
#: +8 to +16 % NDCG@10 after a 10 s session, intervals well above zero).
SPARSE = TasteModel(users=4000, items=2000, groups=40, in_group=0.85)


def status_report(model_dir):
    """``recommender status`` run as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "recommender", "status", "--model-dir", str(model_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def planted(seed: int, per_user: int = 25, taste: TasteModel = TASTE) -> list[bytes]:
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(taste.users), per_user)
    rng.shuffle(users)
    return taste.values(*taste.sample(users.size, rng, users=users))


def metrics_text(base: str) -> str:
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            return response.read().decode()
    except OSError:  # not listening yet
        return ""


def test_a_quiet_topic_ends_up_with_a_tuned_model_every_reader_shows(
    kafka, topic, daemons, tmp_path, http_port
):
    name = topic(2)
    produce(kafka, name, planted(1, per_user=5, taste=SPARSE))  # 20,000 events, then nothing
    model_dir = tmp_path / "model"
    kafka_args = ["--bootstrap-servers", kafka.bootstrap_servers]
    daemons(
        "builder",
        ["build", name, "20000", "100000", "-b", "--tune-budget", "10", "--iterations", "10",
         "--model-dir", str(model_dir), *kafka_args],
    )  # fmt: skip
    server = daemons(
        "server",
        server_command(model_dir, http_port, "--poll-interval", "0.2"),
    )
    first = wait_for_manifest(model_dir, lambda m: True, timeout=60, what="the first model")
    assert first["params_source"] == "pinned"  # --iterations given: the rest is tunable
    tuned = wait_for_manifest(
        model_dir, lambda m: m["params_source"] == "tuned", timeout=120, what="a tuned model"
    )
    assert tuned["version"] > first["version"]
    assert tuned["params"]["iterations"] == 10  # pinned
    assert tuned["params"] != first["params"]
    session = tuned["tuning"]
    assert session["adopted"] and session["trials"] >= 5
    assert session["confirmation"]["interval"][0] > 0  # better beyond the noise
    assert session["trail"] and session["trail"][0]["ndcg"] is not None
    base = f"http://127.0.0.1:{http_port}"
    wait_until(
        lambda: get_json(f"{base}/status")[1].get("settings", {}).get("source") == "tuned",
        timeout=20,
        what="the server to show the tuned settings",
    )
    status = wait_until(
        lambda: (s := get_json(f"{base}/status")[1]).get("tuning", {}).get("last") and s,
        timeout=20,
        what="the builder's status document to report the session",
    )
    assert status["tuning"]["last"]["adopted"] is True
    assert status["tuning"]["state"] in ("waiting", "running")
    assert 'recommender_model_params{name="alpha",source="tuned"}' in metrics_text(base)
    assert get_json(f"{base}/model")[1]["manifest"]["tuning"]["adopted"] is True
    report = status_report(model_dir)
    assert report.returncode == 0, report.stderr
    assert "(tuned settings)" in report.stdout and "adopted" in report.stdout
    assert server.proc.poll() is None


def test_refusals_are_retried_and_visible_in_metrics_status_and_the_cli(
    kafka, topic, daemons, tmp_path, http_port
):
    name = topic(2)
    produce(kafka, name, planted(2, per_user=20))
    model_dir = tmp_path / "model"
    common = ["--model-dir", str(model_dir), "--bootstrap-servers", kafka.bootstrap_servers,
              "--tune", "off", "--gate-retry", "2"]  # fmt: skip
    good = daemons("builder", ["build", name, "4000", "100000", "-b", "--factors", "16", *common])
    wait_for_manifest(model_dir, lambda m: True, timeout=60, what="a first model")
    assert good.stop() == 0
    published = LocalStore(model_dir).versions()
    # The same builder, restarted with settings that crush every factor to zero.
    broken = daemons(
        "broken",
        ["build", name, "4000", "100000", "--factors", "16", "--regularization", "1e7",
         "--iterations", "1", *common],
    )  # fmt: skip
    daemons("server", server_command(model_dir, http_port))
    produce(kafka, name, planted(3, per_user=5))  # 4,000 events it has not seen
    base = f"http://127.0.0.1:{http_port}"

    def refusals() -> int:
        for line in metrics_text(base).splitlines():
            if line.startswith("recommender_builder_consecutive_refusals "):
                return int(float(line.split()[1]))
        return 0

    wait_until(lambda: refusals() >= 2, timeout=90, what="two refusals (one retry)")
    assert LocalStore(model_dir).versions() == published  # nothing refused was published
    status = get_json(f"{base}/status")[1]
    assert status["gate"]["last"]["decision"] == "refuse"
    assert "worse" in status["gate"]["last"]["reason"]
    assert "refused the new model" in broken.output()
    report = status_report(model_dir)
    assert "refusals in a row" in report.stdout
