"""The builder's side of the learned ranking stage: when to train a ranker, and what of it goes
into a snapshot.

A ranker is trained in the retrain thread, after the family's fit and never for the first
publication (the first model should not wait), then at most every ``--ranker-interval`` or
when the family's setting changes; retrains in between carry the last one with features from
their own window. Whether it serves is :func:`~recommender.ranker.window_fit.train_on_window`'s
decision; a failure is logged and counted, and the snapshot goes out without a ranker.

With ``--items-topic``, the catalogue's categories and attributes of the window's items are
features too (read by :class:`~recommender.builder.catalogue.ItemsTopicReader`): when training,
the ranker learns from the most common attribute names; each publication carries the window's
items' values of the ranker's own attributes, from the catalogue as it is then.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import TrainingAborted, one_line
from ..features import ItemInformation, item_information
from ..items import Catalog
from ..models import ModelFamily, Setting
from ..ranker.candidates import ATTRIBUTE_PREFIX, MATCH_FEATURE, MATCH_LABELS
from ..ranker.window_fit import RankerOutcome, train_on_window, window_features
from ..snapshot import ranker_arrays
from ..window import WindowEvents
from .config import BuilderConfig, BuilderStats

__all__ = ["RankerStage"]

log = logging.getLogger(__name__)


class RankerStage:
    """See the module docstring."""

    def __init__(
        self,
        config: BuilderConfig,
        stats: BuilderStats,
        *,
        catalogue: Callable[[], Catalog] | None = None,
    ) -> None:
        self.config, self.stats = config, stats
        self.catalogue = catalogue
        self._catalog: Catalog | None = None  # as last read
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
        information = None
        if self.outcome.serve and self.outcome.fit is not None:
            schema = self.outcome.fit.ranker.schema.names
            names = [
                n.removeprefix(ATTRIBUTE_PREFIX) for n in schema if n.startswith(ATTRIBUTE_PREFIX)
            ]
            if names or MATCH_FEATURE in schema or MATCH_LABELS in schema:
                information = self._information(events, names)
        arrays, section = ranker_arrays(self.outcome, window_features(events, information))
        section = {**section, "trained_at": self.trained_at_epoch}
        if self._catalog is not None:  # what the item features were read from
            catalog = self._catalog
            section["catalogue"] = {
                "items": len(catalog),
                "ignored_attributes": catalog.ignored_attributes,
                "rejected_records": sum(catalog.rejected.values()),
            }
        return arrays, section

    def _information(
        self, events: WindowEvents, names: list[str] | None = None
    ) -> ItemInformation | None:
        """What the catalogue says of the window's items (``names``: these attributes; None:
        the most common), or None without an items topic."""
        if self.catalogue is None:
            return None
        catalog = self._catalog = self.catalogue()
        return item_information(events.item_ids, catalog.record, names=names)

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
                information=self._information(events),
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
