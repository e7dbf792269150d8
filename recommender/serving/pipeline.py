"""A request's one way through the server: query → candidates → rules → ranking → mixing →
answer and exposure.

:class:`ModelPipeline` is one loaded model with everything derived from it (its rules cache, its
new items, its ranker): made when the model is swapped in, dropped with it, so two models never
share derived state, whatever their version numbers. :class:`Serving` runs a request through
the champion's pipeline, or through both arms' and the mixing stage while an experiment runs,
and logs what was shown under the answer's recommendation id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from ..items import Catalog
from ..items.fresh import FreshItems
from ..logs import RateLimitedLog
from ..models.answers import Answer, ScoredItem
from ..online.experiments import ExperimentSpec
from ..online.exposures import Arm, new_recommendation_id
from .candidates import Scorer, generate
from .mixing import Mixed, arms_for, mix
from .model import RecommenderModel
from .query import Ask, resolve
from .ranking import KeepOrder, Ranker, select
from .rules import Visibility
from .similar import similar_items

__all__ = ["ExposureSink", "ModelPipeline", "Served", "Serving"]

log = logging.getLogger(__name__)


class ExposureSink(Protocol):
    """Where answers are logged (the exposures topic); returns the recommendation id."""

    def record(
        self,
        *,
        route: str,
        items: Sequence[str],
        model_version: int,
        family: str,
        user: str | None = None,
        session: Sequence[str] = (),
        arm: Arm | None = None,
        credit: Sequence[Arm] | None = None,
        experiment: str | None = None,
        challenger_version: int | None = None,
        recommendation_id: str | None = None,
    ) -> str: ...


class ModelPipeline:
    """One model's stages, and the state derived from that model.

    Parameters
    ----------
    model : RecommenderModel
        The loaded model (immutable).
    catalog : Catalog
        Shared by every model: what may be shown.
    new_items : FreshItems
        The holder's new items; its view is used only when made for this very model.
    catalog_only, explore : bool, float
        The server's rules: only catalogued items; the share of slots reserved for new items.
    """

    def __init__(
        self,
        model: RecommenderModel,
        *,
        catalog: Catalog,
        new_items: FreshItems,
        catalog_only: bool = False,
        explore: float = 0.0,
        ranker: Ranker | None = None,
    ) -> None:
        self.model = model
        self.visibility = Visibility(catalog, model.item_index, catalog_only=catalog_only)
        self.new_items = new_items
        self.explore = explore
        self.ranker: Ranker = ranker or KeepOrder()

    async def answer(self, ask: Ask, score: Scorer) -> Answer:
        """A ``user``, ``items`` or ``popular`` request's answer from this model alone."""
        model = self.model
        mask = self.visibility.mask(ask.item_filter, ask.seen)
        if ask.kind == "popular":
            items = model.popular(
                ask.n,
                offset=ask.offset,
                recent=ask.recent,
                exclude=ask.exclude,
                excluded=mask.excluded,
                allowed=mask.allowed,
            )
            return Answer(items, "popular")
        wanted = self.ranker.candidates
        if not wanted:
            query = resolve(model, ask)
            found = await generate(model, self.new_items.view, query, score)
            return await self.ranker.rank(ask, select(model, found, mask, explore=self.explore))
        # A learned ranker reorders the top ``wanted`` items; a page is a slice of its order.
        page = ask.n + ask.offset
        wide = replace(ask, n=max(wanted, page), offset=0)
        found = await generate(model, self.new_items.view, resolve(model, wide), score)
        candidates = select(model, found, mask, explore=self.explore)
        ranked = await self.ranker.rank(replace(wide, n=page), candidates)
        return Answer(ranked.items[ask.offset :], ranked.source)

    def similar(self, ask: Ask) -> list[ScoredItem] | None:
        """A ``similar`` request's items (None: an unknown item). Blocking: a large catalogue
        scores every item, work for a thread."""
        mask = self.visibility.mask(ask.item_filter, ask.seen)
        return similar_items(self.model, self.new_items.view, mask, ask.items[0], ask.n)


@dataclass(frozen=True, slots=True)
class Served:
    """An answer as sent: items in position order, where they came from, its id; in an
    experiment, the arm of each item (``credit``) or the user's arm (``arm``)."""

    items: list[ScoredItem]
    source: str
    recommendation_id: str
    model: RecommenderModel
    credit: list[Arm] | None = None
    arm: Arm | None = None
    experiment: ExperimentSpec | None = None

    @property
    def fallback(self) -> bool:
        return self.source == "popular"


class Serving:
    """Runs requests through the served pipelines, and logs every answer.

    Parameters
    ----------
    champion, challenger : callable
        The pipelines served now (None: none loaded).
    experiment : callable
        The running experiment, or None.
    score : Scorer
        Scores a query against every item (batched by the server).
    exposures : ExposureSink
        Logs each answer.
    on_arm_failure : callable
        Called when the challenger failed to answer (the champion answered alone).
    """

    def __init__(
        self,
        *,
        champion: Callable[[], ModelPipeline | None],
        challenger: Callable[[], ModelPipeline | None],
        experiment: Callable[[], ExperimentSpec | None],
        score: Scorer,
        exposures: ExposureSink,
        on_arm_failure: Callable[[], None] = lambda: None,
    ) -> None:
        self.champion = champion
        self.challenger = challenger
        self.experiment = experiment
        self.score = score
        self.exposures = exposures
        self.on_arm_failure = on_arm_failure
        self._failures = RateLimitedLog(log, interval=60.0)

    async def answer(self, ask: Ask, pipeline: ModelPipeline) -> Served:
        """``ask`` answered by ``pipeline`` (the champion's, taken once by the caller), or by
        the running experiment's arms; logged."""
        spec = self.experiment() if ask.experiment and ask.user is not None else None
        challenger = self.challenger() if spec is not None else None
        if spec is not None and challenger is not None:
            rec_id = new_recommendation_id()  # also the team draft's coin
            mixed = await self._in_experiment(ask, spec, pipeline, challenger, rec_id)
            if mixed is not None:
                return self._logged(ask, pipeline, mixed, spec, challenger, rec_id)
        answer = await pipeline.answer(ask, self.score)
        return self._logged(ask, pipeline, Mixed(answer.items, answer.source), None, None)

    def similar(self, ask: Ask, pipeline: ModelPipeline) -> Served | None:
        """A ``similar`` request (blocking; None: an unknown item), logged."""
        found = pipeline.similar(ask)
        if found is None:
            return None
        return self._logged(ask, pipeline, Mixed(found, "similar"), None, None)

    async def _in_experiment(
        self,
        ask: Ask,
        spec: ExperimentSpec,
        champion: ModelPipeline,
        challenger: ModelPipeline,
        rec_id: str,
    ) -> Mixed | None:
        assert ask.user is not None
        pipelines = {"champion": champion, "challenger": challenger}
        answers: dict[Arm, Answer] = {}
        for arm in arms_for(spec, ask.user):
            try:
                answers[arm] = await pipelines[arm].answer(ask, self.score)
            except Exception as exc:
                if arm == "champion":
                    raise
                # The challenger's failure never fails the request: the champion answers.
                self.on_arm_failure()
                self._failures.exception(
                    type(exc).__name__,
                    "the challenger failed to answer (the champion answered alone): %s",
                    exc,
                )
                return None
        return mix(spec, ask.user, answers, ask.n, seed=rec_id)

    def _logged(
        self,
        ask: Ask,
        pipeline: ModelPipeline,
        mixed: Mixed,
        spec: ExperimentSpec | None,
        challenger: ModelPipeline | None,
        rec_id: str | None = None,
    ) -> Served:
        model = pipeline.model
        rec_id = self.exposures.record(
            route=ask.route,
            items=[s.item for s in mixed.items],
            model_version=model.version,
            family=model.family,
            user=ask.user,
            session=ask.items if ask.kind != "user" else (),
            arm=mixed.arm,
            credit=mixed.credit,
            experiment=None if spec is None else spec.id,
            challenger_version=None if challenger is None else challenger.model.version,
            recommendation_id=rec_id,
        )
        return Served(mixed.items, mixed.source, rec_id, model, mixed.credit, mixed.arm, spec)
