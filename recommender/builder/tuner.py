"""The builder's self-tuning: sessions of :func:`recommender.tuning.tune` in a background thread.

A session starts once a first model is served and the builder has caught up with the topic,
then again after ``--retune-every`` publications or ``--retune-interval`` seconds (the window
drifts), warm-started from the current and the best settings found so far. It works on a copy of
the window, with one thread, and waits whenever a retrain runs, so it never delays one. When it
finds a setting better than the current one beyond the noise, the publisher adopts it and
retrains at once, with or without new events: a quiet topic still ends up with a tuned model.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

from ..models import Setting
from ..tuning import SearchSpace, TuningOutcome, tune
from ..window import WindowEvents
from .config import BuilderConfig
from .publish import Publisher

__all__ = ["Tuner"]

log = logging.getLogger(__name__)

TunerState = Literal["off", "waiting", "running"]


class Tuner:
    """Decides when to tune, runs sessions, hands adopted settings to the publisher."""

    def __init__(self, config: BuilderConfig, publisher: Publisher, abort: threading.Event) -> None:
        self.config = config
        self.publisher = publisher
        self._abort = abort
        self.space = SearchSpace(
            families=config.families,
            pinned={
                **{name: getattr(config.params, name) for name in config.pinned},
                **config.pinned_family_settings,
            },
            max_bytes=config.model_memory,
        )
        self.state: TunerState = "waiting" if config.tune else "off"
        self.sessions = 0
        self.last: TuningOutcome | None = None
        self.best_seen: Setting | None = None
        self._published_at_last = 0
        self._ended_at: float | None = None
        self._thread: threading.Thread | None = None
        self.session_started: float | None = None

    def due(self, *, published: int, caught_up: bool) -> bool:
        """Whether a session should start now (asked by the consuming thread)."""
        if self.state != "waiting" or self.publisher.serving is None or not caught_up:
            return False
        if self.sessions == 0:
            return True
        assert self._ended_at is not None
        return (
            published - self._published_at_last >= self.config.retune_every
            or time.monotonic() - self._ended_at >= self.config.retune_interval
        )

    def start(self, events: WindowEvents, *, published: int) -> None:
        """Run a session on ``events`` (a copy of the window) in the background."""
        self.state = "running"
        self.session_started = time.time()
        self._published_at_last = published
        budget = self.config.tune_budget if self.sessions == 0 else self.config.tune_budget / 2
        self._thread = threading.Thread(
            target=self._session, args=(events, budget), name="tuning", daemon=True
        )
        self._thread.start()
        self.publisher.changed.set()

    def _session(self, events: WindowEvents, budget: float) -> None:
        current = self.publisher.setting
        warm = [p for p in (self.best_seen,) if p is not None and p != current]
        log.info(
            "tuning %s on %d window events for up to %.0f s (current: %s %s)",
            "/".join(self.space.families),
            len(events),
            budget,
            current.family,
            dict(current.params),
        )
        try:
            outcome = tune(
                events,
                current=current,
                space=self.space,
                budget_seconds=budget,
                warm_start=warm,
                seed=self.sessions,
                pause=self._wait_for_retrain,
                should_stop=self._abort.is_set,
            )
        except Exception:  # tuning is an optimisation: a failure leaves the current settings
            log.exception("tuning failed; keeping the current settings")
            self._finish()
            return
        self.last = outcome
        self.best_seen = outcome.best
        self.publisher.tuning = outcome.to_dict()
        log.info(
            "tuning: %d trials (%d pruned) in %.0f s; best %s %s; %s: %s",
            len(outcome.trials),
            sum(t.state == "pruned" for t in outcome.trials),
            outcome.seconds,
            outcome.best.family,
            dict(outcome.best.params),
            "adopted" if outcome.adopted else "kept the current settings",
            outcome.reason,
        )
        if outcome.adopted and not self._abort.is_set():
            self.publisher.adopt(outcome.best)
        self._finish()

    def _wait_for_retrain(self) -> None:
        while not self.publisher.idle.wait(0.5):
            if self._abort.is_set():
                return

    def _finish(self) -> None:
        self.sessions += 1
        self._ended_at = time.monotonic()
        self.session_started = None
        self.state = "waiting"
        self.publisher.changed.set()

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "budget_seconds": self.config.tune_budget,
            "sessions": self.sessions,
            "running_since": self.session_started,
            "pinned": sorted(self.config.pinned),
            "families": list(self.space.families),
            "last": None if self.last is None else self.last.to_dict(),
        }

    def join(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
