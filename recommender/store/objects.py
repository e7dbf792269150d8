"""Snapshots in an object store (S3 and compatible; Google Cloud Storage; Azure Blob), via obstore.

Layout under the URL's prefix: ``v000000000001/<array>.npy`` ... and
``v000000000001/manifest.json``.
The manifest is written **last and only if absent** (a conditional put): it is the commit point,
so a reader that lists manifests only ever sees complete snapshots, and two writers can never
publish the same number. Pruning deletes the manifest first (unpublishing), then the arrays.
Unreadable snapshots are quarantined by moving their manifest to ``quarantine/v…/``.

Readers download a snapshot's files into a local cache directory (verified against the manifest's
SHA-256 when loaded) and memory-map them from there, so several server processes on one machine
share one copy.

The single-builder rule is kept by a lock object, ``.builder.lock``, changed only by conditional
writes (:mod:`.objlock`): refreshed every 10 s, taken over only once not refreshed for 60 s (a
killed builder), checked before every publication, with a fencing token for every holder.
Endpoint and credentials come from the standard variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``; ``GOOGLE_*``; ``AZURE_*``) and
``--store-option key=value``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, cast

from ..errors import ConfigError, SnapshotError, one_line
from .base import (
    IDENTITY_NAME,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    MAX_STATUS_BYTES,
    SnapshotStore,
    check_document_name,
    parse_status,
    snapshot_name,
    version_of,
)
from .lease import WriterLease
from .objlock import ObjectLock, ObjectOps, retry_transient

__all__ = ["ObjectStore"]

log = logging.getLogger(__name__)

LOCK_NAME: Final = ".builder.lock"
QUARANTINE: Final = "quarantine"
#: obstore retries a failing request for up to 3 minutes by default: a hung store would hold a
#: publication (and the lock check before it) that long. Bounded to 20 s here (backoff from
#: 100 ms); --store-option can say otherwise for the client (timeout, connect_timeout).
_RETRIES: Final = {"max_retries": 10, "retry_timeout": timedelta(seconds=20)}
_COMPLETE: Final = ".complete"  # marks a fully downloaded cache directory
#: --store-option keys that configure the HTTP client; any other key configures the store itself
#: (region, endpoint, access_key_id, virtual_hosted_style_request, ...).
_CLIENT_OPTIONS: Final = frozenset(
    {"allow_http", "allow_invalid_certificates", "connect_timeout", "timeout", "proxy_url",
     "user_agent", "http1_only", "http2_only", "pool_idle_timeout"}
)  # fmt: skip


def _default_cache(url: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "recommender" / hashlib.sha256(url.encode()).hexdigest()[:16]


def _cached(target: Path, manifest: bytes) -> bool:
    """Whether ``target`` is a complete copy of the snapshot whose manifest is ``manifest``."""
    if not (target / _COMPLETE).exists():
        return False
    try:
        return (target / MANIFEST_NAME).read_bytes() == manifest
    except OSError:
        return False


def _discard(target: Path) -> None:
    """Remove a cached copy: renamed aside first (atomic: no reader finds it half deleted;
    one that has its files memory-mapped keeps them), then deleted."""
    aside = target.with_name(f".{target.name}-stale-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(target, aside)
    except OSError:  # gone already (another process replaced it)
        return
    shutil.rmtree(aside, ignore_errors=True)


class ObjectStore(SnapshotStore):
    """Snapshots under an object-store URL (``s3://bucket/prefix``, ``gs://``, ``az://``...)."""

    def __init__(
        self,
        url: str,
        *,
        options: Mapping[str, str] | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        try:
            from obstore.store import from_url
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ConfigError("object-store model directories need the obstore package") from exc
        self.url = url.rstrip("/")
        self.location = self.url
        client = {k: v for k, v in (options or {}).items() if k in _CLIENT_OPTIONS}
        config = {k: v for k, v in (options or {}).items() if k not in _CLIENT_OPTIONS}
        allow = os.environ.get("AWS_ALLOW_HTTP", "").lower() in ("1", "true", "yes")
        if allow or os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://"):
            client.setdefault("allow_http", "true")
        try:
            self._store = cast(Any, from_url)(
                self.url, config=config or None, client_options=client, retry_config=_RETRIES
            )
        except Exception as exc:
            raise ConfigError(f"--model-dir {url!r}: {exc}") from exc
        self.cache_dir = cache_dir or _default_cache(self.url)

    def __repr__(self) -> str:
        return f"ObjectStore({self.location!r})"

    # -- object access -------------------------------------------------------------------------

    def _get(self, path: str, limit: int | None = None) -> bytes | None:
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            result = obstore.get(self._store, path)
            if limit is not None and result.meta["size"] > limit:
                raise SnapshotError(f"{self.url}/{path}: {result.meta['size']:,} bytes, too big")
            return bytes(result.bytes())
        except (NotFoundError, FileNotFoundError):  # obstore raises the latter for a 404
            return None

    def _put(self, path: str, data: bytes | Path, *, create: bool = False) -> None:
        import obstore

        obstore.put(self._store, path, data, mode="create" if create else "overwrite")

    def _delete(self, paths: list[str]) -> None:
        import obstore

        if paths:
            obstore.delete(self._store, paths)

    def _list(self, prefix: str = "") -> list[Any]:
        import obstore

        return [
            meta for batch in obstore.list(self._store, prefix=prefix or None) for meta in batch
        ]

    # -- reading -------------------------------------------------------------------------------

    def versions(self) -> list[int]:
        found = []
        for meta in self._list():
            head, _, name = str(meta["path"]).partition("/")
            version = version_of(head)
            if version is not None and name == MANIFEST_NAME:
                found.append(version)
        return sorted(found)

    def manifest_bytes(self, version: int) -> bytes:
        raw = self._get(f"{snapshot_name(version)}/{MANIFEST_NAME}", MAX_MANIFEST_BYTES)
        if raw is None:
            raise SnapshotError(f"{self.url}/{snapshot_name(version)}: no manifest (pruned?)")
        return raw

    def identity(self, *, create: bool = False) -> str | None:
        return retry_transient(lambda: self._identity(create=create))

    def _identity(self, *, create: bool) -> str | None:
        raw = self._get(IDENTITY_NAME, 256)
        if raw is None and create:
            import obstore
            from obstore.exceptions import AlreadyExistsError

            with contextlib.suppress(AlreadyExistsError):  # two creators agree on one id
                obstore.put(self._store, IDENTITY_NAME, uuid.uuid4().hex.encode(), mode="create")
            raw = self._get(IDENTITY_NAME, 256)
        found = (raw or b"").decode("utf-8", "replace").strip()
        return found or None

    def local_copy(self, version: int) -> Path:
        """Download the version's files into the cache (once), atomically: a half-downloaded
        copy is never taken for a complete one. Every file under the version's prefix is
        fetched; the manifest first, since its presence is what publishes the others.

        The cache is named after the URL only, so a copy there may be of another snapshot that
        had this number: another store at the same URL (a fresh bucket of a local S3 server,
        another endpoint), or a store emptied or restored since. A copy is reused only if its
        manifest is the store's manifest now (one small read); any other is replaced."""
        import obstore

        name = snapshot_name(version)
        target = self.cache_dir / name
        manifest = self.manifest_bytes(version)
        if _cached(target, manifest):
            return target
        if target.exists():
            log.warning(
                "the cached copy of %s/%s is of another snapshot with that number (the store "
                "was replaced, emptied or restored since it was downloaded): downloading again",
                self.url,
                name,
            )
            _discard(target)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self.cache_dir))
        try:
            for path in self._objects_of(version):
                file = path.rsplit("/", 1)[-1]
                if file == MANIFEST_NAME or path.count("/") != 1:
                    continue
                with (staging / file).open("wb") as sink:
                    for chunk in obstore.get(self._store, path).stream(min_chunk_size=8 << 20):
                        sink.write(chunk)
            (staging / MANIFEST_NAME).write_bytes(manifest)
            (staging / _COMPLETE).touch()
            try:
                os.rename(staging, target)
            except OSError:  # another process of this machine got there first
                if not _cached(target, manifest):
                    raise
        except Exception as exc:
            if isinstance(exc, SnapshotError):
                raise
            raise SnapshotError(f"{self.url}/{name}: download failed: {one_line(exc)}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._trim_cache(keep=version)
        return target

    def _trim_cache(self, *, keep: int, extra: int = 2) -> None:
        """Keep the cache small: the newest few complete copies (readers of older ones may still
        have them memory-mapped: the kernel keeps deleted files alive while mapped)."""
        copies = sorted(
            (v, p)
            for p in self.cache_dir.iterdir()
            if (v := version_of(p.name)) is not None and v < keep
        )
        for _, path in copies[:-extra] if len(copies) > extra else []:
            shutil.rmtree(path, ignore_errors=True)

    # -- writing -------------------------------------------------------------------------------

    @contextmanager
    def writer_lock(self, *, ttl: float = 60.0) -> Iterator[WriterLease]:
        lock = ObjectLock(ObjectOps(self._store, LOCK_NAME), self.url, ttl)
        lock.acquire()
        try:
            yield lock
        finally:
            lock.release()

    def highest_version(self) -> int:
        highest = 0
        for meta in self._list():
            parts = str(meta["path"]).split("/")
            for part in parts[:2]:  # v…/file, or quarantine/v…/file
                version = version_of(part)
                if version is not None:
                    highest = max(highest, version)
        return highest

    @contextmanager
    def staging(self) -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix="recommender-publish-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def commit(self, staged: Path, version: int, *, lease: WriterLease | None = None) -> str:
        from obstore.exceptions import AlreadyExistsError

        name = snapshot_name(version)
        manifest = staged / MANIFEST_NAME
        if lease is not None:
            lease.check()
        for file in sorted(staged.iterdir()):
            if file != manifest:
                self._put(f"{name}/{file.name}", file)
        if lease is not None:  # the uploads may have taken long: still ours?
            lease.check()
        try:
            self._put(f"{name}/{MANIFEST_NAME}", manifest.read_bytes(), create=True)
        except AlreadyExistsError as exc:
            raise SnapshotError(f"snapshot {self.url}/{name} already exists") from exc
        return f"{self.url}/{name}"

    def _objects_of(self, version: int, prefix: str = "") -> list[str]:
        return [str(m["path"]) for m in self._list(f"{prefix}{snapshot_name(version)}/")]

    def prune(self, keep: int) -> list[int]:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        removed = []
        for version in self.versions()[:-keep]:
            name = snapshot_name(version)
            self._delete([f"{name}/{MANIFEST_NAME}"])  # unpublished from here on
            self._delete([p for p in self._objects_of(version) if not p.endswith(MANIFEST_NAME)])
            removed.append(version)
        return removed

    def quarantine(self, version: int, reason: str) -> str | None:
        name = snapshot_name(version)
        raw = self._get(f"{name}/{MANIFEST_NAME}", MAX_MANIFEST_BYTES)
        if raw is None:
            return None
        target = f"{QUARANTINE}/{name}"
        try:
            self._put(f"{target}/{MANIFEST_NAME}", raw)
            self._put(f"{target}/QUARANTINED.txt", f"{time.ctime()}: {reason}\n".encode())
            self._delete([f"{name}/{MANIFEST_NAME}"])
        except Exception as exc:
            raise SnapshotError(f"could not move {self.url}/{name} aside: {exc}") from exc
        return f"{self.url}/{target}"

    def write_document(self, name: str, document: dict[str, Any]) -> None:
        self._put(check_document_name(name), json.dumps(document, allow_nan=False).encode())

    def read_document(self, name: str) -> dict[str, Any] | None:
        try:
            return parse_status(self._get(check_document_name(name), MAX_STATUS_BYTES))
        except Exception:
            return None

    def cleanup_incomplete(self) -> list[str]:
        """Arrays of a snapshot whose manifest never arrived (a killed writer): deleted."""
        by_version: dict[int, list[str]] = {}
        for meta in self._list():
            head, _, _ = str(meta["path"]).partition("/")
            version = version_of(head)
            if version is not None:
                by_version.setdefault(version, []).append(str(meta["path"]))
        removed = []
        for version, paths in sorted(by_version.items()):
            if not any(p.endswith(f"/{MANIFEST_NAME}") for p in paths):
                self._delete(paths)
                removed.append(snapshot_name(version))
        return removed
