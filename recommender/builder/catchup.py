"""Whether the builder has read what it set out to read: the backlog at start, and replays.

A builder that starts on a topic that already holds events (``-b``, or a restart after a pause)
must not publish a model of half its backlog: fetch order across partitions is uneven (one
partition can be read to its end before another starts), so such a model knows some partitions'
users and not others, and the quality gate would then hold every full model against it. So at
start the builder notes each partition's high watermark (and, on resume, the offset up to which it
replays what its snapshot had read), and publishes nothing until every partition's position has
reached that target.

A high watermark read before any fetch is only a lower bound on some brokers (the embedded one
answers the base offset of the last record batch + 1): the first watermark a fetch response
reports for a partition raises its target once, so the target is the end of the log as the
builder first saw it, however the broker answers.

Pure: offsets in, a verdict out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CatchUp"]


@dataclass(slots=True)
class _Target:
    offset: int  # read up to (not including) this offset
    confirmed: bool  # raised by a fetch response's watermark already (or nothing to confirm)


class CatchUp:
    """Per partition, the offset the builder must reach before its first publication.

    Partitions not registered with :meth:`expect` (from the end of the log, or created after
    the start) never hold publication back.
    """

    def __init__(self) -> None:
        self._targets: dict[int, _Target] = {}
        self._done = False

    def expect(
        self, partition: int, *, start: int, low: int, high: int | None, replay_until: int = 0
    ) -> None:
        """Reading ``partition`` from ``start`` (``low``/``high``: its watermarks as first read,
        ``high`` possibly a lower bound, None if the broker did not say; ``replay_until``: the
        next offset the resumed snapshot had consumed, which must be read again first)."""
        target = max(high or 0, replay_until)
        # An empty log (low == high) has nothing a fetch could confirm; one we start past the
        # end of has nothing to read either. An unknown end waits for a fetch response.
        nothing_to_read = high is not None and high <= max(low, start) and replay_until <= start
        self._targets[partition] = _Target(target, confirmed=nothing_to_read)
        self._done = False

    def forget(self, partition: int, *, high: int | None = None) -> None:
        """The partition's log was replaced: read the new one up to ``high`` (None: no target)."""
        if high is None or high <= 0:
            self._targets.pop(partition, None)
        else:
            self._targets[partition] = _Target(high, confirmed=False)

    def observe(self, fetched_highs: Mapping[int, int]) -> None:
        """Watermarks reported by fetch responses (partitions not fetched yet left out)."""
        for partition, high in fetched_highs.items():
            target = self._targets.get(partition)
            if target is not None and not target.confirmed and high >= 0:
                target.offset = max(target.offset, high)
                target.confirmed = True

    def unconfirmed(self) -> list[int]:
        """Partitions whose target no fetch response has confirmed yet."""
        return [p for p, t in self._targets.items() if not t.confirmed]

    def caught_up(self, next_offsets: Mapping[int, int]) -> bool:
        """Whether every registered partition has been read up to its target (once true, stays
        true: later events are the live stream, not the backlog)."""
        if self._done:
            return True
        self._done = all(
            t.confirmed and next_offsets.get(p, -1) >= t.offset for p, t in self._targets.items()
        )
        if self._done:
            self._targets.clear()
        return self._done

    def progress(self, next_offsets: Mapping[int, int]) -> dict[str, Any]:
        """What is left, for logs and the status document."""
        behind = {
            str(p): {"next_offset": next_offsets.get(p), "target": t.offset}
            for p, t in sorted(self._targets.items())
            if not (t.confirmed and next_offsets.get(p, -1) >= t.offset)
        }
        return {"caught_up": self._done, "behind": behind}
