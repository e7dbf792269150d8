"""The writer's lease on a store: who holds the lock, with which fencing token, and whether it
still does.

A store has one writer at a time. Holding the lock is not enough on a store that can hang (a
writer's lock may expire while its requests are stuck, and another writer take over), so every
publication checks the lease first (:meth:`WriterLease.check`) and every manifest records the
lease's *fencing token*, which grows with each new holder: a reader that has seen token N never
takes a snapshot of an earlier holder's token for a newer one.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

__all__ = ["WriterLease"]


class WriterLease(ABC):
    """A held writer lock.

    Attributes
    ----------
    owner : str
        Who holds it (host, process id and a random suffix): for messages and manifests.
    token : int
        The fencing token: higher than every earlier holder's token of this lock.
    lost : threading.Event
        Set once another writer took the lock: this writer must stop publishing for good.
    """

    def __init__(self, owner: str, token: int) -> None:
        self.owner = owner
        self.token = token
        self.lost = threading.Event()
        self.lost_reason = ""

    def mark_lost(self, reason: str) -> None:
        self.lost_reason = reason
        self.lost.set()

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`~recommender.errors.LockLost` unless the lock is certainly still ours
        (``taken`` is False when the store only could not confirm it: a later check may)."""

    def to_dict(self) -> dict[str, object]:
        return {"owner": self.owner, "token": self.token}
