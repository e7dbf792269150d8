"""The monitor's state: exposures and interactions joined in event-time order, live quality
and experiment tallies, and a checkpoint that makes a restart exact.

Order: an interaction is held until the exposure stream has passed its time (every exposure
partition with data read beyond it), so the exposure it answers is known when it is joined,
whatever order the two topics are fetched in; or, when the exposure stream has nothing newer
(every partition read to its end, or idle), until it has waited a grace period.

Restarts: a checkpoint records the tallies, each partition's next offset (the counting
boundary; an interaction still held is before it) and replay offsets at least one attribution
window older. A restarted monitor reads both topics again from the replay offsets: records
before the boundary rebuild the join's state (which exposure already had its like) without
counting; records at or after it count. Interleaved impressions are folded into the tallies
when their window closes; those a checkpoint folded already (closed before ``closed_until``)
are not folded again. So nothing is counted twice and nothing is lost while the monitor was
down. Pure.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final, Literal

from .attribution import CLOCK_TOLERANCE_MS, Attribution
from .experiments import ExperimentResults, ExperimentSpec
from .exposures import Exposure
from .live import LiveQuality

__all__ = ["CHECKPOINT_FORMAT", "QUIET_SECONDS", "OnlineJoin", "Source", "exposure_watermark"]

CHECKPOINT_FORMAT: Final = 1
Source = Literal["exposures", "interactions"]
#: At most this many interactions wait for the exposure stream; past it the oldest are joined
#: anyway (counted as ``joined_early``: their answer may not be read yet, so a hit may be
#: missed). The monitor stops fetching interactions long before (see ``Monitor.pause_held``).
MAX_HELD: Final = 200_000
#: An exposure partition read to its end that has given nothing for this long holds the
#: exposure stream back only to this long ago (wall clock), no longer at its newest record; an
#: interaction whose time has no meaning there (in the future) waits this long after it was
#: read. Longer than the clock tolerance, so an exposure such a partition gives later is newer
#: than anything it let through, unless its producer lags by more than the margin. (In the
#: 30-minute soak a 2 s grace, applied whenever the partitions were read to their ends,
#: released likes before answers up to 5 s newer were read, and a restart's replay credited
#: them otherwise.)
QUIET_SECONDS: Final = CLOCK_TOLERANCE_MS / 1000 + 2.0


def exposure_watermark(
    partitions: list[tuple[int, bool, float]], *, now: float, now_ms: int, answered: bool = True
) -> tuple[int, bool]:
    """The exposure stream's time (every exposure up to it has been read), from each
    partition's (newest time read in ms, whether it is read to its end, when it last gave a
    record on the ``now`` clock); ``now_ms``: the wall clock. A partition with records still to
    read holds it at its newest time (0 before its first record); one at its end too while it
    gave something in the last ``QUIET_SECONDS`` (its producer may be a moment behind), and at
    ``now_ms - QUIET_SECONDS`` once it is quiet. The flag: every partition is quiet.
    ``answered``: whether the broker said just now that the quiet partitions have nothing more;
    when not (a frozen broker looks exactly like an idle producer), they hold at their newest
    time, as if active: a 16 s broker freeze in the soak let a like out before its answer."""
    quiet_ms = now_ms - int(QUIET_SECONDS * 1000)
    holding, quiet = [], True
    for newest_ms, at_end, last_read in partitions:
        if not at_end or now - last_read < QUIET_SECONDS or not answered:
            holding.append(newest_ms)
            quiet = False
        else:
            holding.append(max(newest_ms, quiet_ms))
    return min(holding, default=quiet_ms), quiet


@dataclass(frozen=True, slots=True)
class _Held:
    user: str
    item: str
    weight: float
    timestamp_ms: int
    recommendation_id: str | None
    partition: int
    offset: int
    arrived: float


class OnlineJoin:
    """See the module docstring."""

    def __init__(self, *, window_ms: int = 30 * 60_000) -> None:
        self.window_ms = window_ms
        self.attribution = Attribution(window_ms=window_ms)
        self.live = LiveQuality()
        self.spec: ExperimentSpec | None = None
        self.experiments: dict[str, ExperimentResults] = {}
        self.boundary: dict[Source, dict[int, int]] = {"exposures": {}, "interactions": {}}
        self.closed_until_ms = 0
        self.stream_ms = 0
        self.joined_ms = 0  # the newest interaction time joined
        self._held: deque[_Held] = deque()
        self.counts = {"exposures": 0, "interactions": 0, "attributed": 0, "joined_early": 0}

    # -- input ---------------------------------------------------------------------------------

    def _counted(self, source: Source, partition: int, offset: int) -> bool:
        return offset >= self.boundary[source].get(partition, 0)

    def control(self, spec: ExperimentSpec) -> None:
        """An experiment started or stopped."""
        self.spec = spec
        if spec.mode != "off" and spec.id not in self.experiments:
            self.experiments[spec.id] = ExperimentResults(spec)

    def exposure(self, exposure: Exposure, partition: int, offset: int) -> None:
        new = self.attribution.expose(exposure)
        if exposure.experiment is not None and exposure.experiment not in self.experiments:
            spec = ExperimentSpec(exposure.experiment, "interleave" if exposure.credit else "ab")
            self.experiments[exposure.experiment] = ExperimentResults(spec)
        if new and self._counted("exposures", partition, offset):
            self.counts["exposures"] += 1
            self.live.exposed(exposure)
            if exposure.experiment is not None:
                self.experiments[exposure.experiment].exposed(exposure)
        if exposure.timestamp_ms > self.stream_ms:
            self.stream_ms = exposure.timestamp_ms
            self._close(self.stream_ms)

    def interaction(
        self,
        user: str,
        item: str,
        weight: float,
        timestamp_ms: int,
        partition: int,
        offset: int,
        recommendation_id: str | None = None,
        arrived: float = 0.0,
    ) -> None:
        """Hold an interaction until :meth:`release` passes its time (``arrived``: when it was
        read, on the caller's clock)."""
        self._held.append(
            _Held(user, item, weight, timestamp_ms, recommendation_id, partition, offset, arrived)
        )
        while len(self._held) > MAX_HELD:
            self.counts["joined_early"] += 1
            self._join(self._held.popleft())

    def release(self, watermark_ms: int, *, arrived_before: float | None = None) -> None:
        """Join held interactions, oldest first, while each is at or before ``watermark_ms``
        (the exposure stream's time: every exposure up to it has been read) or arrived before
        ``arrived_before`` (it waited its grace period, and nothing newer is coming)."""
        while self._held:
            held = self._held[0]
            waited = arrived_before is not None and held.arrived <= arrived_before
            # Every exposure it may go to (up to the clock tolerance later) must be read first:
            # else a replay and the live run could credit different answers.
            if held.timestamp_ms + CLOCK_TOLERANCE_MS > watermark_ms and not waited:
                return
            self._join(self._held.popleft())

    def _join(self, held: _Held) -> None:
        self.joined_ms = max(self.joined_ms, held.timestamp_ms)
        counted = self._counted("interactions", held.partition, held.offset)
        if counted:
            self.counts["interactions"] += 1
        outcome = self.attribution.interact(
            held.user, held.item, held.weight, held.timestamp_ms, held.recommendation_id
        )
        if outcome is None:
            return
        results = self.experiments.get(outcome.exposure.experiment or "")
        if results is not None and outcome.feedback == "like":
            if outcome.exposure.credit is not None:
                results.credit(outcome)  # state, replayed or not
            elif outcome.first_like and counted:
                results.hit(outcome)
        if counted:
            self.counts["attributed"] += 1
            self.live.attributed(outcome)

    def _close(self, now_ms: int) -> None:
        for results in self.experiments.values():
            results.close(now_ms, self.window_ms, closed_before=self.closed_until_ms)

    # -- positions -----------------------------------------------------------------------------

    @property
    def held(self) -> int:
        """Interactions waiting for the exposure stream to pass their time."""
        return len(self._held)

    def front_ms(self) -> int:
        """Where the join stands in event time: the oldest interaction still held, else the
        newest joined; never past the exposure stream, nor a window behind it (an interaction
        that late is rare, and replaying further for it would grow every restart's replay)."""
        if self._held:
            front = min(held.timestamp_ms for held in self._held)
        else:
            front = self.joined_ms or self.stream_ms
        return max(min(front, self.stream_ms), self.stream_ms - self.window_ms)

    def held_from(self) -> dict[int, int]:
        """Per interaction partition, the offset of its oldest held interaction."""
        found: dict[int, int] = {}
        for held in self._held:
            found.setdefault(held.partition, held.offset)
        return found

    def positions(self, next_offsets: dict[Source, dict[int, int]]) -> dict[Source, dict[int, int]]:
        """Where reading stands, an interaction still held moving its partition back to it."""
        interactions = dict(next_offsets["interactions"])
        for p, offset in self.held_from().items():
            interactions[p] = min(offset, interactions.get(p, offset))
        found: dict[Source, dict[int, int]] = {
            "exposures": dict(next_offsets["exposures"]),
            "interactions": interactions,
        }
        return found

    # -- reports and checkpoints ---------------------------------------------------------------

    def report(self, now_ms: int) -> dict[str, Any]:
        return {
            "live": self.live.report(now_ms, window_ms=self.window_ms),
            "experiment": None if self.spec is None else self.spec.to_dict(),
            "experiments": {key: r.verdict() for key, r in self.experiments.items()},
            "counts": dict(self.counts),
            "held": len(self._held),
            "pending_exposures": len(self.attribution),
        }

    def checkpoint(
        self, next_offsets: dict[Source, dict[int, int]], replay_from: dict[Source, dict[int, int]]
    ) -> dict[str, Any]:
        """What a restart needs (see the module docstring); ``next_offsets``: where reading
        stands (an interaction still held moves its partition's boundary back to it)."""
        positions = self.positions(next_offsets)
        # Never below the boundary the tallies already include: a restart killed before its
        # replay passed the old boundary would otherwise count that stretch twice.
        sources: tuple[Source, ...] = ("exposures", "interactions")
        for source in sources:
            for p, o in self.boundary[source].items():
                positions[source][p] = max(o, positions[source].get(p, 0))
        return {
            "format": CHECKPOINT_FORMAT,
            "window_ms": self.window_ms,
            "live": self.live.to_state(),
            "spec": None if self.spec is None else self.spec.to_dict(),
            "experiments": {k: r.to_state() for k, r in self.experiments.items()},
            "boundary": {
                "exposures": {str(p): o for p, o in positions["exposures"].items()},
                "interactions": {str(p): o for p, o in positions["interactions"].items()},
            },
            "replay_from": {
                source: {str(p): o for p, o in offsets.items()}
                for source, offsets in replay_from.items()
            },
            "closed_until_ms": max(self.closed_until_ms, self.stream_ms),
        }

    @classmethod
    def resume(cls, checkpoint: dict[str, Any], *, window_ms: int) -> OnlineJoin:
        """A join that continues from ``checkpoint`` once its replay offsets are read again."""
        join = cls(window_ms=window_ms)
        if checkpoint.get("format") != CHECKPOINT_FORMAT:
            return join
        join.live = LiveQuality.from_state(checkpoint.get("live") or {})
        spec = ExperimentSpec.from_dict(checkpoint.get("spec"))
        if spec is not None:
            join.spec = spec
        for key, state in (checkpoint.get("experiments") or {}).items():
            results = ExperimentResults.from_state(state)
            if results is not None:
                join.experiments[str(key)] = results
        for source in ("exposures", "interactions"):
            offsets = (checkpoint.get("boundary") or {}).get(source) or {}
            join.boundary[source] = {int(p): int(o) for p, o in offsets.items()}
        join.closed_until_ms = int(checkpoint.get("closed_until_ms") or 0)
        return join

    @staticmethod
    def replay_offsets(checkpoint: dict[str, Any]) -> dict[Source, dict[int, int]]:
        found = checkpoint.get("replay_from") or {}
        return {
            "exposures": {int(p): int(o) for p, o in (found.get("exposures") or {}).items()},
            "interactions": {int(p): int(o) for p, o in (found.get("interactions") or {}).items()},
        }
