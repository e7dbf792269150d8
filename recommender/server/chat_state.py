"""What the seed chat API remembers: who registered, and what each user was asked lately.

Both are bounded by memory, whatever the number of chat ids a client invents:

- **Registrations** are 64-bit hashes of chat ids in two fixed-size open-addressing tables (a
  current and a previous generation: when the current one is half full, the previous one is
  dropped and the current one becomes it), so they take exactly ``registry_bytes`` and remember
  at least the newest quarter-capacity users. With ``--workers N`` the tables live in shared memory
  (``multiprocessing.shared_memory``) behind one lock, so a user registered on one worker is
  known on every other: nobody is "new" twice.
- **Asked recently** (the last 20 items asked, so a question is not repeated) is per process,
  least recently active users dropped first once its estimated size passes ``asked_bytes``.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["AnswerMemory", "AskedMemory", "Registrations", "SharedRegistry"]

_HEADER = 2  # uint64 slots: which table is current, how many keys it holds
_EMPTY = np.uint64(0)


def _key(user: str) -> np.uint64:
    digest = hashlib.blake2b(user.encode("utf-8"), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little") or 1)  # 0 marks an empty slot


@dataclass(frozen=True, slots=True)
class SharedRegistry:
    """What a worker needs to attach to the parent's registration tables (picklable)."""

    name: str
    nbytes: int
    lock: Any  # a multiprocessing lock


class Registrations:
    """A bounded set of registered chat ids (see the module docstring).

    Parameters
    ----------
    nbytes : int
        Memory of the two tables together (at least 64 KiB).
    shared : SharedRegistry, optional
        Attach to tables in shared memory made by :meth:`create_shared` (worker processes).
    """

    def __init__(self, nbytes: int = 16 << 20, *, shared: SharedRegistry | None = None) -> None:
        self._memory: shared_memory.SharedMemory | None = None
        if shared is not None:
            self._memory = shared_memory.SharedMemory(name=shared.name)
            buffer: Any = self._memory.buf
            self._lock: Any = shared.lock
            nbytes = shared.nbytes
        else:
            buffer = bytearray(nbytes)
            self._lock = threading.Lock()
        self.slots = (nbytes // 8 - _HEADER) // 2
        if self.slots < 1024:
            raise ValueError("registrations need at least 64 KiB")
        words: npt.NDArray[np.uint64] = np.frombuffer(buffer, dtype=np.uint64)
        self._header = words[:_HEADER]
        self._tables = words[_HEADER : _HEADER + 2 * self.slots].reshape(2, self.slots)

    @staticmethod
    def create_shared(nbytes: int, lock: Any) -> tuple[SharedRegistry, Any]:
        """Tables in shared memory for worker processes: (what to pass them, the owner's handle
        to unlink at exit)."""
        memory = shared_memory.SharedMemory(create=True, size=nbytes)
        np.frombuffer(memory.buf, dtype=np.uint8, count=nbytes)[:] = 0  # type: ignore[arg-type]
        return SharedRegistry(memory.name, nbytes, lock), memory

    def _find(self, table: npt.NDArray[np.uint64], key: np.uint64) -> tuple[bool, int]:
        """(present, slot): the key's slot, or the empty slot where it would go (-1: full)."""
        start = int(key % np.uint64(self.slots))
        for step in range(self.slots):
            slot = (start + step) % self.slots
            value = table[slot]
            if value == key:
                return True, slot
            if value == _EMPTY:
                return False, slot
        return False, -1

    def register(self, user: str) -> bool:
        """Register ``user``; returns whether they were registered already."""
        key = _key(user)
        with self._lock:
            current = int(self._header[0]) & 1
            table, previous = self._tables[current], self._tables[1 - current]
            present, slot = self._find(table, key)
            if present:
                return True
            known = self._find(previous, key)[0]
            if int(self._header[1]) >= self.slots // 2:  # half full: a new generation
                previous[:] = _EMPTY
                self._header[0] = np.uint64(1 - current)
                self._header[1] = np.uint64(0)
                table = previous
                slot = self._find(table, key)[1]
            table[slot] = key
            self._header[1] += np.uint64(1)
            return known

    def close(self) -> None:
        if self._memory is not None:
            self._header = self._tables = np.zeros((1, 1), np.uint64)  # drop the views first
            self._memory.close()
            self._memory = None


class AskedMemory:
    """Per user, the last ``remember`` items asked about, within ``max_bytes`` (estimated)."""

    def __init__(self, *, remember: int = 20, max_bytes: int = 32 << 20) -> None:
        self.remember = remember
        self.max_bytes = max_bytes
        self.bytes = 0
        self._asked: OrderedDict[str, deque[str]] = OrderedDict()
        self._sizes: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._asked)

    def recent(self, user: str) -> set[str]:
        asked = self._asked.get(user)
        return set(asked) if asked is not None else set()

    def add(self, user: str, item: str) -> None:
        asked = self._asked.get(user)
        if asked is None:
            asked = self._asked[user] = deque(maxlen=self.remember)
        self._asked.move_to_end(user)
        asked.append(item)
        size = sys.getsizeof(user) + 200 + sum(sys.getsizeof(i) + 8 for i in asked)
        self.bytes += size - self._sizes.get(user, 0)
        self._sizes[user] = size
        while self.bytes > self.max_bytes and len(self._asked) > 1:
            oldest, _ = self._asked.popitem(last=False)
            self.bytes -= self._sizes.pop(oldest)


class AnswerMemory:
    """Per user, the last chat answer's ``recommendation_id`` and items (a later rating of one
    of them names that answer, within ``window_s``: the attribution window), least recently
    answered users dropped past ``max_users``."""

    def __init__(self, *, max_users: int = 100_000, window_s: float = 1800.0) -> None:
        self.max_users = max_users
        self.window_s = window_s
        self._answers: OrderedDict[str, tuple[str, frozenset[str], float]] = OrderedDict()

    def remember(
        self, user: str, recommendation_id: str, items: list[str], *, now: float | None = None
    ) -> None:
        at = time.monotonic() if now is None else now
        self._answers[user] = (recommendation_id, frozenset(items[:100]), at)
        self._answers.move_to_end(user)
        while len(self._answers) > self.max_users:
            self._answers.popitem(last=False)

    def named(self, user: str, item: str, *, now: float | None = None) -> str | None:
        """The id of the last answer to ``user`` that showed ``item``, if it is at most the
        attribution window old (an older one is no longer what the rating answers)."""
        found = self._answers.get(user)
        if found is None or item not in found[1]:
            return None
        at = time.monotonic() if now is None else now
        return found[0] if at - found[2] <= self.window_s else None
