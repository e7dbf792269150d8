"""Snapshots: round trip, verification, retention, and atomicity against readers and SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from recommender.errors import SnapshotError
from recommender.snapshot import (
    cleanup_incomplete,
    latest_snapshot_dir,
    list_snapshot_dirs,
    load_snapshot,
    prune_snapshots,
)

from .helpers import block_events, publish_window


def test_round_trip_keeps_ids_factors_and_manifest(tmp_path):
    path = publish_window(tmp_path, 1, block_events())
    snap = load_snapshot(path)
    assert snap.version == 1
    assert len(snap.user_ids) == 40 and len(snap.item_ids) == 20
    assert snap.arrays["user_factors"].shape == (40, 2)
    assert snap.manifest["partitions"] == {"0": {"window_start": 0, "next_offset": 360}}
    assert set(snap.manifest["files"]) == set(snap.arrays)
    assert latest_snapshot_dir(tmp_path) == (1, path)


def test_ids_with_any_unicode_survive(tmp_path):
    events = [("zoë", "café"), ("😀", "naïve item"), ("plain", "café")]
    snap = load_snapshot(publish_window(tmp_path, 3, events))
    assert sorted(snap.user_ids) == sorted(["zoë", "😀", "plain"])
    assert sorted(snap.item_ids) == ["café", "naïve item"]


def test_a_flipped_byte_is_caught_by_the_checksum(tmp_path):
    path = publish_window(tmp_path, 1, block_events())
    file = path / "item_factors.npy"
    data = bytearray(file.read_bytes())
    data[-3] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="checksum"):
        load_snapshot(path)


@pytest.mark.parametrize("damage", ["missing_file", "bad_manifest", "no_manifest", "wrong_shape"])
def test_damaged_snapshots_are_rejected(tmp_path, damage):
    path = publish_window(tmp_path, 1, block_events())
    manifest = path / "manifest.json"
    if damage == "missing_file":
        (path / "seen_indices.npy").unlink()
    elif damage == "bad_manifest":
        manifest.write_text("{not json")
    elif damage == "no_manifest":
        manifest.unlink()
    else:
        meta = json.loads(manifest.read_text())
        meta["files"]["popularity"]["shape"] = [999]
        manifest.write_text(json.dumps(meta))
    with pytest.raises(SnapshotError):
        load_snapshot(path)


def test_non_finite_factors_are_rejected_even_with_a_valid_checksum(tmp_path):
    path = publish_window(tmp_path, 1, block_events())
    import hashlib

    factors = np.load(path / "user_factors.npy")
    factors[0, 0] = np.inf
    np.save(path / "user_factors.npy", factors)
    meta = json.loads((path / "manifest.json").read_text())
    meta["files"]["user_factors"]["sha256"] = hashlib.sha256(
        (path / "user_factors.npy").read_bytes()
    ).hexdigest()
    (path / "manifest.json").write_text(json.dumps(meta))
    with pytest.raises(SnapshotError, match="finite"):
        load_snapshot(path)


def test_pickled_arrays_are_never_loaded(tmp_path):
    path = publish_window(tmp_path, 1, block_events())
    np.save(path / "popularity.npy", np.array([object()] * 20, dtype=object), allow_pickle=True)
    with pytest.raises(SnapshotError):
        load_snapshot(path)


def test_retention_keeps_the_newest(tmp_path):
    for v in range(1, 6):
        publish_window(tmp_path, v, block_events(users_per=3))
    removed = prune_snapshots(tmp_path, keep=2)
    assert [p.name for p in removed] == ["v000000000001", "v000000000002", "v000000000003"]
    assert [v for v, _ in list_snapshot_dirs(tmp_path)] == [4, 5]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_reader_racing_a_writer_only_ever_sees_complete_snapshots(tmp_path):
    stop = threading.Event()
    loaded, errors = [], []

    def reader():
        while not stop.is_set():
            latest = latest_snapshot_dir(tmp_path)
            if latest is None:
                continue
            try:
                loaded.append(load_snapshot(latest[1]).version)
            except SnapshotError as exc:
                # Pruning may delete a snapshot between listing and reading; never a partial one.
                if latest_snapshot_dir(tmp_path)[0] == latest[0]:
                    errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for v in range(1, 25):
            publish_window(tmp_path, v, block_events(users_per=5))
            prune_snapshots(tmp_path, keep=2)
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert len(set(loaded)) >= 2  # it really read while the writer published


WRITER = """
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
from recommender.snapshot import publish_snapshot
from tests.unit.helpers import random_snapshot_arrays
arrays = random_snapshot_arrays(200_000, 20_000, 32)  # ~30 MB a snapshot: writing takes a while
v = 1
while True:
    publish_snapshot(Path({dir!r}), v, arrays, {{"topic": "t"}})
    print(v, flush=True)
    v += 1
"""


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.013, 0.029, 0.047, 0.071])
def test_a_writer_killed_mid_publication_leaves_only_complete_snapshots(tmp_path, delay):
    root = str(Path(__file__).resolve().parents[2])
    code = WRITER.format(root=root, dir=str(tmp_path))
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for _ in range(2):  # let it publish twice, then kill it at some instant of the third
            proc.stdout.readline()
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    published = list_snapshot_dirs(tmp_path)
    assert len(published) >= 2
    for _, path in published:
        load_snapshot(path)  # every published name loads and verifies
    cleanup_incomplete(tmp_path)
    assert all(not p.name.startswith(".") for p in tmp_path.iterdir())
