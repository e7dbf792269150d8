"""What each ``recommender evaluate`` protocol needs from the options and the data.

Checked once, before any search or replay, so that a protocol that cannot run is skipped with a
reason instead of failing after the others have spent minutes (the seed's protocol used to stop
a 600-user run after 192 s with "need more than 1000 users", and no report was written).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, RecommenderError
from . import seed_protocol as seed
from .data import Interactions
from .options import TITLES, EvaluateOptions, Protocol
from .splits import global_cutoff, leave_last_out, per_user_holdout, truth_sets

__all__ = ["Plan", "check_options", "plan_protocols", "prequential_retrains", "reason_not_to_run"]


@dataclass(frozen=True, slots=True)
class Plan:
    """The asked-for protocols that can run, in order, and why the others cannot."""

    runnable: list[Protocol]
    skipped: dict[Protocol, str] = field(default_factory=dict)


def check_options(options: EvaluateOptions) -> None:
    """Reject settings no protocol could use.

    Raises
    ------
    ConfigError
        A setting of an asked-for protocol is out of its range.
    """
    asked = set(options.protocols)
    if not options.ks or min(options.ks) < 1:
        raise ConfigError(f"--k: every k must be at least 1, got {list(options.ks)}")
    if "temporal" in asked and not 0 < options.test_fraction < 1:
        raise ConfigError(f"--test-fraction must be between 0 and 1, got {options.test_fraction}")
    if "global" in asked and not 0 < options.cutoff < 1:
        raise ConfigError(f"--cutoff must be a quantile between 0 and 1, got {options.cutoff}")
    if "prequential" in asked:
        if not options.retrain_every or min(options.retrain_every) < 1:
            raise ConfigError(f"--retrain-every must be at least 1, got {options.retrain_every}")
        if not options.windows or min(options.windows) < 0:
            raise ConfigError(f"--windows must be 0 (all) or more, got {options.windows}")


def _users_with(data: Interactions, events: int) -> int:
    return int((np.bincount(data.users, minlength=data.n_users) >= events).sum())


def _temporal(data: Interactions, options: EvaluateOptions) -> str | None:
    fraction = options.test_fraction
    # per_user_holdout hides floor(n * fraction) events and keeps one for training
    needed = max(2, math.ceil(1 / fraction - 1e-9))
    if _users_with(data, needed) == 0:
        return (
            f"no user has the {needed} events a {fraction:.0%} per-user holdout needs to hide "
            f"one (most events a user has: {np.bincount(data.users).max()})"
        )
    if not truth_sets(per_user_holdout(data, fraction=fraction, seed=options.seed)):
        return "no held-out event is a liked item new to its user: nothing to find"
    return None


def _global(data: Interactions, options: EvaluateOptions) -> str | None:
    if data.timestamps is None:
        return "the file has no timestamps: a global time cut-off needs event times"
    split = global_cutoff(data, quantile=options.cutoff)
    if len(split.train) == 0:
        return (
            f"no event lies before the {options.cutoff:.0%} quantile of event time "
            f"({np.unique(data.timestamps).size} distinct timestamps): nothing to train on"
        )
    if not truth_sets(split):
        return "no event after the cut-off is a liked item new to its user: nothing to find"
    return None


def _last(data: Interactions, options: EvaluateOptions) -> str | None:
    if data.timestamps is None:
        return "the file has no timestamps: leave-last-out needs to know which event is newest"
    if not truth_sets(leave_last_out(data, seed=options.seed)):
        return "no user has two liked events (one to learn from, the newest to find)"
    return None


def prequential_retrains(data: Interactions, options: EvaluateOptions) -> list[int]:
    """The ``--retrain-every`` values that retrain before the stream ends: with the others no
    model exists before the last event, so no event would be scored."""
    return [every for every in options.retrain_every if every < len(data)]


def _prequential(data: Interactions, options: EvaluateOptions) -> str | None:
    if not prequential_retrains(data, options):
        return (
            f"the stream has {len(data):,} events, so a retrain every "
            f"{min(options.retrain_every):,} (the least --retrain-every) never comes before its "
            "end and no event would be scored"
        )
    return None


def _seed(rated: Interactions) -> str | None:
    if rated.n_users <= seed.TEST_USERS:
        return (
            f"needs more than {seed.TEST_USERS:,} users (the last {seed.TEST_USERS:,} by id are "
            f"its test set, the others its cross-validation set); the file has {rated.n_users:,}"
        )
    top = float(rated.weights.max())
    if top <= seed.LIKED_ABOVE:
        return (
            f"it judges ratings out of 10 (a hidden rating above {seed.LIKED_ABOVE:g} is a "
            f"correct recommendation); the file's highest rating is {top:g}, so every score "
            "would be 0"
        )
    cv_users, test_users = seed.seed_protocol_split(rated)
    counts = np.bincount(rated.users, minlength=rated.n_users)
    hideable = math.ceil(1 / seed.HIDDEN_FRACTION - 1e-9)
    if not (counts[test_users] >= hideable).any():
        return (
            f"none of its {seed.TEST_USERS:,} test users has the {hideable} ratings needed to "
            f"hide {seed.HIDDEN_FRACTION:.0%} of them"
        )
    if int((counts[cv_users] >= hideable).sum()) < seed.FOLDS:
        return (
            f"fewer than {seed.FOLDS} cross-validation users have the {hideable} ratings needed "
            f"to hide {seed.HIDDEN_FRACTION:.0%} of them: {seed.FOLDS} folds cannot be scored"
        )
    return None


def reason_not_to_run(
    protocol: Protocol, data: Interactions, rated: Interactions, options: EvaluateOptions
) -> str | None:
    """Why ``protocol`` cannot run on ``data`` (``rated``: the same events with the file's own
    ratings, which the seed's protocol judges), or None when it can."""
    if protocol == "temporal":
        return _temporal(data, options)
    if protocol == "last":
        return _last(data, options)
    if protocol == "global":
        return _global(data, options)
    if protocol == "prequential":
        return _prequential(data, options)
    return _seed(rated)


def plan_protocols(data: Interactions, rated: Interactions, options: EvaluateOptions) -> Plan:
    """Check every asked-for protocol before any of them runs.

    Raises
    ------
    RecommenderError
        The data has no events, or none of the asked-for protocols can run on it; the message
        says what each one lacks.
    """
    if len(data) == 0:
        raise RecommenderError(f"{data.source}: no events to evaluate")
    plan = Plan([])
    for protocol in dict.fromkeys(options.protocols):  # asked twice: run once
        reason = reason_not_to_run(protocol, data, rated, options)
        if reason is None:
            plan.runnable.append(protocol)
        else:
            plan.skipped[protocol] = reason
    if not plan.runnable:
        lacks = "; ".join(f"{TITLES[p].lower()} ({p}): {why}" for p, why in plan.skipped.items())
        raise RecommenderError(f"no protocol can run on {data.source}: {lacks}")
    return plan
