"""Writing and verifying a snapshot's files: named ``.npy`` arrays plus a ``manifest.json``.

Where snapshots live is :mod:`recommender.store`'s business (it moves named files and a manifest,
and knows nothing of what they mean): this module writes a snapshot's files into a local
directory, verifies a local directory's files, and reads published snapshots through a store.
The manifest lists every array with its SHA-256, dtype and shape; loading checks all of them,
and every array's *values* (finite factors of bounded size, in-range indices, weights and
popularity in their domains), so a snapshot that passes can be served without a request ever
meeting a NaN. Nothing is pickled: arrays are loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import SnapshotError
from ..events import MAX_PAIR_WEIGHT
from ..models import family_of, model_class
from ..store import MANIFEST_NAME, SnapshotStore, WriterLease, as_store
from .manifest import (
    CATALOGUE_ARRAYS,
    FORMAT_VERSION,
    RANKER_ARRAYS,
    RECENT_ARRAYS,
    array_specs,
    parse_manifest,
    read_manifest,
)

__all__ = [
    "Snapshot",
    "decode_ids",
    "encode_ids",
    "load_published",
    "load_snapshot",
    "publish_snapshot",
    "read_published_manifest",
    "snapshot_in_memory",
    "write_snapshot_files",
]


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

    @property
    def family(self) -> str:
        """The model family that made it (see :func:`recommender.models.family_of`)."""
        return family_of(self.manifest)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_snapshot_files(
    directory: Path, version: int, arrays: Mapping[str, np.ndarray], manifest: Mapping[str, Any]
) -> dict[str, Any]:
    """Write a snapshot's arrays and manifest into ``directory`` (fsynced); returns the manifest.

    ``manifest`` holds the descriptive fields; ``version``, ``format``, ``created_at`` and
    ``files`` are added here.
    """
    specs = array_specs(manifest)
    missing = set(specs) ^ set(arrays)
    if not set(arrays) & set(RECENT_ARRAYS):  # optional (snapshots before model families)
        missing -= set(RECENT_ARRAYS)
    if not set(arrays) & set(RANKER_ARRAYS):  # only where a learned ranker serves
        missing -= set(RANKER_ARRAYS)
    if not set(arrays) & set(CATALOGUE_ARRAYS):  # and learnt from the catalogue
        missing -= set(CATALOGUE_ARRAYS)
    if missing:
        raise SnapshotError(f"snapshot arrays do not match the format: {sorted(missing)}")
    files: dict[str, dict[str, Any]] = {}
    for name, array in arrays.items():
        array = np.ascontiguousarray(array, dtype=specs[name].dtype)
        path = directory / f"{name}.npy"
        with path.open("wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        files[name] = {
            "file": path.name,
            "sha256": _sha256(path),
            "dtype": specs[name].dtype,
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
    with (directory / MANIFEST_NAME).open("w", encoding="utf-8") as f:
        json.dump(full, f, indent=2, sort_keys=True, allow_nan=False)
        f.flush()
        os.fsync(f.fileno())
    return full


def publish_snapshot(
    store: SnapshotStore | Path,
    version: int,
    arrays: Mapping[str, np.ndarray],
    manifest: Mapping[str, Any],
    *,
    lease: WriterLease | None = None,
) -> str:
    """Write a snapshot and publish it atomically as ``version``; returns where it went.

    ``store`` is a :class:`~recommender.store.SnapshotStore` or a local model directory;
    ``lease``: the writer's lock, checked before anything becomes visible (its owner and fencing
    token go into the manifest's ``store.writer``).
    """
    target = as_store(store)
    if lease is not None:
        store_section = dict(manifest.get("store") or {})
        manifest = {**manifest, "store": {**store_section, "writer": lease.to_dict()}}
    with target.staging() as staged:
        write_snapshot_files(staged, version, arrays, manifest)
        return target.commit(staged, version, lease=lease)


def read_published_manifest(store: SnapshotStore, version: int) -> dict[str, Any]:
    """The validated manifest of ``version`` in ``store`` (raises SnapshotError)."""
    where = f"{store.location}/v{version}"
    return parse_manifest(store.manifest_bytes(version), where, version=version)


def load_published(store: SnapshotStore, version: int, *, mmap: bool = True) -> Snapshot:
    """Load and verify ``version`` of ``store`` (raises SnapshotError)."""
    return load_snapshot(store.local_copy(version), mmap=mmap, version=version)


def _value_problems(manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Everything wrong with the arrays' shapes and values (they have the right dtypes)."""
    indptr, indices = arrays["seen_indptr"], arrays["seen_indices"]
    weights = arrays["seen_weights"]
    popularity, recent = arrays["popularity"], arrays["recent_popularity"]
    n_users, n_items = max(int(indptr.shape[0]) - 1, 0), int(popularity.shape[0])
    problems = []
    if (
        indptr.shape[0] < 1
        or int(indptr[0]) != 0
        or int(indptr[-1]) != indices.size
        or bool((np.diff(indptr) < 0).any())
    ):
        problems.append("seen_indptr does not match the users")
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n_items):
        problems.append("seen_indices out of range")
    if weights.shape != indices.shape:
        problems.append("seen arrays differ in length")
    elif weights.size and not bool(np.all(np.abs(weights) <= MAX_PAIR_WEIGHT)):
        problems.append(f"seen_weights are not finite numbers within ±{MAX_PAIR_WEIGHT:g}")
    if recent.shape != (n_items,):
        problems.append("popularity does not match the items")
    else:
        if n_items and int(popularity.min()) < 0:
            problems.append("popularity is negative")
        if n_items and not bool(np.all((recent >= 0) & np.isfinite(recent))):
            problems.append("recent_popularity is not finite and >= 0")
    if "recent_indptr" in arrays:
        r_indptr, r_items = arrays["recent_indptr"], arrays["recent_items"]
        if (
            r_indptr.shape != (n_users + 1,)
            or int(r_indptr[0]) != 0
            or int(r_indptr[-1]) != r_items.size
            or bool((np.diff(r_indptr) < 0).any())
        ):
            problems.append("recent_indptr does not match the users")
        elif r_items.size and (int(r_items.min()) < 0 or int(r_items.max()) >= n_items):
            problems.append("recent_items out of range")
    if "ranker_model" in arrays:
        for name in RANKER_ARRAYS:
            size = n_items if name.startswith("feature_item") else n_users
            if name != "ranker_model" and arrays[name].shape != (size,):
                problems.append(f"{name} does not match the {name.split('_')[1]}s")
    if "feature_item_attributes" in arrays:
        problems += _catalogue_problems(arrays, n_items)
    own = {k: v for k, v in arrays.items() if k in model_class(family_of(manifest)).ARRAYS}
    problems += model_class(family_of(manifest)).check_arrays(own, n_users, n_items)
    return problems


def _catalogue_problems(arrays: Mapping[str, np.ndarray], n_items: int) -> list[str]:
    attributes = arrays["feature_item_attributes"]
    problems = []
    if attributes.shape[0] != n_items:
        problems.append("feature_item_attributes does not match the items")
    elif np.isinf(attributes).any():  # NaN is an unknown value (the schema's default then)
        problems.append("feature_item_attributes holds an infinite value")
    for sets in ("category", "label"):
        indptr = arrays[f"feature_item_{sets}_indptr"]
        indices = arrays[f"feature_item_{sets}_indices"]
        if (
            indptr.shape != (n_items + 1,)
            or int(indptr[0]) != 0
            or int(indptr[-1]) != indices.size
            or bool((np.diff(indptr) < 0).any())
        ):
            problems.append(f"feature_item_{sets}_indptr does not match the items")
        elif indices.size and int(indices.min()) < 0:
            problems.append(f"feature_item_{sets}_indices out of range")
    return problems


#: numpy reads each .npy header with ``ast.literal_eval``, and CPython 3.11 keeps the AST
#: constructor's recursion depth per interpreter, not per thread: two loads at once (a champion's
#: and a challenger's watcher) can fail with "SystemError: AST constructor recursion depth
#: mismatch" (cpython gh-106905; seen in make test, where it refused a good snapshot). Header
#: reads are short, so one at a time costs nothing.
_NPY_HEADERS = threading.Lock()


def load_snapshot(path: Path, *, mmap: bool = True, version: int | None = None) -> Snapshot:
    """Load and verify the snapshot in directory ``path``: the manifest's structure, checksums,
    dtypes, shapes and every array's values (``version``: the number it is published as).

    Arrays are memory-mapped read-only by default, so several server processes on one machine
    share one copy of the factors through the page cache.

    Raises
    ------
    SnapshotError
        Anything is missing, corrupt, inconsistent or out of its domain.
    """
    manifest = read_manifest(path, version=version)
    specs = array_specs(manifest)
    arrays: dict[str, np.ndarray] = {}
    try:
        for name, meta in manifest["files"].items():
            file = path / meta["file"]
            if _sha256(file) != meta["sha256"]:
                raise SnapshotError(f"{path}: checksum mismatch in {file.name}")
            with _NPY_HEADERS:
                array = np.load(file, allow_pickle=False, mmap_mode="r" if mmap else None)
            if str(array.dtype) != specs[name].dtype or list(array.shape) != meta["shape"]:
                raise SnapshotError(f"{path}: {file.name} has the wrong dtype or shape")
            arrays[name] = array
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"{path}: unreadable snapshot: {exc}") from exc
    try:
        problems = _value_problems(manifest, arrays)
    except (ValueError, IndexError, TypeError) as exc:  # whatever a crafted array provokes
        problems = [f"inconsistent arrays ({exc})"]
    if problems:
        raise SnapshotError(f"{path}: {'; '.join(problems)}")
    n_users, n_items = arrays["seen_indptr"].shape[0] - 1, arrays["popularity"].shape[0]
    try:
        user_ids = decode_ids(arrays["user_ids"], n_users)
        item_ids = decode_ids(arrays["item_ids"], n_items)
    except UnicodeDecodeError as exc:
        raise SnapshotError(f"{path}: ids are not UTF-8") from exc
    except SnapshotError as exc:
        raise SnapshotError(f"{path}: {exc}") from exc
    if len(set(user_ids)) != n_users or len(set(item_ids)) != n_items:
        raise SnapshotError(f"{path}: ids are not distinct")
    return Snapshot(path, manifest, arrays, user_ids, item_ids)


def snapshot_in_memory(
    version: int,
    arrays: Mapping[str, np.ndarray],
    manifest: Mapping[str, Any],
    user_ids: list[str],
    item_ids: list[str],
) -> Snapshot:
    """A snapshot that never touches the disk (evaluation)."""
    return Snapshot(
        path=Path("<memory>"),
        manifest={"format": FORMAT_VERSION, "version": version, **manifest},
        arrays=dict(arrays),
        user_ids=list(user_ids),
        item_ids=list(item_ids),
    )
