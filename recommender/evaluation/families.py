"""The model-family rows of an offline protocol: each family tuned on validation only, as
self-tuning would tune it, and how the daemon's choice compares with the best of them."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..models import FAMILIES, Sequences, Setting, make_family
from ..models.data import recent_sequences
from ..tuning import SearchSpace, tune
from ..user_metrics import paired_bootstrap
from .daemon import window_events
from .data import Interactions
from .models import FamilyModel
from .offline import ModelResult

__all__ = ["LABELS", "best_family_sentence", "family_models", "train_sequences"]

log = logging.getLogger(__name__)

#: How a family is named in a report.
LABELS = {
    "als": "ALS",
    "ease": "EASE",
    "rp3beta": "RP3beta",
    "knn": "item-kNN",
    "sequence": "sequence",
}


def train_sequences(train: Interactions, *, seed: int = 42) -> Sequences:
    """Each user's liked training events in time order (without times: a seeded shuffle, the
    order a replay into Kafka would give), as the builder's window hands them to a family."""
    order = (
        np.random.default_rng(seed).permutation(len(train))
        if train.timestamps is None
        else train.timestamps
    )
    zeros = np.zeros(len(train), np.int64)
    return recent_sequences(
        train.users.astype(np.int64),
        train.items.astype(np.int64),
        (zeros, np.arange(len(train)), np.asarray(order, np.int64)),
        train.weights > 0,
        train.n_users,
    )


def family_models(
    train: Interactions, *, budget_seconds: float, binary: bool, seed: int
) -> tuple[list[FamilyModel], list[str]]:
    """One model per family other than ALS (which the caller searches itself), each the best
    setting a ``budget_seconds`` tuning session finds on a validation split carved from
    ``train`` (each user's newest events), or its defaults when none beats them beyond the
    noise; and a note per family left out (over the memory or time budget)."""
    events = window_events(train, binary=binary, seed=seed)
    sequences = train_sequences(train, seed=seed)
    models: list[FamilyModel] = []
    notes: list[str] = []
    for family in FAMILIES:
        if family == "als":
            continue
        defaults = Setting(family, make_family(family).defaults())
        outcome = tune(
            events,
            current=defaults,
            # A fit may take the whole budget (the builder's tuner allows a third of its own).
            space=SearchSpace(families=(family,), max_seconds=budget_seconds),
            budget_seconds=budget_seconds,
            seed=seed,
        )
        if family in outcome.excluded:
            notes.append(f"{LABELS[family]} is left out: {outcome.excluded[family]}.")
            continue
        setting = outcome.best if outcome.adopted else defaults
        how = "tuned on validation" if outcome.adopted else "defaults (tuning found no better)"
        log.info("%s: %s after %d trials", family, how, len(outcome.trials))
        models.append(FamilyModel(setting, name=f"{LABELS[family]}, {how}", sequences=sequences))
    return models, notes


def best_family_sentence(
    daemon: ModelResult, candidates: Sequence[ModelResult], k: int, *, seed: int
) -> str:
    """How the daemon's row compares with the best of ``candidates`` (every learnt model tuned
    on validation), with a paired bootstrap over the test users."""
    best = max(candidates, key=lambda r: r.metrics[k]["ndcg"])
    ours, theirs = daemon.metrics[k]["ndcg"], best.metrics[k]["ndcg"]
    if best is daemon or theirs <= 0:
        return f"The daemon's row is the best learnt model here (NDCG@{k} {ours:.4f})."
    c = paired_bootstrap(daemon.user_ndcg[k], best.user_ndcg[k], seed=seed)
    verdict = (
        "below it beyond the noise"
        if c.high < 0
        else "not distinguishable from it"
        if c.low <= 0
        else "above it"
    )
    return (
        f"The daemon serves {ours / theirs:.0%} of the best learnt model's NDCG@{k} "
        f"({best.name}: {theirs:.4f} vs {ours:.4f}, {c.users:,} users, difference interval "
        f"[{c.low:+.4f}, {c.high:+.4f}]): {verdict}."
    )
