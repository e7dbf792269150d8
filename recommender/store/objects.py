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

The single-builder rule is kept by a lock object, ``.builder.lock``, created only if absent and
refreshed every 10 s; a lock not refreshed for 60 s is considered abandoned (a killed builder)
and taken over. Endpoint and credentials come from the standard variables (``AWS_ENDPOINT_URL``,
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
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, cast

from ..errors import ConfigError, SnapshotError
from ..snapshot import MANIFEST_NAME, MAX_MANIFEST_BYTES, parse_manifest
from .base import (
    MAX_STATUS_BYTES,
    STATUS_NAME,
    SnapshotStore,
    parse_status,
    snapshot_name,
    version_of,
)

__all__ = ["ObjectStore"]

log = logging.getLogger(__name__)

LOCK_NAME: Final = ".builder.lock"
QUARANTINE: Final = "quarantine"
_LOCK_REFRESH: Final = 10.0
_LOCK_STALE: Final = 60.0
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
                self.url, config=config or None, client_options=client
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
        except NotFoundError:
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

    def read_manifest(self, version: int) -> dict[str, Any]:
        where = f"{self.url}/{snapshot_name(version)}"
        raw = self._get(f"{snapshot_name(version)}/{MANIFEST_NAME}", MAX_MANIFEST_BYTES)
        if raw is None:
            raise SnapshotError(f"{where}: no manifest (pruned meanwhile?)")
        return parse_manifest(raw, where, version=version)

    def local_copy(self, version: int) -> Path:
        """Download the snapshot's files into the cache (once), atomically: a half-downloaded
        copy is never taken for a complete one."""
        import obstore

        name = snapshot_name(version)
        target = self.cache_dir / name
        if (target / _COMPLETE).exists():
            return target
        manifest = self.read_manifest(version)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self.cache_dir))
        try:
            for meta in manifest["files"].values():
                with (staging / meta["file"]).open("wb") as sink:
                    for chunk in obstore.get(self._store, f"{name}/{meta['file']}").stream(
                        min_chunk_size=8 << 20
                    ):
                        sink.write(chunk)
            (staging / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
            (staging / _COMPLETE).touch()
            try:
                os.rename(staging, target)
            except OSError:  # another process of this machine got there first
                if not (target / _COMPLETE).exists():
                    raise
        except Exception as exc:
            if isinstance(exc, SnapshotError):
                raise
            raise SnapshotError(f"{self.url}/{name}: download failed: {exc}") from exc
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
    def writer_lock(self) -> Iterator[None]:
        from obstore.exceptions import AlreadyExistsError

        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

        def body() -> bytes:
            return json.dumps({"owner": owner, "refreshed_at": time.time()}).encode()

        try:
            self._put(LOCK_NAME, body(), create=True)
        except AlreadyExistsError:
            held = parse_status(self._get(LOCK_NAME, MAX_STATUS_BYTES)) or {}
            age = time.time() - float(held.get("refreshed_at", 0))
            if age < _LOCK_STALE:
                raise ConfigError(
                    f"another builder ({held.get('owner')}) writes {self.url} (lock refreshed "
                    f"{age:.0f} s ago); stop it first, or wait {_LOCK_STALE:.0f} s if it was killed"
                ) from None
            log.warning("taking over a lock abandoned %.0f s ago by %s", age, held.get("owner"))
            self._put(LOCK_NAME, body())
        except Exception as exc:
            raise ConfigError(f"cannot write to {self.url}: {exc}") from exc
        stop = threading.Event()

        def refresh() -> None:
            while not stop.wait(_LOCK_REFRESH):
                with contextlib.suppress(Exception):
                    self._put(LOCK_NAME, body())

        thread = threading.Thread(target=refresh, name="store-lock", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)
            with contextlib.suppress(Exception):
                self._delete([LOCK_NAME])

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

    def commit(self, staged: Path, version: int) -> str:
        from obstore.exceptions import AlreadyExistsError

        name = snapshot_name(version)
        manifest = staged / MANIFEST_NAME
        for file in sorted(staged.iterdir()):
            if file != manifest:
                self._put(f"{name}/{file.name}", file)
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

    def write_status(self, status: dict[str, Any]) -> None:
        self._put(STATUS_NAME, json.dumps(status, allow_nan=False).encode())

    def read_status(self) -> dict[str, Any] | None:
        try:
            return parse_status(self._get(STATUS_NAME, MAX_STATUS_BYTES))
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
