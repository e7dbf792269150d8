"""Live quality: exposures, attributed events and hit rate, per model version and arm, over
sliding periods (5 min, 1 h, 24 h), from one-minute buckets.

An exposure counts in the minute it was shown; it becomes a *hit* when its first like is
attributed (within the attribution window), so the newest minutes' hit rates still grow for
up to that window: reports say how many exposures are still open. Hits by position count the
position of each exposure's first like. Coverage is the number of distinct items shown (the
server divides by its catalogue). State is small (counters, and the items shown in the last
hour) and round-trips through JSON for the monitor's checkpoint. Pure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

from .attribution import Attributed
from .exposures import Exposure

__all__ = ["PERIODS", "LiveQuality"]

BUCKET_MS: Final = 60_000
#: The sliding periods reported, by name.
PERIODS: Final = {"5m": 5 * 60_000, "1h": 3600_000, "24h": 24 * 3600_000}
POSITIONS: Final = 10  # hits by position: 1..10, and deeper ones together
_KEEP_MS: Final = PERIODS["24h"] + BUCKET_MS
_COVERAGE_MS: Final = PERIODS["1h"]
_COARSE_MINUTES: Final = 10
#: At most this many distinct items remembered per minute for coverage.
_MAX_SHOWN_PER_MINUTE: Final = 200_000


@dataclass(slots=True)
class _Counts:
    exposures: int = 0
    hits: int = 0
    likes: int = 0
    negatives: int = 0
    explicit: int = 0
    delay_ms: int = 0  # sum of time from exposure to first like, over hits
    positions: list[int] = field(default_factory=lambda: [0] * (POSITIONS + 1))

    def add(self, other: _Counts) -> None:
        self.exposures += other.exposures
        self.hits += other.hits
        self.likes += other.likes
        self.negatives += other.negatives
        self.explicit += other.explicit
        self.delay_ms += other.delay_ms
        self.positions = [a + b for a, b in zip(self.positions, other.positions, strict=True)]

    def report(self) -> dict[str, Any]:
        return {
            "exposures": self.exposures,
            "hits": self.hits,
            "hit_rate": self.hits / self.exposures if self.exposures else None,
            "likes": self.likes,
            "negatives": self.negatives,
            "explicit": self.explicit,
            "seconds_to_first_like": self.delay_ms / self.hits / 1000 if self.hits else None,
            "hits_by_position": self.positions,
        }


def _arm_key(exposure: Exposure) -> str:
    if exposure.credit is not None:
        return "interleaved"
    return exposure.arm or "champion"


class LiveQuality:
    """Per-minute counters keyed by (minute, model version, arm)."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[int, int, str], _Counts] = {}
        self._shown: dict[int, set[str]] = {}
        self.newest_ms = 0

    def _bucket(self, timestamp_ms: int, exposure: Exposure) -> _Counts:
        key = (timestamp_ms // BUCKET_MS, exposure.model_version, _arm_key(exposure))
        counts = self._buckets.get(key)
        if counts is None:
            counts = self._buckets[key] = _Counts()
        return counts

    def exposed(self, exposure: Exposure) -> None:
        """Count an answer shown."""
        self._bucket(exposure.timestamp_ms, exposure).exposures += 1
        minute = exposure.timestamp_ms // BUCKET_MS
        shown = self._shown.setdefault(minute, set())
        if len(shown) < _MAX_SHOWN_PER_MINUTE:
            shown.update(exposure.items[: _MAX_SHOWN_PER_MINUTE - len(shown)])
        self._advance(exposure.timestamp_ms)

    def attributed(self, outcome: Attributed) -> None:
        """Count an attributed interaction (in the minute of the exposure it answers)."""
        counts = self._bucket(outcome.exposure.timestamp_ms, outcome.exposure)
        if outcome.explicit:
            counts.explicit += 1
        if outcome.feedback != "like":
            counts.negatives += 1
            return
        counts.likes += 1
        if outcome.first_like:
            counts.hits += 1
            counts.delay_ms += outcome.delay_ms
            counts.positions[min(outcome.position, POSITIONS)] += 1

    def _advance(self, now_ms: int) -> None:
        if now_ms <= self.newest_ms:
            return
        minute_changed = now_ms // BUCKET_MS != self.newest_ms // BUCKET_MS
        self.newest_ms = now_ms
        if not minute_changed:
            return
        oldest = (now_ms - _KEEP_MS) // BUCKET_MS
        coarse = (now_ms - _COVERAGE_MS) // BUCKET_MS
        kept: dict[tuple[int, int, str], _Counts] = {}
        for (minute, version, arm), counts in self._buckets.items():
            if minute < oldest:
                continue
            if minute < coarse:  # older than an hour: ten-minute buckets keep the state small
                minute -= minute % _COARSE_MINUTES
            target = kept.get((minute, version, arm))
            if target is None:
                kept[(minute, version, arm)] = counts
            else:
                target.add(counts)
        self._buckets = kept
        first_shown = (now_ms - _COVERAGE_MS) // BUCKET_MS
        for minute in [m for m in self._shown if m < first_shown]:
            del self._shown[minute]

    # -- reports -------------------------------------------------------------------------------

    def report(self, now_ms: int, *, window_ms: int = 30 * 60_000) -> dict[str, Any]:
        """Totals, per arm and per model version, for every period; the last hour per minute;
        and how many exposures may still become hits (younger than the attribution window)."""
        out: dict[str, Any] = {"periods": {}, "open_minutes": max(1, window_ms // BUCKET_MS)}
        for name, span in PERIODS.items():
            since = (now_ms - span) // BUCKET_MS
            total = _Counts()
            arms: dict[str, _Counts] = {}
            versions: dict[str, _Counts] = {}
            for (minute, version, arm), counts in self._buckets.items():
                if minute < since:
                    continue
                total.add(counts)
                arms.setdefault(arm, _Counts()).add(counts)
                versions.setdefault(str(version), _Counts()).add(counts)
            period = {
                **total.report(),
                "arms": {k: v.report() for k, v in sorted(arms.items())},
                "versions": {k: v.report() for k, v in sorted(versions.items(), key=_version)},
            }
            if span <= _COVERAGE_MS:
                period["distinct_items_shown"] = len(self._shown_since(since))
            out["periods"][name] = period
        out["minutes"] = self._minutes(now_ms)
        return out

    def _shown_since(self, minute: int) -> set[str]:
        found: set[str] = set()
        for m, items in self._shown.items():
            if m >= minute:
                found |= items
        return found

    def _minutes(self, now_ms: int) -> list[dict[str, Any]]:
        """The last hour, minute by minute: exposures, hits and the versions that answered."""
        last = now_ms // BUCKET_MS
        rows: dict[int, dict[str, Any]] = {}
        for (minute, version, _), counts in self._buckets.items():
            if minute <= last - 60:
                continue
            row = rows.setdefault(minute, {"minute": minute, "exposures": 0, "hits": 0})
            row["exposures"] += counts.exposures
            row["hits"] += counts.hits
            row.setdefault("versions", set()).add(version)
        return [
            {**row, "versions": sorted(row["versions"]), "t": row["minute"] * 60}
            for _, row in sorted(rows.items())
        ]

    # -- checkpoints ---------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "buckets": [[m, v, a, asdict(c)] for (m, v, a), c in self._buckets.items()],
            "newest_ms": self.newest_ms,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LiveQuality:
        live = cls()
        for minute, version, arm, counts in state.get("buckets", []):
            live._buckets[(int(minute), int(version), str(arm))] = _Counts(**counts)
        live.newest_ms = int(state.get("newest_ms", 0))
        return live


def _version(pair: tuple[str, Any]) -> int:
    return int(pair[0])
