"""Attribution: which shown answer (exposure) a later interaction belongs to.

An interaction (user, item, weight) is attributed to

- the exposure it names (a ``recommendation_id`` in ``POST /interactions`` JSON, a Kafka record
  header, or the chat API's ratings), when that exposure showed the item; else
- the newest exposure *to that user* that showed the item, no older than the attribution
  window (30 min by default) — so producers that send plain ``user:item`` get attribution for
  free.

A positive weight is a like (a hit when it is the exposure's first); a dislike or a neutral
rating of a shown item is negative feedback, never a hit. Exposures are bounded by memory: at
most ``max_per_user`` per user and ``max_exposures`` in all (least recently exposed users
forgotten first), and anything older than the window is dropped as time passes.

Pure and deterministic: given exposures and interactions in the same event-time order, the same
attributions come out (the monitor replays Kafka through it after a restart).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Final, Literal

from .exposures import Arm, Exposure

__all__ = ["Attributed", "Attribution", "Feedback"]

Feedback = Literal["like", "dislike", "neutral"]
#: Interactions may carry a timestamp this much before the exposure they answer (clocks of the
#: server and of the producer differ a little).
CLOCK_TOLERANCE_MS: Final = 5_000


@dataclass(slots=True)
class _Shown:
    exposure: Exposure
    positions: dict[str, int]
    likes: int = 0
    first_like_ms: int | None = None
    #: Likes credited per arm (interleaving: the arm that contributed the item).
    credited: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Attributed:
    """One interaction attributed to one exposure."""

    exposure: Exposure
    position: int
    feedback: Feedback
    #: The exposure's first like (it becomes a hit now).
    first_like: bool
    #: Milliseconds from the exposure to this interaction.
    delay_ms: int
    explicit: bool
    arm: Arm
    #: After this like, likes credited per arm on this exposure (interleaving).
    credited: dict[str, int]


class Attribution:
    """The join of exposures and interactions (see the module docstring)."""

    def __init__(
        self,
        *,
        window_ms: int = 30 * 60 * 1000,
        max_per_user: int = 50,
        max_exposures: int = 1_000_000,
    ) -> None:
        self.window_ms = window_ms
        self.max_per_user = max_per_user
        self.max_exposures = max_exposures
        self._by_user: OrderedDict[str, deque[_Shown]] = OrderedDict()
        self._by_id: dict[str, _Shown] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def expose(self, exposure: Exposure) -> bool:
        """Remember an answer as shown (False: its id is known already, a duplicate)."""
        if exposure.id in self._by_id:
            return False  # the same record read twice (a replay): nothing new
        positions: dict[str, int] = {}
        for k, item in enumerate(exposure.items):
            positions.setdefault(item, k)
        shown = _Shown(exposure, positions)
        self._by_id[exposure.id] = shown
        if exposure.user is None:
            return True  # an anonymous session: attributable by its id only
        queue = self._by_user.get(exposure.user)
        if queue is None:
            queue = self._by_user[exposure.user] = deque()
        self._by_user.move_to_end(exposure.user)
        queue.append(shown)
        while len(queue) > self.max_per_user:
            self._forget(queue.popleft())
        self._expire(queue, exposure.timestamp_ms)
        while len(self._by_id) > self.max_exposures and self._by_user:
            _, oldest = self._by_user.popitem(last=False)
            for old in oldest:
                self._forget(old)
                self.evicted += 1
        return True

    def _forget(self, shown: _Shown) -> None:
        if self._by_id.get(shown.exposure.id) is shown:
            del self._by_id[shown.exposure.id]

    def _expire(self, queue: deque[_Shown], now_ms: int) -> None:
        while queue and now_ms - queue[0].exposure.timestamp_ms > self.window_ms:
            self._forget(queue.popleft())

    def expire_sessions(self, now_ms: int) -> None:
        """Forget anonymous sessions' exposures older than the window (call now and then)."""
        stale = [
            key
            for key, shown in self._by_id.items()
            if shown.exposure.user is None and now_ms - shown.exposure.timestamp_ms > self.window_ms
        ]
        for key in stale:
            del self._by_id[key]

    def interact(
        self,
        user: str,
        item: str,
        weight: float,
        timestamp_ms: int,
        recommendation_id: str | None = None,
    ) -> Attributed | None:
        """Attribute one interaction, or None when no exposure showed the item."""
        shown, explicit = None, False
        if recommendation_id is not None:
            named = self._by_id.get(recommendation_id)
            if named is not None and item in named.positions and self._fresh(named, timestamp_ms):
                shown, explicit = named, True
        if shown is None:
            shown = self._newest_showing(user, item, timestamp_ms)
        if shown is None:
            return None
        position = shown.positions[item]
        arm = shown.exposure.arm_of(position)
        feedback: Feedback = "like" if weight > 0 else "dislike" if weight < 0 else "neutral"
        first = False
        if feedback == "like":
            first = shown.likes == 0
            shown.likes += 1
            shown.credited[arm] = shown.credited.get(arm, 0) + 1
            if first:
                shown.first_like_ms = timestamp_ms
        return Attributed(
            shown.exposure,
            position,
            feedback,
            first,
            max(0, timestamp_ms - shown.exposure.timestamp_ms),
            explicit,
            arm,
            dict(shown.credited),
        )

    def _fresh(self, shown: _Shown, timestamp_ms: int) -> bool:
        delay = timestamp_ms - shown.exposure.timestamp_ms
        return -CLOCK_TOLERANCE_MS <= delay <= self.window_ms

    def _newest_showing(self, user: str, item: str, timestamp_ms: int) -> _Shown | None:
        queue = self._by_user.get(user)
        if not queue:
            return None
        for shown in reversed(queue):
            if item in shown.positions and self._fresh(shown, timestamp_ms):
                return shown
        return None
