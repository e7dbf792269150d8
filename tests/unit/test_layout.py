"""The design's import rules: pure modules need neither Kafka nor aiohttp; the server never
imports the builder. Each check runs in a fresh interpreter, so nothing imported by other tests
can hide a violation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PURE = [
    "events",
    "ratings",
    "vocab",
    "window",
    "serving",
    "serving.model",
    "models.foldin",
    "serving.index",
    "quality",
    "user_metrics",
    "tuning",
    "snapshot",
    "models",
    "models.als",
    "models.data",
    "models.answers",
]


def test_the_store_is_neutral_about_snapshots() -> None:
    """store/ moves named files and a manifest; what they mean is snapshot's business."""
    loaded = imported_after("recommender.store, recommender.store.objects")
    assert not {m for m in loaded if m.startswith(("recommender.snapshot", "recommender.models"))}


def imported_after(module: str) -> set[str]:
    script = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_import_no_kafka_and_no_aiohttp(name: str) -> None:
    loaded = imported_after(f"recommender.{name}")
    assert not {m for m in loaded if m.split(".")[0] in ("confluent_kafka", "aiohttp")}


def test_the_server_never_imports_the_builder() -> None:
    server = sorted(
        f"recommender.server.{path.stem}"
        for path in (Path(__file__).parents[2] / "recommender" / "server").glob("*.py")
    )
    loaded = imported_after(", ".join(server))
    assert set(server) <= loaded
    assert not {m for m in loaded if m.startswith("recommender.builder")}
