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

from recommender.errors import ConfigError, SnapshotError
from recommender.snapshot import load_published, load_snapshot, read_published_manifest
from recommender.store import LocalStore, open_store

from .helpers import block_events, publish_window


def test_round_trip_keeps_ids_factors_and_manifest(tmp_path):
    path = publish_window(tmp_path, 1, block_events())
    snap = load_snapshot(path)
    assert snap.version == 1
    assert len(snap.user_ids) == 40 and len(snap.item_ids) == 20
    assert snap.arrays["user_factors"].shape == (40, 2)
    assert snap.manifest["partitions"] == {"0": {"window_start": 0, "next_offset": 360}}
    assert set(snap.manifest["files"]) == set(snap.arrays)
    assert LocalStore(tmp_path).latest() == 1 and LocalStore(tmp_path).path_of(1) == path


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


def _replace_array(path, name, array):
    """Write ``array`` as ``name`` and fix the manifest's checksum and shape (a crafted snapshot
    that passes the checksum)."""
    import hashlib

    np.save(path / f"{name}.npy", array)
    meta = json.loads((path / "manifest.json").read_text())
    meta["files"][name]["sha256"] = hashlib.sha256((path / f"{name}.npy").read_bytes()).hexdigest()
    meta["files"][name]["shape"] = list(array.shape)
    (path / "manifest.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("seen_weights", lambda a: np.full_like(a, np.nan), "seen_weights"),
        ("seen_weights", lambda a: np.full_like(a, 1e30), "seen_weights"),
        ("popularity", lambda a: -a - 1, "popularity is negative"),
        ("recent_popularity", lambda a: np.full_like(a, -1.0), "recent_popularity"),
        ("item_factors", lambda a: a * 1e12, "item factors"),
        ("user_factors", lambda a: np.full_like(a, np.nan), "user factors"),
    ],
)
def test_every_array_value_is_checked_even_with_a_valid_checksum(tmp_path, name, damage, message):
    """A NaN seen weight once reached /users/ID/items as a non-JSON NaN and /because as a 500."""
    path = publish_window(tmp_path, 1, block_events())
    _replace_array(path, name, damage(np.load(path / f"{name}.npy")))
    with pytest.raises(SnapshotError, match=message):
        load_snapshot(path)


def test_duplicate_ids_are_rejected(tmp_path):
    from recommender.snapshot import encode_ids

    path = publish_window(tmp_path, 1, [("u1", "a"), ("u2", "b")])
    _replace_array(path, "user_ids", encode_ids(["u1", "u1"]))
    with pytest.raises(SnapshotError, match="distinct"):
        load_snapshot(path)


NESTED = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    "craft",
    [
        lambda m: NESTED,
        lambda m: json.dumps({**m, "files": list(m["files"])}),
        lambda m: json.dumps({**m, "files": {**m["files"], "popularity": "x"}}),
        lambda m: json.dumps(
            {
                **m,
                "files": {**m["files"], "popularity": {**m["files"]["popularity"], "file": "../x"}},
            }
        ),
        lambda m: json.dumps({**m, "version": "1"}),
        lambda m: json.dumps({**m, "partitions": {"0": {"window_start": -1, "next_offset": 3}}}),
        lambda m: json.dumps({**m, "partitions": []}),
        lambda m: json.dumps({**m, "params": [1]}),
        lambda m: json.dumps({**m, "window": {"newest_weight": "2"}}),
        lambda m: json.dumps({**m, "window": {"newest_weight": 0}}),
        lambda m: json.dumps({**m, "window": {"newest_weight": True}}),
        lambda m: json.dumps({**m, "window": {"newest_weight": float("inf")}}),
        lambda m: json.dumps([m]),
        lambda m: " " * (9 << 20),
        lambda m: json.dumps({**m, "store": "x"}),
        lambda m: json.dumps({**m, "store": {"id": 3}}),
        lambda m: json.dumps({**m, "store": {"writer": {"token": -1}}}),
        lambda m: json.dumps({**m, "store": {"writer": {"token": "1"}}}),
    ],
)
def test_crafted_manifests_are_a_snapshot_error_never_a_crash(tmp_path, craft):
    """A deeply nested manifest, or one whose files is a list, once made the builder exit 1."""
    path = publish_window(tmp_path, 1, block_events(users_per=3))
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(craft(manifest))
    with pytest.raises(SnapshotError):
        load_snapshot(path)
    with pytest.raises(SnapshotError):
        read_published_manifest(LocalStore(tmp_path), 1)


def test_a_snapshot_copied_to_another_number_is_refused(tmp_path):
    """An operator restoring a backup as v9 once made the server reload it 4 times a second."""
    import shutil

    path = publish_window(tmp_path, 1, block_events(users_per=3))
    shutil.copytree(path, tmp_path / "v000000000009")
    store = LocalStore(tmp_path)
    assert store.versions() == [1, 9]
    with pytest.raises(SnapshotError, match="says version 1 but it is published as 9"):
        load_published(store, 9)
    assert load_published(store, 1).version == 1


def test_quarantine_moves_a_snapshot_aside_and_keeps_its_number_used(tmp_path):
    for v in (1, 2):
        publish_window(tmp_path, v, block_events(users_per=3))
    store = LocalStore(tmp_path)
    where = store.quarantine(2, "bad manifest")
    assert where is not None and "quarantine" in where
    assert store.versions() == [1]
    assert store.highest_version() == 2  # the next publication is v3, never a second v2
    assert "bad manifest" in (Path(where) / "QUARANTINED.txt").read_text()
    assert store.quarantine(2, "again") is None
    store.cleanup_incomplete()
    assert Path(where).exists()  # quarantined snapshots stay for the operator to look at


@pytest.mark.parametrize("location", ["s3:bucket/x", "s3:/bucket", "ftp://host/x", "file://rel"])
def test_a_url_that_cannot_be_opened_is_an_error_never_a_local_folder(tmp_path, location):
    """--model-dir s3://models/recs once silently created a local folder named 's3:'."""
    with pytest.raises(ConfigError):
        open_store(location)


def test_local_paths_and_file_urls_open_a_local_store(tmp_path):
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert open_store(f"file://{tmp_path}").location == str(tmp_path)
    assert isinstance(open_store("./s3:odd-but-local"), LocalStore)


def test_pickled_arrays_are_never_loaded(tmp_path):
    path = publish_window(tmp_path, 1, block_events())
    np.save(path / "popularity.npy", np.array([object()] * 20, dtype=object), allow_pickle=True)
    with pytest.raises(SnapshotError):
        load_snapshot(path)


def test_retention_keeps_the_newest(tmp_path):
    for v in range(1, 6):
        publish_window(tmp_path, v, block_events(users_per=3))
    store = LocalStore(tmp_path)
    assert store.prune(keep=2) == [1, 2, 3]
    assert store.versions() == [4, 5]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_reader_racing_a_writer_only_ever_sees_complete_snapshots(tmp_path):
    stop = threading.Event()
    loaded, errors = [], []
    store = LocalStore(tmp_path)

    def reader():
        while not stop.is_set():
            latest = store.latest()
            if latest is None:
                continue
            try:
                loaded.append(load_published(store, latest).version)
            except SnapshotError as exc:
                # Pruning may delete a snapshot between listing and reading; never a partial one.
                if store.latest() == latest:
                    errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for v in range(1, 25):
            publish_window(tmp_path, v, block_events(users_per=5))
            store.prune(keep=2)
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
    store = LocalStore(tmp_path)
    published = store.versions()
    assert len(published) >= 2
    for version in published:
        load_published(store, version)  # every published name loads and verifies
    store.cleanup_incomplete()
    assert all(not p.name.startswith(".") for p in tmp_path.iterdir())
