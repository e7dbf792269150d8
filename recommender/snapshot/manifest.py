"""A snapshot's manifest: the arrays a model family's snapshot holds, and the manifest's checks.

Every field is validated (types, names, sizes, JSON nesting) before anything trusts it, so a
crafted manifest is one SnapshotError, never a crash.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypeGuard

from ..errors import SnapshotError
from ..models import FAMILIES, family_of, model_class
from ..models.base import ArraySpec
from ..store import MANIFEST_NAME, MAX_MANIFEST_BYTES

__all__ = [
    "CATALOGUE_ARRAYS",
    "COMMON_ARRAYS",
    "FORMAT_VERSION",
    "RANKER_ARRAYS",
    "RECENT_ARRAYS",
    "array_specs",
    "parse_manifest",
    "read_manifest",
    "writer_of",
]


FORMAT_VERSION: Final = 1
_FILE_RE: Final = re.compile(r"^[a-z_]{1,64}\.npy$")
_SHA_RE: Final = re.compile(r"^[0-9a-f]{64}$")

#: The arrays every snapshot has, whatever its model family, with their dtype and dimensions.
COMMON_ARRAYS: Final[dict[str, ArraySpec]] = {
    "user_ids": ArraySpec("uint8", 1),
    "item_ids": ArraySpec("uint8", 1),
    "seen_indptr": ArraySpec("int64", 1),
    "seen_indices": ArraySpec("int32", 1),
    "seen_weights": ArraySpec("float32", 1),
    "popularity": ArraySpec("int64", 1),
    "recent_popularity": ArraySpec("float32", 1),
}
#: Each user's newest liked items in time order (see models.Sequences): in snapshots since model
#: families (sequence-aware families answer from them); absent in older ones.
RECENT_ARRAYS: Final[dict[str, ArraySpec]] = {
    "recent_indptr": ArraySpec("int64", 1),
    "recent_items": ArraySpec("int32", 1),
}


#: A learned ranker that serves (LightGBM's model text as UTF-8 bytes) and the window's item and
#: user stats its features are computed from: all or none (see recommender.ranker).
RANKER_ARRAYS: Final[dict[str, ArraySpec]] = {
    "ranker_model": ArraySpec("uint8", 1),
    "feature_item_popularity": ArraySpec("int64", 1),
    "feature_item_recent": ArraySpec("int64", 1),
    "feature_item_first_ms": ArraySpec("int64", 1),
    "feature_user_events": ArraySpec("int64", 1),
    "feature_user_liked": ArraySpec("int64", 1),
    "feature_user_first_ms": ArraySpec("int64", 1),
    "feature_user_last_ms": ArraySpec("int64", 1),
}
#: What the catalogue said of the items when a serving ranker was trained: their numeric
#: attributes (items x the schema's ``attr.*`` columns, NaN: unknown), categories and labels
#: (items x categories or ``name=value`` pairs, as CSR rows): all or none, and only with the
#: ranker's arrays.
CATALOGUE_ARRAYS: Final[dict[str, ArraySpec]] = {
    "feature_item_attributes": ArraySpec("float32", 2),
    "feature_item_category_indptr": ArraySpec("int64", 1),
    "feature_item_category_indices": ArraySpec("int32", 1),
    "feature_item_label_indptr": ArraySpec("int64", 1),
    "feature_item_label_indices": ArraySpec("int32", 1),
}
_OPTIONAL: Final = (RECENT_ARRAYS, RANKER_ARRAYS, CATALOGUE_ARRAYS)


def array_specs(manifest: Mapping[str, Any]) -> dict[str, ArraySpec]:
    """The arrays a snapshot of this manifest's model family has (the recent arrays included;
    older snapshots may lack them). Raises SnapshotError for an unknown family."""
    family = family_of(manifest)
    try:
        own = model_class(family).ARRAYS
    except KeyError:
        raise SnapshotError(f"unknown model family {family!r}") from None
    return {**COMMON_ARRAYS, **RECENT_ARRAYS, **RANKER_ARRAYS, **CATALOGUE_ARRAYS, **own}


def writer_of(manifest: Mapping[str, Any]) -> tuple[str | None, int]:
    """(store id, fencing token) a manifest was published with ((None, 0) for older ones)."""
    section = manifest.get("store") or {}
    writer = section.get("writer") or {}
    return section.get("id"), int(writer.get("token") or 0)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_manifest(manifest: object) -> str | None:
    """What is wrong with a manifest's structure, or None."""
    if not isinstance(manifest, dict):
        return "not a JSON object"
    if manifest.get("format") != FORMAT_VERSION:
        return f"not a format-{FORMAT_VERSION} snapshot manifest"
    version = manifest.get("version")
    if not _is_int(version) or version < 1:
        return "version is not a positive integer"
    if not isinstance(manifest.get("created_at", 0), int | float):
        return "created_at is not a number"
    if not isinstance(manifest.get("topic", ""), str):
        return "topic is not a string"
    if not isinstance(manifest.get("topic_id") or "", str):
        return "topic_id is not a string"
    for key in ("params", "window", "builder"):
        if not isinstance(manifest.get(key, {}), dict):
            return f"{key} is not an object"
    problem = _check_store_section(manifest.get("store"))
    if problem:
        return problem
    newest_weight = manifest.get("window", {}).get("newest_weight", 1.0)
    if not _is_number(newest_weight) or not 0 < newest_weight < 1e6:
        return "window.newest_weight is not a positive number"
    model = manifest.get("model")
    if model is not None and not (
        isinstance(model, dict)
        and isinstance(model.get("family"), str)
        and isinstance(model.get("params", {}), dict)
    ):
        return "model is not an object with a family name and params"
    family = family_of(manifest)
    if family not in FAMILIES:
        return f"unknown model family {family[:40]!r} (a newer builder's snapshot?)"
    specs = array_specs(manifest)
    files = manifest.get("files")
    required = set(specs).difference(*_OPTIONAL)
    if not isinstance(files, dict) or not required <= set(files) <= set(specs):
        return f"files must name exactly the arrays {sorted(specs)}"
    for group in _OPTIONAL:
        if 0 < len(set(group) & set(files)) < len(group):
            return f"files must name all or none of {sorted(group)}"
    ranker = manifest.get("ranker")
    if set(RANKER_ARRAYS) <= set(files) and not (
        isinstance(ranker, dict) and ranker.get("serves") is True
        and isinstance(ranker.get("schema"), dict)
    ):  # fmt: skip
        return "a snapshot with ranker arrays needs a ranker section that serves, with a schema"
    if set(CATALOGUE_ARRAYS) <= set(files) and not set(RANKER_ARRAYS) <= set(files):
        return "a snapshot with catalogue feature arrays needs the ranker's arrays"
    for name, meta in files.items():
        if not isinstance(meta, dict):
            return f"files.{name} is not an object"
        file, sha, shape = meta.get("file"), meta.get("sha256"), meta.get("shape")
        if not isinstance(file, str) or not _FILE_RE.match(file):
            return f"files.{name}.file is not a plain .npy file name"
        if not isinstance(sha, str) or not _SHA_RE.match(sha):
            return f"files.{name}.sha256 is not a SHA-256 hex digest"
        if meta.get("dtype") != specs[name].dtype:
            return f"files.{name}.dtype must be {specs[name].dtype}"
        ndim = specs[name].ndim
        if (
            not isinstance(shape, list)
            or len(shape) != ndim
            or not all(_is_int(d) and d >= 0 for d in shape)
        ):
            return f"files.{name}.shape is not a list of {ndim} sizes"
    partitions = manifest.get("partitions", {})
    if not isinstance(partitions, dict):
        return "partitions is not an object"
    for p, pos in partitions.items():
        if not (isinstance(p, str) and p.isdigit() and isinstance(pos, dict)):
            return "partitions must map partition numbers to objects"
        for key in ("window_start", "next_offset"):
            if not _is_int(pos.get(key)) or pos[key] < 0:
                return f"partitions.{p}.{key} is not an offset"
    return None


def _check_store_section(section: object) -> str | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        return "store is not an object"
    if not isinstance(section.get("id") or "", str):
        return "store.id is not a string"
    writer = section.get("writer")
    if writer is not None and not (
        isinstance(writer, dict) and _is_int(writer.get("token")) and writer["token"] >= 0
    ):
        return "store.writer.token is not a fencing token"
    return None


def parse_manifest(raw: bytes, where: str, *, version: int | None = None) -> dict[str, Any]:
    """Decode and validate a manifest (``version``: the number it must carry).

    Raises
    ------
    SnapshotError
        Anything about it is wrong: too big, not JSON, nested too deep, a field of the wrong
        type, or a version other than the number it is published under (a copied snapshot).
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise SnapshotError(f"{where}: manifest is {len(raw):,} bytes; not a manifest")
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SnapshotError(f"{where}: unreadable manifest: {str(exc)[:200]}") from None
    problem = _check_manifest(manifest)
    if problem:
        raise SnapshotError(f"{where}: bad manifest: {problem}")
    if version is not None and manifest["version"] != version:
        raise SnapshotError(
            f"{where}: the manifest says version {manifest['version']} but it is published as "
            f"{version} (a copied snapshot?); the builder only publishes numbers in order"
        )
    return dict(manifest)


def read_manifest(path: Path, *, version: int | None = None) -> dict[str, Any]:
    """The validated manifest of the snapshot directory ``path`` (no array is read)."""
    try:
        with (path / MANIFEST_NAME).open("rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise SnapshotError(f"{path}: unreadable manifest: {exc}") from exc
    return parse_manifest(raw, str(path), version=version)
