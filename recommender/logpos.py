"""Where a reader stands in each partition's log, and whether the log was replaced underneath it.

A Kafka log can be lost while its readers keep their positions: a broker that keeps topics in
memory restarts empty, or a topic is deleted and created again. A reader that resumes at its old
offsets then either finds them out of range (the client silently resets to the earliest offset)
or, if the new log has already grown past them, reads other events at the same numbers. Both are
detected here, from what the reader consumes:

- an offset *below* the next one expected: the log went back (it restarted);
- the record at a remembered offset (the last one a snapshot covered) is not the same record
  (timestamp and CRC-32 of its value differ): the log was replaced;
- a high watermark below the next offset expected.

Pure: offsets in, verdicts out; the caller decides what to do (see RELIABILITY.md).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["LastRecord", "LogPositions"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class LastRecord:
    """A fingerprint of one record: where it is and what it was."""

    offset: int
    timestamp_ms: int
    crc32: int

    @classmethod
    def of(cls, offset: int, timestamp_ms: int, value: bytes | None) -> LastRecord:
        return cls(int(offset), int(timestamp_ms), zlib.crc32(value or b""))

    def to_dict(self) -> dict[str, int]:
        return {"offset": self.offset, "timestamp_ms": self.timestamp_ms, "crc32": self.crc32}

    @classmethod
    def from_dict(cls, data: Any) -> LastRecord | None:
        """The fingerprint recorded in a manifest, or None if absent or malformed."""
        if not isinstance(data, Mapping):
            return None
        try:
            return cls(int(data["offset"]), int(data["timestamp_ms"]), int(data["crc32"]))
        except (KeyError, TypeError, ValueError):
            return None


class LogPositions:
    """Next offset per partition, the fingerprints still to verify, and the last record read."""

    def __init__(self) -> None:
        self.next_offset: dict[int, int] = {}
        self.last: dict[int, LastRecord] = {}
        self._verify: dict[int, LastRecord] = {}

    def start_at(self, partition: int, offset: int, *, verify: LastRecord | None = None) -> None:
        """Reading ``partition`` from ``offset``; ``verify``: a record to find there later."""
        self.next_offset[partition] = offset
        if verify is not None and verify.offset >= offset:
            self._verify[partition] = verify
        else:
            self._verify.pop(partition, None)

    def forget(self, partition: int) -> None:
        """Start over on ``partition`` (after a reset: nothing known of the new log yet)."""
        self.next_offset.pop(partition, None)
        self.last.pop(partition, None)
        self._verify.pop(partition, None)

    def observe(
        self,
        partitions: IntArray,
        offsets: IntArray,
        timestamps_ms: IntArray,
        values: Sequence[bytes | None],
    ) -> dict[int, str]:
        """Take in a consumed batch (in Kafka's order per partition); returns the partitions
        whose log was replaced, with what was seen. Positions of those are left untouched."""
        resets: dict[int, str] = {}
        if partitions.size == 0:
            return resets
        for p in np.unique(partitions).tolist():
            at = np.flatnonzero(partitions == p)
            offs = offsets[at]
            first, last = int(offs.min()), int(offs.max())
            expected = self.next_offset.get(p)
            if expected is not None and first < expected:
                resets[p] = (
                    f"offset {first} arrived where {expected} was next: the log restarted "
                    "(broker restarted empty, or the topic was recreated)"
                )
                continue
            check = self._verify.get(p)
            if check is not None and first <= check.offset <= last:
                hit = at[offs == check.offset]
                k = int(hit[0]) if hit.size else -1
                seen = None if k < 0 else LastRecord.of(check.offset, timestamps_ms[k], values[k])
                if seen is not None and seen != check:
                    resets[p] = (
                        f"the record at offset {check.offset} is not the one recorded there "
                        "(the topic was replaced by another log)"
                    )
                    continue
                del self._verify[p]
            k = int(at[-1])
            self.next_offset[p] = last + 1
            self.last[p] = LastRecord.of(last, timestamps_ms[k], values[k])
        return resets

    def behind_high_watermarks(self, highs: Mapping[int, int]) -> dict[int, str]:
        """Verdicts for every partition whose log ends below its next offset."""
        found = {p: self.behind_high_watermark(p, high) for p, high in highs.items()}
        return {p: reason for p, reason in found.items() if reason}

    def behind_high_watermark(self, partition: int, high: int) -> str | None:
        """A verdict if the log ends (``high``, from a fetch response) below the next offset."""
        expected = self.next_offset.get(partition)
        if high < 0 or expected is None or high >= expected:
            return None
        return (
            f"the log ends at offset {high} but {expected} was next: the log restarted "
            "(broker restarted empty, or the topic was recreated)"
        )
