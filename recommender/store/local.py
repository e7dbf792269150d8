"""Snapshots in a local (or network-mounted POSIX) directory: publication by rename."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from ..errors import ConfigError, LockLost, SnapshotError
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

__all__ = ["LocalStore"]

_TMP_PREFIX: Final = ".incoming-"
_TRASH_PREFIX: Final = ".trash-"
_QUARANTINE_PREFIX: Final = ".quarantine-"
_QUARANTINED_RE: Final = re.compile(r"^\.quarantine-v(\d{12})-")
LOCK_NAME: Final = ".builder.lock"


class _FlockLease(WriterLease):
    """An ``flock`` on ``root/.builder.lock``: exclusive while the file is the one we locked."""

    def __init__(self, path: Path, handle: Any, owner: str, token: int) -> None:
        super().__init__(owner, token)
        self.path = path
        self.handle = handle

    def check(self) -> None:
        # The kernel keeps the flock as long as we hold the file; but if the directory or the
        # file was replaced (a restore, an operator's rm), another writer can lock the new file.
        try:
            same = os.stat(self.path).st_ino == os.fstat(self.handle.fileno()).st_ino
        except OSError:
            same = False
        if not same:
            self.mark_lost(f"{self.path} was removed or replaced")
            raise LockLost(
                f"the writer lock {self.path} was removed or replaced (the model directory was "
                "restored or replaced?): this builder stopped publishing; restart it",
                taken=True,
            )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore(SnapshotStore):
    """``root/v000000000001/``, ``root/v000000000002/``, ... each a snapshot directory.

    A snapshot is written under a hidden name in ``root``, fsynced and renamed into place (atomic
    on POSIX file systems, NFS included), so a reader never sees a partial one, even if the writer
    is killed with SIGKILL mid-write. Old snapshots are renamed away before deletion; unreadable
    ones are renamed to ``.quarantine-v…`` with a note of why.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        self._lock_file: Any = None

    def __repr__(self) -> str:
        return f"LocalStore({self.location!r})"

    def _entries(self) -> list[os.DirEntry[str]]:
        try:
            return list(os.scandir(self.root))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def versions(self) -> list[int]:
        found = []
        for entry in self._entries():
            version = version_of(entry.name)
            if version is not None and entry.is_dir():
                found.append(version)
        return sorted(found)

    def path_of(self, version: int) -> Path:
        return self.root / snapshot_name(version)

    def manifest_bytes(self, version: int) -> bytes:
        path = self.path_of(version) / MANIFEST_NAME
        try:
            with path.open("rb") as f:
                return f.read(MAX_MANIFEST_BYTES + 1)
        except OSError as exc:
            raise SnapshotError(f"{path.parent}: unreadable manifest: {exc}") from exc

    def identity(self, *, create: bool = False) -> str | None:
        path = self.root / IDENTITY_NAME
        try:
            found = path.read_text(encoding="utf-8").strip()[:64]
        except (OSError, UnicodeDecodeError):
            found = ""
        if found or not create:
            return found or None
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{IDENTITY_NAME}.{uuid.uuid4().hex[:8]}"
        tmp.write_text(uuid.uuid4().hex + "\n", encoding="utf-8")
        try:
            os.link(tmp, path)  # create-if-absent: two creators agree on one id
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        return path.read_text(encoding="utf-8").strip()[:64] or None

    def local_copy(self, version: int) -> Path:
        path = self.path_of(version)
        if not path.is_dir():
            raise SnapshotError(f"{path}: no such snapshot (pruned meanwhile?)")
        return path

    @contextmanager
    def writer_lock(self, *, ttl: float = 60.0) -> Iterator[WriterLease]:
        """An exclusive ``flock`` (``ttl`` does not apply: the kernel releases the lock of a
        process that dies). The file keeps the last fencing token for the next holder."""
        path = self.root / LOCK_NAME
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock_file = path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"model dir {self.root} is not writable: {exc}") from exc
        try:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                lock_file.seek(0)
                holder = lock_file.read(200).strip() or "unknown"
                raise ConfigError(
                    f"another builder is already running on {self.root} ({holder}); stop it first"
                ) from exc
            lock_file.seek(0)
            previous = lock_file.read(200).split()
            token = int(previous[1]) + 1 if len(previous) > 1 and previous[1].isdigit() else 1
            owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            lock_file.seek(0)
            lock_file.truncate()
            lock_file.write(f"{owner} {token}\n")
            lock_file.flush()
            yield _FlockLease(path, lock_file, owner, token)
        finally:
            lock_file.close()

    def highest_version(self) -> int:
        highest = 0
        for entry in self._entries():
            version = version_of(entry.name)
            if version is None and (match := _QUARANTINED_RE.match(entry.name)):
                version = int(match.group(1))
            if version is not None:
                highest = max(highest, version)
        return highest

    @contextmanager
    def staging(self) -> Iterator[Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        staged = self.root / f"{_TMP_PREFIX}{uuid.uuid4().hex[:12]}"
        staged.mkdir()
        try:
            yield staged
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def commit(self, staged: Path, version: int, *, lease: WriterLease | None = None) -> str:
        final = self.path_of(version)
        if final.exists():
            raise SnapshotError(f"snapshot {final} already exists")
        if lease is not None:
            lease.check()
        _fsync_dir(staged)
        os.rename(staged, final)
        _fsync_dir(self.root)
        return str(final)

    def _remove(self, path: Path) -> bool:
        """Rename aside (atomic), then delete, so nothing is ever half-deleted under its name."""
        trash = path.with_name(f"{_TRASH_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return False
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def prune(self, keep: int) -> list[int]:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        return [v for v in self.versions()[:-keep] if self._remove(self.path_of(v))]

    def quarantine(self, version: int, reason: str) -> str | None:
        path = self.path_of(version)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = self.root / f"{_QUARANTINE_PREFIX}{path.name}-{stamp}-{uuid.uuid4().hex[:6]}"
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None
        except OSError as exc:  # e.g. read-only: say so, but never fail the caller for it
            raise SnapshotError(f"could not move {path} aside: {exc}") from exc
        with contextlib.suppress(OSError):  # the rename is what matters
            (target / "QUARANTINED.txt").write_text(
                f"moved aside by the builder at {stamp}Z: {reason}\n", encoding="utf-8"
            )
        return str(target)

    def write_document(self, name: str, document: dict[str, Any]) -> None:
        check_document_name(name)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{name}.{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps(document, allow_nan=False), encoding="utf-8")
        os.replace(tmp, self.root / name)

    def read_document(self, name: str) -> dict[str, Any] | None:
        check_document_name(name)
        try:
            with (self.root / name).open("rb") as f:
                return parse_status(f.read(MAX_STATUS_BYTES + 1))
        except OSError:
            return None

    def cleanup_incomplete(self) -> list[str]:
        removed = []
        for entry in self._entries():
            if entry.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)) and entry.is_dir():
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.name)
            elif entry.name.startswith(".") and ".json." in entry.name:  # a document cut short
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                removed.append(entry.name)
        return removed
