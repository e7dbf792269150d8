"""What the Makefile installs on a fresh clone: the demo needs only the runtime dependencies."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def planned(target: str, tmp_path: Path) -> str:
    venv = tmp_path / "venv"  # absent: make plans a fresh clone's install
    done = subprocess.run(
        ["make", "-n", target, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs_make
def test_make_demo_installs_the_runtime_only_and_make_test_the_dev_tools(tmp_path):
    demo = planned("demo", tmp_path)
    assert "pip install --quiet -e .\n" in demo and ".[dev]" not in demo
    assert "pip install --quiet -e '.[dev]'" in planned("test", tmp_path)


@needs_make
def test_make_docs_installs_the_docs_extra_and_fails_on_a_broken_link(tmp_path):
    docs = planned("docs", tmp_path)
    assert "pip install --quiet -e '.[docs]'" in docs and ".[dev]" not in docs
    assert "mkdocs build --strict" in docs
