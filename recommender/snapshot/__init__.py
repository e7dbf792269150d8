"""The snapshot format: named ``.npy`` arrays plus a ``manifest.json``; writing and verifying one.

Where snapshots live is :mod:`recommender.store`'s business (it moves named files and a manifest,
and knows nothing of what they mean): this module writes a snapshot's files into a local
directory, verifies a local directory's files, and reads published snapshots through a store.
The manifest lists every array with its SHA-256, dtype and shape; loading checks all of them,
and every array's *values* (finite factors of bounded size, in-range indices, weights and
popularity in their domains), so a snapshot that passes can be served without a request ever
meeting a NaN. Nothing is pickled: arrays are loaded with ``allow_pickle=False``.
"""

from ..models.base import MAX_FACTOR
from ..store import MANIFEST_NAME, MAX_MANIFEST_BYTES
from .arrays import feature_arrays, ranker_arrays, snapshot_arrays
from .files import (
    Snapshot,
    decode_ids,
    encode_ids,
    load_published,
    load_snapshot,
    publish_snapshot,
    read_published_manifest,
    snapshot_in_memory,
    write_snapshot_files,
)
from .manifest import (
    CATALOGUE_ARRAYS,
    COMMON_ARRAYS,
    FORMAT_VERSION,
    RANKER_ARRAYS,
    RECENT_ARRAYS,
    array_specs,
    parse_manifest,
    read_manifest,
    writer_of,
)

__all__ = [
    "CATALOGUE_ARRAYS",
    "COMMON_ARRAYS",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MAX_FACTOR",
    "MAX_MANIFEST_BYTES",
    "RANKER_ARRAYS",
    "RECENT_ARRAYS",
    "Snapshot",
    "array_specs",
    "decode_ids",
    "encode_ids",
    "feature_arrays",
    "load_published",
    "load_snapshot",
    "parse_manifest",
    "publish_snapshot",
    "ranker_arrays",
    "read_manifest",
    "read_published_manifest",
    "snapshot_arrays",
    "snapshot_in_memory",
    "write_snapshot_files",
    "writer_of",
]
