"""The single-writer lock of an object store: a lock object changed only by conditional writes.

``.builder.lock`` holds ``{"owner", "token", "refreshed_at", "released"}``. Every change is a
conditional put: *create if absent* to take a free lock, *update if the ETag is still the one I
read* to refresh, take over or release it. So two writers can never both believe a refresh or a
takeover of theirs succeeded, and a writer finds out that it lost the lock the first time it
tries to refresh it.

- **Take**: create it; or, if it exists and was released or not refreshed for ``ttl`` seconds
  (by its own ``refreshed_at``: hosts' clocks are assumed to agree within seconds), replace it
  conditionally with the next fencing token. A holder that provably no longer runs is taken
  over at once: the lock names its host, boot and process namespace, and on the same ones its
  process id no longer exists (a builder killed and restarted by its supervisor); otherwise the
  refusal says when the lock expires.
- **Refresh** every ``ttl / 6`` seconds. A refused refresh (the ETag changed) means another
  writer took the lock: the lease is lost for good. A refresh that fails (store unreachable) is
  retried; until one succeeds, the lease counts as unconfirmed once ``ttl / 2`` has passed since
  the last success, so this writer stops publishing well before anyone may take over.
- **Check** before a publication: the lease is confirmed recently and the lock object still has
  our ETag (one GET).
- **Release**: conditionally mark it released (never a plain delete, which could remove another
  writer's lock that replaced ours).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Final, TypeVar

from ..errors import ConfigError, LockLost, RecommenderError, one_line
from ..logs import RateLimitedLog
from .lease import WriterLease

__all__ = ["ObjectLock", "ObjectOps", "retry_transient"]

log = logging.getLogger(__name__)

MAX_LOCK_BYTES: Final = 64 << 10
T = TypeVar("T")


class ObjectOps:
    """The conditional operations the lock needs, on one object (obstore underneath)."""

    def __init__(self, store: Any, path: str) -> None:
        self.store, self.path = store, path

    def get(self) -> tuple[dict[str, Any], str] | None:
        """(body, ETag), or None if the object does not exist."""
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            result = obstore.get(self.store, self.path)
        except (NotFoundError, FileNotFoundError):  # obstore raises the latter for a 404
            return None
        raw = bytes(result.bytes()) if result.meta["size"] <= MAX_LOCK_BYTES else b""
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        return (body if isinstance(body, dict) else {}), str(result.meta["e_tag"])

    def create(self, body: dict[str, Any]) -> str | None:
        """Create it if absent: its ETag, or None if it exists."""
        import obstore
        from obstore.exceptions import AlreadyExistsError

        try:
            return str(obstore.put(self.store, self.path, _encode(body), mode="create")["e_tag"])
        except AlreadyExistsError:
            return None

    def update(self, body: dict[str, Any], e_tag: str) -> str | None:
        """Replace it if its ETag is still ``e_tag``: the new ETag, or None if it changed."""
        import obstore
        from obstore.exceptions import NotFoundError, PreconditionError

        try:
            result = obstore.put(self.store, self.path, _encode(body), mode={"e_tag": e_tag})
        except (PreconditionError, NotFoundError, FileNotFoundError):
            return None
        return str(result["e_tag"])


def retry_transient(action: Callable[[], T], *, attempts: int = 5, delay: float = 0.5) -> T:
    """``action()``, tried again (after 0.5, 1, 2, 4 s) while it fails with anything but our
    own errors: obstore does not retry a conditional put whose connection broke, and a store
    that flaps at start-up should not stop a builder."""
    for attempt in range(attempts):
        try:
            return action()
        except RecommenderError:
            raise
        except Exception as exc:
            if attempt == attempts - 1:
                raise
            log.info("store request failed (%s); trying again in %.1f s", one_line(exc), delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _this_process() -> dict[str, Any]:
    """Who holds a lock, precisely enough to tell on the same machine whether it still runs: the
    host, the boot, the process-id namespace and the process id."""
    return {"host": socket.gethostname(), "pid": os.getpid(), **_machine()}


def _machine() -> dict[str, str]:
    """This boot's id and this process-id namespace (Linux; empty elsewhere)."""
    found = {}
    with contextlib.suppress(OSError):
        with open("/proc/sys/kernel/random/boot_id") as boot:
            found["boot"] = boot.read().strip()
        found["pidns"] = os.readlink("/proc/self/ns/pid")
    return found


def _gone(holder: Any) -> bool:
    """Whether the process ``holder`` (a lock's ``process``) provably no longer runs: it ran on
    this host, this boot and in this process-id namespace, and its pid is free. Anything less
    certain (another machine, a container we cannot see into) is not gone."""
    if not isinstance(holder, dict):
        return False
    here = _this_process()
    same = all(holder.get(k) == here[k] for k in ("host", "boot", "pidns") if k in here)
    pid = holder.get("pid")
    if not same or "boot" not in here or "pidns" not in here or not isinstance(pid, int):
        return False
    if pid == here["pid"]:
        return False  # ourselves: another lock object of this very process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's): alive
        return False
    return False


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, allow_nan=False).encode()


class ObjectLock(WriterLease):
    """A held object-store writer lock (see the module docstring); use :meth:`acquire`."""

    def __init__(
        self, ops: ObjectOps, where: str, ttl: float, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}", 0)
        self.ops, self.where, self.ttl, self.clock = ops, where, ttl, clock
        self._e_tag = ""
        self._confirmed_at = 0.0  # monotonic time of the last write or read that proved it ours
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors = RateLimitedLog(log, interval=30.0)
        # A refresh and a check must not interleave: a check that read the lock between the
        # refresh's write and its new ETag being noted would take our own lock for another's.
        self._mutex = threading.Lock()

    def _body(self, *, released: bool = False) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "token": self.token,
            "refreshed_at": self.clock(),
            "released": released,
            "process": _this_process(),
        }

    # -- take and give back --------------------------------------------------------------------

    def acquire(self) -> None:
        """Take the lock or raise ConfigError saying who holds it."""
        try:
            retry_transient(self._acquire)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"cannot write to {self.where}: {one_line(exc)}; check the URL, the credentials "
                "and that the store is reachable"
            ) from None
        self._thread = threading.Thread(target=self._refresh_loop, name="store-lock", daemon=True)
        self._thread.start()

    def _acquire(self) -> None:
        self.token = 1
        e_tag = self.ops.create(self._body())
        if e_tag is None:
            found = self.ops.get()
            held, held_tag = found if found is not None else ({}, "")
            if found is not None and held.get("owner") == self.owner:
                self._e_tag, self._confirmed_at = held_tag, time.monotonic()
                return  # our own create went through; only its answer was lost
            age = self.clock() - float(held.get("refreshed_at") or 0)
            gone = _gone(held.get("process"))
            if found is not None and not held.get("released") and age < self.ttl and not gone:
                raise ConfigError(
                    f"another builder ({held.get('owner')}) writes {self.where} (its lock was "
                    f"refreshed {max(age, 0):.0f} s ago); stop it first; if it was killed on "
                    f"another machine, its lock expires in {max(self.ttl - age, 0):.0f} s"
                )
            self.token = int(held.get("token") or 0) + 1
            e_tag = (
                self.ops.update(self._body(), held_tag)
                if found is not None
                else self.ops.create(self._body())
            )
            if e_tag is None:
                raise ConfigError(
                    f"another builder took the lock of {self.where} just now; stop it first"
                )
            if found is not None and not held.get("released"):
                log.warning(
                    "took over the lock of %s %s by %s (fencing token %d)",
                    self.where,
                    "left by a process that no longer runs here"
                    if gone
                    else f"abandoned {age:.0f} s ago",
                    held.get("owner"),
                    self.token,
                )
        self._e_tag = e_tag
        self._confirmed_at = time.monotonic()

    def release(self) -> None:
        """Stop refreshing and mark the lock released, if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.lost.is_set():
            return
        try:
            self.ops.update(self._body(released=True), self._e_tag)
        except Exception as exc:  # it expires by itself after ttl
            log.warning("could not release the lock of %s: %s", self.where, one_line(exc))

    # -- keep it -------------------------------------------------------------------------------

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.ttl / 6):
            self.refresh()
            if self.lost.is_set():
                return

    def refresh(self) -> None:
        """One conditional refresh (the refresh thread calls this every ttl / 6)."""
        with self._mutex:
            try:
                e_tag = self.ops.update(self._body(), self._e_tag)
            except Exception as exc:  # unreachable: retried; check() stops publishing meanwhile
                self._errors.warning(
                    "refresh", "could not refresh the lock of %s: %s", self.where, one_line(exc)
                )
                return
            if e_tag is None:
                self._taken()
                return
            self._e_tag = e_tag
            self._confirmed_at = time.monotonic()

    def _ours(self, found: tuple[dict[str, Any], str] | None) -> bool:
        """Whether the lock object read is ours after all: a write of ours whose answer was
        lost changed its ETag (so a retried conditional write is refused), not its owner."""
        if found is None:
            return False
        body, e_tag = found
        mine = body.get("owner") == self.owner and body.get("token") == self.token
        if mine and not body.get("released"):
            self._e_tag, self._confirmed_at = e_tag, time.monotonic()
            return True
        return False

    def _taken(self) -> None:
        try:
            found = self.ops.get()
        except Exception:  # cannot tell: try again at the next refresh
            return
        if self._ours(found):
            return
        holder = found[0].get("owner") if found is not None else None
        reason = f"another builder ({holder or 'unknown'}) took over the lock of {self.where}"
        if not self.lost.is_set():
            log.error("%s: this builder stops publishing", reason)
        self.mark_lost(reason)

    def check(self) -> None:
        if self.lost.is_set():
            raise LockLost(f"{self.lost_reason}: this builder stopped publishing", taken=True)
        unconfirmed = time.monotonic() - self._confirmed_at
        if unconfirmed > self.ttl / 2:
            raise LockLost(
                f"the lock of {self.where} could not be refreshed for {unconfirmed:.0f} s "
                "(store unreachable?): not publishing until it is",
                taken=False,
            )
        with self._mutex:
            try:
                found = self.ops.get()
            except Exception as exc:
                raise LockLost(
                    f"cannot confirm the lock of {self.where}: {one_line(exc)}", taken=False
                ) from None
            if (found is not None and found[1] == self._e_tag) or self._ours(found):
                return
            self._taken()
        if not self.lost.is_set():
            raise LockLost(f"cannot confirm the lock of {self.where}", taken=False)
        raise LockLost(f"{self.lost_reason}: this builder stopped publishing", taken=True)
