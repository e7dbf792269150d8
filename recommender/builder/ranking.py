"""The builder's side of the learned ranking stage: when to train a ranker, and what of it goes
into a snapshot.

A ranker is trained in the retrain thread, after the family's fit and never for the first
publication (the first model should not wait), then at most every ``--ranker-interval`` or
when the family's setting changes; retrains in between carry the last one with features from
their own window. Whether it serves is :func:`~recommender.ranker.window_fit.train_on_window`'s
decision; a failure is logged and counted, and the snapshot goes out without a ranker.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import TrainingAborted, one_line
from ..models import ModelFamily, Setting
from ..ranker.window_fit import RankerOutcome, train_on_window, window_features
from ..snapshot import ranker_arrays
from ..window import WindowEvents
from .config import BuilderConfig, BuilderStats

__all__ = ["RankerStage"]

log = logging.getLogger(__name__)


class RankerStage:
    """See the module docstring."""

    def __init__(self, config: BuilderConfig, stats: BuilderStats) -> None:
        self.config, self.stats = config, stats
        self.outcome: RankerOutcome | None = None
        self.setting: Setting | None = None
        self.trained_at = -math.inf  # monotonic
        self.trained_at_epoch: float | None = None

    def parts(
        self,
        events: WindowEvents | None,
        family: ModelFamily,
        setting: Setting,
        *,
        first: bool,
        should_stop: Callable[[], bool],
    ) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
        """The snapshot's ranker arrays (none unless one serves) and manifest section."""
        if self.config.ranker == "off" or events is None or not len(events):
            return {}, None
        due = (
            self.outcome is None
            or setting != self.setting
            or time.monotonic() - self.trained_at >= self.config.ranker_interval
        )
        if due and not first:
            self._train(events, family, setting, should_stop)
        if self.outcome is None:
            return {}, {
                "serves": False,
                "reason": "not trained yet: the first ranker is trained after the first "
                "publication",
            }
        arrays, section = ranker_arrays(self.outcome, window_features(events))
        return arrays, {**section, "trained_at": self.trained_at_epoch}

    def _train(
        self,
        events: WindowEvents,
        family: ModelFamily,
        setting: Setting,
        should_stop: Callable[[], bool],
    ) -> None:
        self.trained_at, self.trained_at_epoch = time.monotonic(), time.time()
        self.setting = setting
        try:
            self.outcome = train_on_window(
                events,
                lambda data: family.fit(data, setting.params, should_stop=should_stop),
                mode=self.config.ranker,
            )
        except TrainingAborted:
            raise
        except Exception as exc:  # the snapshot goes out without a ranker
            self.stats.ranker_failures += 1
            self.outcome = RankerOutcome(False, f"training failed: {one_line(exc)}")
            log.error("ranker training failed, publishing without one: %s", one_line(exc))
            log.debug("ranker failure", exc_info=True)
            return
        self.stats.rankers_trained += 1
        log.info(
            "ranker (%s, trained in %.1f s): %s",
            "serves" if self.outcome.serve else "does not serve",
            self.outcome.fit.seconds if self.outcome.fit is not None else 0.0,
            self.outcome.reason,
        )
