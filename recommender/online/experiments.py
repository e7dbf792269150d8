"""Online experiments: a challenger model next to the champion, and the verdict.

Two modes:

- **team-draft interleaving** (Radlinski et al., 2008; Chapelle et al., TOIS 2012): both
  rankings are merged into one answer, each round a coin picks which arm chooses first and each
  arm adds its best item not yet shown; every shown item is credited to the arm that added it.
  An impression whose likes credit one arm more is a win for that arm. The statistic is
  (challenger wins - champion wins) / impressions with a like, with a bootstrap over users.
- **A/B**: a stable hash of (experiment, user) sends ``share`` of the users to the challenger;
  the statistic is the difference of hit rates (exposures with a like), bootstrapped over users.

The verdict is ``challenger`` or ``champion`` only when the whole 99 % interval is on one side
of zero and the sample is at least the minimum (users and impressions with a like per arm);
otherwise ``undecided``, with the sample size. (99 %, not 95 %: a verdict is read again and
again while an experiment runs, and each reading is a chance for noise to look like a winner.)
Pure: numpy.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

from .attribution import Attributed
from .exposures import Arm, Exposure

__all__ = ["ExperimentResults", "ExperimentSpec", "Mode", "ab_arm", "team_draft"]

Mode = Literal["off", "interleave", "ab"]
MODES: Final[tuple[Mode, ...]] = ("off", "interleave", "ab")
LEVEL: Final = 0.99
MIN_USERS: Final = 30
MIN_IMPRESSIONS: Final = 100  # with a like (interleaving), or exposures per arm (A/B)


@dataclass(frozen=True, slots=True)
class ExperimentSpec:
    """What runs: its id (unique per start), mode, the challenger's share (A/B), when it
    started."""

    id: str
    mode: Mode
    share: float = 0.5
    started_at: float = 0.0

    @classmethod
    def start(cls, mode: Mode, share: float = 0.5) -> ExperimentSpec:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if not 0 < share < 1:
            raise ValueError("share must be between 0 and 1")
        now = time.time()
        return cls(f"x{int(now)}-{random.getrandbits(24):06x}", mode, share, now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mode": self.mode,
            "share": self.share,
            "started_at": self.started_at,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ExperimentSpec | None:
        """A spec back from a control record, or None when malformed."""
        if not isinstance(data, dict) or data.get("mode") not in MODES:
            return None
        share, started, key = data.get("share", 0.5), data.get("started_at", 0.0), data.get("id")
        if not isinstance(key, str) or not 0 < len(key) <= 64:
            return None
        if not isinstance(share, int | float) or not 0 < share < 1:
            return None
        if not isinstance(started, int | float) or not math.isfinite(started):
            return None
        return cls(key, data["mode"], float(share), float(started))


def ab_arm(spec: ExperimentSpec, user: str) -> Arm:
    """The user's arm in an A/B experiment: the same on every replica and after restarts."""
    digest = hashlib.blake2b(f"{spec.id}\x00{user}".encode(), digest_size=8).digest()
    return "challenger" if int.from_bytes(digest, "big") / 2**64 < spec.share else "champion"


def team_draft(
    champion: Sequence[str], challenger: Sequence[str], n: int, *, seed: str
) -> tuple[list[str], list[Arm]]:
    """Team-draft interleaving of two rankings into ``n`` items, and who contributed each
    (``seed``: the answer's id, so the merge is reproducible). The arm with fewer picks chooses
    next, a coin decides between equals; an arm out of items leaves the rest to the other."""
    rng = random.Random(seed)
    rankings: dict[Arm, Sequence[str]] = {"champion": champion, "challenger": challenger}
    cursor: dict[Arm, int] = {"champion": 0, "challenger": 0}
    picks: dict[Arm, int] = {"champion": 0, "challenger": 0}
    items: list[str] = []
    credit: list[Arm] = []
    taken: set[str] = set()

    def next_of(arm: Arm) -> str | None:
        ranking = rankings[arm]
        while cursor[arm] < len(ranking) and ranking[cursor[arm]] in taken:
            cursor[arm] += 1
        return ranking[cursor[arm]] if cursor[arm] < len(ranking) else None

    while len(items) < n:
        first: Arm
        if picks["champion"] == picks["challenger"]:
            first = "champion" if rng.random() < 0.5 else "challenger"
        else:
            first = "champion" if picks["champion"] < picks["challenger"] else "challenger"
        second: Arm = "challenger" if first == "champion" else "champion"
        arm, item = first, next_of(first)
        if item is None:
            arm, item = second, next_of(second)
        if item is None:
            break  # both rankings exhausted
        items.append(item)
        credit.append(arm)
        taken.add(item)
        picks[arm] += 1
    return items, credit


def _bootstrap(
    numerators: np.ndarray, denominators: np.ndarray, *, seed: int, rounds: int = 2000
) -> np.ndarray:
    """Ratio of sums over Poisson-bootstrap resamples of users (rows)."""
    rng = np.random.default_rng(seed)
    weights = rng.poisson(1.0, size=(rounds, numerators.size)).astype(np.float64)
    num, den = weights @ numerators, weights @ denominators
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)


@dataclass(slots=True)
class _User:
    exposures: dict[str, int] = field(default_factory=lambda: {"champion": 0, "challenger": 0})
    hits: dict[str, int] = field(default_factory=lambda: {"champion": 0, "challenger": 0})
    #: Interleaving, closed impressions with a like: challenger wins, champion wins, ties.
    outcomes: list[int] = field(default_factory=lambda: [0, 0, 0])


class ExperimentResults:
    """Per-user outcomes of one experiment, and its verdict.

    The caller (the monitor's join) says what counts: :meth:`exposed` and :meth:`hit` add to the
    tallies, :meth:`credit` records an interleaved impression's likes per arm (its outcome can
    change while likes may still come), :meth:`close` folds impressions older than the
    attribution window into their users' tallies. State round-trips through JSON.
    """

    def __init__(self, spec: ExperimentSpec) -> None:
        self.spec = spec
        self._users: dict[str, _User] = {}
        #: Interleaving: open impressions with a like: user, exposure time, likes per arm.
        self._open: dict[str, tuple[str, int, dict[str, int]]] = {}

    def _user(self, user: str) -> _User:
        found = self._users.get(user)
        if found is None:
            found = self._users[user] = _User()
        return found

    def exposed(self, exposure: Exposure) -> None:
        if exposure.experiment == self.spec.id and exposure.user is not None:
            self._user(exposure.user).exposures[exposure.arm or "champion"] += 1

    def hit(self, outcome: Attributed) -> None:
        """An A/B exposure's first like."""
        exposure = outcome.exposure
        if exposure.experiment == self.spec.id and exposure.user is not None:
            self._user(exposure.user).hits[exposure.arm or "champion"] += 1

    def credit(self, outcome: Attributed) -> None:
        """An interleaved impression's likes so far, per arm."""
        exposure = outcome.exposure
        if exposure.experiment != self.spec.id or exposure.user is None:
            return
        self._open[exposure.id] = (exposure.user, exposure.timestamp_ms, dict(outcome.credited))

    def close(self, until_ms: int, window_ms: int, *, closed_before: int = 0) -> None:
        """Fold impressions whose window has passed by ``until_ms`` into their users' tallies
        (those whose window had passed by ``closed_before``, a checkpoint's time, were folded
        before it: dropped)."""
        done = [k for k, (_, ts, _) in self._open.items() if ts + window_ms <= until_ms]
        for key in done:
            user, ts, credited = self._open.pop(key)
            if ts + window_ms > closed_before:
                self._user(user).outcomes[_outcome(credited)] += 1

    def attributed(self, outcome: Attributed) -> None:
        """Both kinds at once (everything counts: for callers without replays)."""
        if outcome.feedback != "like":
            return
        if outcome.exposure.credit is not None:
            self.credit(outcome)
        elif outcome.first_like:
            self.hit(outcome)

    def to_state(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "users": {
                u: [x.exposures["champion"], x.exposures["challenger"], x.hits["champion"],
                    x.hits["challenger"], *x.outcomes]
                for u, x in self._users.items()
            },
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ExperimentResults | None:
        spec = ExperimentSpec.from_dict(state.get("spec"))
        if spec is None:
            return None
        results = cls(spec)
        for user, row in (state.get("users") or {}).items():
            if isinstance(row, list) and len(row) == 7:
                results._users[str(user)] = _User(
                    {"champion": int(row[0]), "challenger": int(row[1])},
                    {"champion": int(row[2]), "challenger": int(row[3])},
                    [int(v) for v in row[4:]],
                )
        return results

    def verdict(self, *, seed: int = 0) -> dict[str, Any]:
        """Mode, per-arm figures, the difference with its 99 % interval, the verdict and the
        sample size (see the module docstring)."""
        if self.spec.mode == "interleave":
            return self._interleaving(seed)
        return self._ab(seed)

    def _ab(self, seed: int) -> dict[str, Any]:
        arms: dict[str, Any] = {}
        samples = {}
        for arm in ("champion", "challenger"):
            rows = [
                (u.hits[arm], u.exposures[arm]) for u in self._users.values() if u.exposures[arm]
            ]
            hits = np.array([h for h, _ in rows], dtype=np.float64)
            shown = np.array([e for _, e in rows], dtype=np.float64)
            samples[arm] = (hits, shown)
            arms[arm] = {
                "users": len(rows),
                "exposures": int(shown.sum()),
                "hits": int(hits.sum()),
                "rate": float(hits.sum() / shown.sum()) if shown.sum() else None,
            }
        enough = all(
            arms[a]["users"] >= MIN_USERS and arms[a]["exposures"] >= MIN_IMPRESSIONS for a in arms
        )
        result: dict[str, Any] = {"mode": "ab", "share": self.spec.share, "arms": arms}
        if not enough:
            return {**result, **_undecided(arms, "ab")}
        champion = _bootstrap(*samples["champion"], seed=seed)
        challenger = _bootstrap(*samples["challenger"], seed=seed + 1)
        diff = challenger - champion
        estimate = (arms["challenger"]["rate"] or 0.0) - (arms["champion"]["rate"] or 0.0)
        return {**result, **_decide(estimate, diff, arms, "difference of hit rates")}

    def _interleaving(self, seed: int) -> dict[str, Any]:
        per_user: dict[str, list[int]] = {
            u: list(x.outcomes) for u, x in self._users.items() if any(x.outcomes)
        }
        for user, _, credited in self._open.values():  # still open: as they stand now
            per_user.setdefault(user, [0, 0, 0])[_outcome(credited)] += 1
        table = np.array(list(per_user.values()), dtype=np.float64).reshape(-1, 3)
        wins, losses, ties = (int(x) for x in table.sum(axis=0)) if table.size else (0, 0, 0)
        impressions = wins + losses + ties
        shown = sum(u.exposures["champion"] for u in self._users.values())
        arms = {
            "challenger": {"wins": wins, "users": len(per_user)},
            "champion": {"wins": losses, "users": len(per_user)},
            "ties": ties,
            "impressions": shown,
            "impressions_with_a_like": impressions,
        }
        result: dict[str, Any] = {"mode": "interleave", "arms": arms}
        if impressions < MIN_IMPRESSIONS or len(per_user) < MIN_USERS:
            return {**result, **_undecided(arms, "interleave", impressions, len(per_user))}
        diffs = _bootstrap(table[:, 0] - table[:, 1], table.sum(axis=1), seed=seed)
        estimate = (wins - losses) / impressions
        return {**result, **_decide(estimate, diffs, arms, "challenger's net win share")}


def _outcome(credited: dict[str, int]) -> int:
    """0: a challenger win, 1: a champion win, 2: a tie."""
    c, h = credited.get("challenger", 0), credited.get("champion", 0)
    return 0 if c > h else 1 if h > c else 2


def _undecided(
    arms: dict[str, Any], mode: str, impressions: int | None = None, users: int | None = None
) -> dict[str, Any]:
    sample: dict[str, Any]
    if mode == "ab":
        sample = {a: {"users": arms[a]["users"], "exposures": arms[a]["exposures"]} for a in arms}
    else:
        sample = {"impressions_with_a_like": impressions, "users": users}
    return {
        "difference": None,
        "interval": None,
        "level": LEVEL,
        "verdict": "undecided",
        "reason": f"too little evidence yet: needs {MIN_USERS} users and {MIN_IMPRESSIONS} "
        f"{'exposures per arm' if mode == 'ab' else 'impressions with a like'}",
        "sample": sample,
        "minimum": {"users": MIN_USERS, "impressions": MIN_IMPRESSIONS},
    }


def _decide(
    estimate: float, resampled: np.ndarray, arms: dict[str, Any], what: str
) -> dict[str, Any]:
    finite = resampled[np.isfinite(resampled)]
    tail = (1 - LEVEL) / 2 * 100
    low, high = (float(v) for v in np.percentile(finite, [tail, 100 - tail]))
    verdict = "challenger" if low > 0 else "champion" if high < 0 else "undecided"
    return {
        "difference": estimate,
        "interval": [low, high],
        "level": LEVEL,
        "verdict": verdict,
        "reason": f"{what} {estimate:+.4f}, {LEVEL:.0%} interval [{low:+.4f}, {high:+.4f}]",
        "sample": arms,
        "minimum": {"users": MIN_USERS, "impressions": MIN_IMPRESSIONS},
    }
