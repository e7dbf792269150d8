"""Snapshots: atomic publication, verified loading, retention.

A snapshot is a directory ``v<version>`` (12 digits) under the model directory, holding ``.npy``
arrays and a ``manifest.json`` that lists every array with its SHA-256, dtype and shape. It is
written under a hidden temporary name, fsynced, and renamed into place, so a reader that lists the
model directory only ever sees complete snapshots, even if the writer is killed at any instant.
Nothing is pickled: arrays are loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .errors import SnapshotError
from .training import TrainedFactors
from .window import WindowMatrix

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "Snapshot",
    "cleanup_incomplete",
    "decode_ids",
    "encode_ids",
    "latest_snapshot_dir",
    "list_snapshot_dirs",
    "load_snapshot",
    "prune_snapshots",
    "publish_snapshot",
    "read_manifest",
    "snapshot_arrays",
    "snapshot_dir_name",
    "snapshot_in_memory",
]

FORMAT_VERSION: Final = 1
MANIFEST_NAME: Final = "manifest.json"
_DIR_RE: Final = re.compile(r"^v(\d{12})$")
_TMP_PREFIX: Final = ".incoming-"
_TRASH_PREFIX: Final = ".trash-"

#: The arrays every snapshot has, with the dtype each must have.
ARRAY_DTYPES: Final[dict[str, str]] = {
    "user_factors": "float32",
    "item_factors": "float32",
    "user_ids": "uint8",
    "item_ids": "uint8",
    "seen_indptr": "int64",
    "seen_indices": "int32",
    "seen_weights": "float32",
    "popularity": "int64",
    "recent_popularity": "float32",
}


def snapshot_dir_name(version: int) -> str:
    return f"v{version:012d}"


def encode_ids(ids: list[str]) -> npt.NDArray[np.uint8]:
    """Ids as one UTF-8 buffer, newline-separated (ids never contain control characters)."""
    return np.frombuffer("\n".join(ids).encode("utf-8"), dtype=np.uint8)


def decode_ids(buffer: npt.NDArray[np.uint8], count: int) -> list[str]:
    """Inverse of :func:`encode_ids`; ``count`` guards against a mismatched buffer."""
    ids = buffer.tobytes().decode("utf-8").split("\n") if count else []
    if len(ids) != count:
        raise SnapshotError(f"expected {count} ids, found {len(ids)}")
    return ids


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A loaded, verified snapshot."""

    path: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]
    user_ids: list[str]
    item_ids: list[str]

    @property
    def version(self) -> int:
        return int(self.manifest["version"])


def list_snapshot_dirs(model_dir: Path) -> list[tuple[int, Path]]:
    """Published snapshots as ``(version, path)``, oldest first."""
    try:
        entries = list(os.scandir(model_dir))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        match = _DIR_RE.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), Path(entry.path)))
    return sorted(found)


def latest_snapshot_dir(model_dir: Path) -> tuple[int, Path] | None:
    dirs = list_snapshot_dirs(model_dir)
    return dirs[-1] if dirs else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_snapshot(
    model_dir: Path,
    version: int,
    arrays: Mapping[str, np.ndarray],
    manifest: Mapping[str, Any],
) -> Path:
    """Write a snapshot atomically and return its directory.

    Parameters
    ----------
    model_dir : Path
        Where snapshots live; created if missing.
    version : int
        Must be greater than every published version.
    arrays : mapping of str to ndarray
        Exactly the arrays named in ``ARRAY_DTYPES``.
    manifest : mapping
        Descriptive fields; ``version``, ``format``, ``created_at`` and ``files`` are added here.
    """
    missing = set(ARRAY_DTYPES) ^ set(arrays)
    if missing:
        raise SnapshotError(f"snapshot arrays do not match the format: {sorted(missing)}")
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / snapshot_dir_name(version)
    if final.exists():
        raise SnapshotError(f"snapshot {final} already exists")
    tmp = model_dir / f"{_TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        files: dict[str, dict[str, Any]] = {}
        for name, array in arrays.items():
            array = np.ascontiguousarray(array, dtype=ARRAY_DTYPES[name])
            path = tmp / f"{name}.npy"
            with path.open("wb") as f:
                np.save(f, array, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            files[name] = {
                "file": path.name,
                "sha256": _sha256(path),
                "dtype": ARRAY_DTYPES[name],
                "shape": list(array.shape),
            }
        now = time.time()
        full = {
            "format": FORMAT_VERSION,
            "version": version,
            "created_at": now,
            "created_at_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            **manifest,
            "files": files,
        }
        with (tmp / MANIFEST_NAME).open("w", encoding="utf-8") as f:
            json.dump(full, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        os.rename(tmp, final)
        _fsync_dir(model_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the snapshot at ``path`` (no array is read)."""
    try:
        with (path / MANIFEST_NAME).open(encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"{path}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise SnapshotError(f"{path}: not a format-{FORMAT_VERSION} snapshot manifest")
    return manifest


def load_snapshot(path: Path, *, mmap: bool = True) -> Snapshot:
    """Load and verify a snapshot: checksums, dtypes, shapes, finite factors.

    Arrays are memory-mapped read-only by default, so several server processes on one machine
    share one copy of the factors through the page cache.

    Raises
    ------
    SnapshotError
        Anything is missing, corrupt or inconsistent.
    """
    manifest = read_manifest(path)
    files = manifest.get("files", {})
    if set(files) != set(ARRAY_DTYPES):
        raise SnapshotError(f"{path}: manifest lists {sorted(files)}, expected the full set")
    arrays: dict[str, np.ndarray] = {}
    try:
        for name, meta in files.items():
            file = path / meta["file"]
            if _sha256(file) != meta["sha256"]:
                raise SnapshotError(f"{path}: checksum mismatch in {file.name}")
            array = np.load(file, allow_pickle=False, mmap_mode="r" if mmap else None)
            if str(array.dtype) != ARRAY_DTYPES[name] or list(array.shape) != meta["shape"]:
                raise SnapshotError(f"{path}: {file.name} has the wrong dtype or shape")
            arrays[name] = array
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"{path}: unreadable snapshot: {exc}") from exc
    user_f, item_f = arrays["user_factors"], arrays["item_factors"]
    n_users, n_items = user_f.shape[0], item_f.shape[0]
    indptr, indices = arrays["seen_indptr"], arrays["seen_indices"]
    problems = []
    if user_f.ndim != 2 or item_f.ndim != 2 or user_f.shape[1] != item_f.shape[1]:
        problems.append("factor shapes disagree")
    if (
        indptr.shape != (n_users + 1,)
        or int(indptr[0]) != 0
        or int(indptr[-1]) != indices.size
        or bool((np.diff(indptr) < 0).any())
    ):
        problems.append("seen_indptr does not match the users")
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n_items):
        problems.append("seen_indices out of range")
    if arrays["seen_weights"].shape != indices.shape:
        problems.append("seen arrays differ in length")
    if arrays["popularity"].shape != (n_items,) or arrays["recent_popularity"].shape != (n_items,):
        problems.append("popularity does not match the items")
    if not problems and not (np.isfinite(user_f).all() and np.isfinite(item_f).all()):
        problems.append("factors are not finite")
    if problems:
        raise SnapshotError(f"{path}: {'; '.join(problems)}")
    try:
        user_ids = decode_ids(arrays["user_ids"], n_users)
        item_ids = decode_ids(arrays["item_ids"], n_items)
    except UnicodeDecodeError as exc:
        raise SnapshotError(f"{path}: ids are not UTF-8") from exc
    except SnapshotError as exc:
        raise SnapshotError(f"{path}: {exc}") from exc
    return Snapshot(path, manifest, arrays, user_ids, item_ids)


def prune_snapshots(model_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` snapshots; returns what was deleted.

    A snapshot is first renamed to a hidden name (atomic), then removed, so it never appears
    half-deleted under its published name.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    removed = []
    for _, path in list_snapshot_dirs(model_dir)[:-keep]:
        trash = path.with_name(f"{_TRASH_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            continue
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(path)
    return removed


def cleanup_incomplete(model_dir: Path) -> list[Path]:
    """Remove leftovers of writers that died mid-publication (call with the builder lock held)."""
    removed = []
    for entry in model_dir.iterdir() if model_dir.is_dir() else []:
        if entry.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def snapshot_arrays(matrix: WindowMatrix, factors: TrainedFactors) -> dict[str, np.ndarray]:
    """The arrays of a snapshot for one trained window."""
    seen = matrix.user_items
    return {
        "user_factors": factors.user_factors,
        "item_factors": factors.item_factors,
        "user_ids": encode_ids(matrix.user_ids),
        "item_ids": encode_ids(matrix.item_ids),
        "seen_indptr": seen.indptr.astype(np.int64),
        "seen_indices": seen.indices.astype(np.int32),
        "seen_weights": seen.data.astype(np.float32),
        "popularity": matrix.popularity,
        "recent_popularity": matrix.recent_popularity,
    }


def snapshot_in_memory(
    version: int, matrix: WindowMatrix, factors: TrainedFactors, manifest: Mapping[str, Any]
) -> Snapshot:
    """A snapshot that never touches the disk (evaluation, the builder's quality gate)."""
    return Snapshot(
        path=Path("<memory>"),
        manifest={"format": FORMAT_VERSION, "version": version, **manifest},
        arrays=snapshot_arrays(matrix, factors),
        user_ids=list(matrix.user_ids),
        item_ids=list(matrix.item_ids),
    )
