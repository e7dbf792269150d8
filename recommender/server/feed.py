"""What the server learns from its topics, applied to its state: item records to the catalogue,
fresh interactions to fold-in and new items, experiment controls to the running experiment.

The Kafka follower hands it records (see :mod:`.follower`); tests hand it records directly. Each
method runs on the follower's thread, never on the event loop, and keeps its locks short: a
request never waits behind a burst of records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from ..events import parse_values
from ..items import Catalog, ItemRecord
from ..serving.fresh import FreshEvents
from ..serving.model import RecommenderModel
from ..serving.pipeline import ModelPipeline
from .metrics import ServerMetrics

__all__ = ["Feed"]

IntArray = npt.NDArray[np.int64]


class Feed:
    """Applies records to one server's state.

    Parameters
    ----------
    catalog, fresh : Catalog, FreshEvents
        Shared by every model served (champion and challenger).
    served : callable
        The pipelines served now (the champion's first): their new items and rules caches
        follow what is applied here.
    coverage : callable
        A model's next offsets per partition: events below them are in its snapshot.
    on_control : callable
        Experiment control records.
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        fresh: FreshEvents,
        served: Callable[[], Sequence[ModelPipeline]],
        coverage: Callable[[RecommenderModel], dict[int, int]],
        metrics: ServerMetrics,
        on_control: Callable[[list[bytes | None]], None] = lambda values: None,
    ) -> None:
        self.catalog = catalog
        self.fresh = fresh
        self.served = served
        self.coverage = coverage
        self.metrics = metrics
        self.on_control = on_control

    def items(self, values: Sequence[bytes | None], keys: Sequence[bytes | None] = ()) -> int:
        """Item records (values, with their keys for tombstones): applied at once, a hidden,
        deleted or expired item leaves every answer now. Returns how many were applied."""
        applied = self.catalog.apply(values, keys)
        content = [(r.id, r.categories) for r in applied if isinstance(r, ItemRecord)]
        for pipeline in self.served():
            if content:
                pipeline.new_items.add_content(content)
            pipeline.new_items.refresh()
            pipeline.visibility.warm()  # here, so that requests find the columns cached
        return len(applied)

    def controls(self, values: list[bytes | None]) -> None:
        self.on_control(values)

    def events(
        self, values: Sequence[bytes | None], partitions: IntArray, offsets: IntArray
    ) -> int:
        """Interaction records at these positions: the ones no served snapshot covers become
        fresh events (fold-in), and events of items a model does not know give those items
        vectors for it (item fold-in). Returns how many became fresh."""
        served = self.served()
        champion = served[0].model if served else None
        parsed = parse_values(values, ratings=None if champion is None else champion.ratings)
        if parsed.rejected.size:
            self.metrics.followed.labels("malformed").inc(int(parsed.rejected.size))
        ok = parsed.accepted
        partitions, offsets = partitions[ok], offsets[ok]
        if champion is not None and ok.size:
            limits = np.zeros(int(partitions.max()) + 1, np.int64)
            for p, offset in self.coverage(champion).items():
                if p < limits.size:
                    limits[p] = offset
            covered = offsets < limits[partitions]
            if covered.any():  # already in the serving snapshot (possible right after a swap)
                self.metrics.followed.labels("covered").inc(int(covered.sum()))
                parsed = parsed.select(~covered)
                partitions, offsets = partitions[~covered], offsets[~covered]
        self.fresh.add(parsed, partitions, offsets)
        self.metrics.followed.labels("fresh").inc(len(parsed))
        if not len(parsed):
            return 0
        items = parsed.items()
        distinct = set(items)
        triples: list[tuple[str, str, float]] | None = None
        for pipeline in served:
            known = pipeline.model.item_index
            unknown = {item for item in distinct if item not in known}
            if not unknown:  # most batches: a look per distinct item, nothing per event
                continue
            if triples is None:
                weights = parsed.weights.tolist()
                triples = list(zip(parsed.users(), items, weights, strict=True))
            new = [t for t in triples if t[1] in unknown]
            if pipeline.new_items.add_events(new):
                pipeline.new_items.refresh()
        return len(parsed)
