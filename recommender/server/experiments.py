"""Online experiments in the server: the challenger model, the running experiment, its routes.

The challenger is another builder's store (``--challenger-model-dir``), watched and hot-swapped
like the champion's. The running experiment is the newest record of the experiments topic
(``--experiments-topic``, followed from its beginning by every replica, so a start or a stop
reaches all of them and survives restarts), else the one given by ``--experiment``. While one
runs and the challenger is loaded, ``GET /recommend?user=`` answers

- **interleave**: both models' rankings merged by team draft, each item credited to its arm;
- **ab**: the user's arm's model alone (a stable hash of the experiment and the user).

``GET /experiments`` shows the experiment, both models and the monitor's verdict;
``POST /experiments {"mode": "interleave"|"ab"|"off", "share": 0.5}`` starts or stops one
(a write: it needs the token when ``--api-token`` is set).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from typing import Any, cast

from aiohttp import web

from ..kafka import BrokerHealth, KafkaSettings
from ..online.experiments import ExperimentSpec, Mode, ab_arm, team_draft
from ..online.exposures import Arm, new_recommendation_id
from ..serving.model import Answer, RecommenderModel, ScoredItem
from ..store import SnapshotStore, open_store
from .state import EXPERIMENTS, HEALTH, HOLDER, ModelHolder, ServerConfig
from .validation import json_error, json_response

__all__ = ["ExperimentAnswer", "Experiments", "routes"]

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


class ExperimentAnswer:
    """An answer made in an experiment: the items, and who contributed what."""

    def __init__(
        self,
        answer: Answer,
        *,
        spec: ExperimentSpec,
        recommendation_id: str,
        arm: Arm | None = None,
        credit: list[Arm] | None = None,
        challenger_version: int,
    ) -> None:
        self.answer = answer
        self.spec = spec
        self.recommendation_id = recommendation_id
        self.arm = arm
        self.credit = credit
        self.challenger_version = challenger_version


class Experiments:
    """The challenger and the running experiment of one server process."""

    def __init__(self, config: ServerConfig, kafka: KafkaSettings | None) -> None:
        self.store: SnapshotStore | None = None
        self.challenger = ModelHolder()
        if config.challenger_model_dir:
            self.store = open_store(config.challenger_model_dir, cache_dir=config.cache_dir)
        self.spec: ExperimentSpec | None = None
        if config.experiment != "off":
            # Every replica started with the same flags runs the same experiment (same id).
            key = "\x00".join(
                (str(config.challenger_model_dir), config.experiment, str(config.experiment_share))
            )
            digest = hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
            self.spec = ExperimentSpec(
                f"flag-{digest}", cast(Mode, config.experiment), config.experiment_share, 0.0
            )
        self.topic = config.experiments_topic if kafka is not None else None
        self._kafka = kafka
        self._producer: Any = None
        self._lock = threading.Lock()

    def current(self) -> ExperimentSpec | None:
        """The running experiment, when it runs (mode not off)."""
        spec = self.spec
        return spec if spec is not None and spec.mode != "off" else None

    def apply(self, values: Sequence[bytes | None]) -> None:
        """Control records read from the experiments topic: the newest valid one wins."""
        for raw in values:
            try:
                spec = ExperimentSpec.from_dict(json.loads(raw or b"null"))
            except (ValueError, UnicodeDecodeError, RecursionError):
                spec = None
            if spec is None:
                log.warning("skipped a malformed experiments record")
                continue
            if spec != self.spec:
                log.info("experiment %s: %s (share %.2f)", spec.id, spec.mode, spec.share)
            self.spec = spec

    def publish(self, spec: ExperimentSpec, health: BrokerHealth) -> bool:
        """Send a start or stop to every replica (True), or apply it here only (False)."""
        if self.topic is None or self._kafka is None:
            self.spec = spec
            return False
        with self._lock:
            if self._producer is None:
                self._producer = self._kafka.producer(
                    **{"acks": "all"}, **health.client_config("server experiments")
                )
        self._producer.produce(self.topic, value=json.dumps(spec.to_dict()).encode(), key=b"x")
        left = self._producer.flush(10)
        if left:
            raise RuntimeError("Kafka did not take the experiment record within 10 s")
        return True

    def answer(
        self,
        champion: RecommenderModel,
        user: str,
        answers: dict[str, Answer],
        n: int,
    ) -> ExperimentAnswer | None:
        """Combine per-arm answers (``answers``: by arm) as the running experiment says."""
        spec = self.current()
        challenger = self.challenger.model
        if spec is None or challenger is None:
            return None
        rec_id = new_recommendation_id()
        if spec.mode == "ab":
            arm = ab_arm(spec, user)
            return ExperimentAnswer(
                answers[arm],
                spec=spec,
                recommendation_id=rec_id,
                arm=arm,
                challenger_version=challenger.version,
            )
        first, second = answers["champion"], answers["challenger"]
        scores: dict[tuple[Arm, str], float] = {
            **{("champion", s.item): s.score for s in first.items},
            **{("challenger", s.item): s.score for s in second.items},
        }
        items, credit = team_draft(
            [s.item for s in first.items], [s.item for s in second.items], n, seed=rec_id
        )
        merged = [ScoredItem(i, scores[(a, i)]) for i, a in zip(items, credit, strict=True)]
        return ExperimentAnswer(
            Answer(merged, first.source),
            spec=spec,
            recommendation_id=rec_id,
            credit=credit,
            challenger_version=challenger.version,
        )

    def status(self, online: dict[str, Any] | None) -> dict[str, Any]:
        spec = self.current()
        challenger = self.challenger.model
        results = ((online or {}).get("experiments") or {}).get(spec.id) if spec else None
        return {
            "mode": spec.mode if spec else "off",
            "experiment": spec.to_dict() if spec else None,
            "challenger": None
            if challenger is None
            else {"version": challenger.version, "family": challenger.family},
            "challenger_store": None if self.store is None else self.store.location,
            "results": results,
            "verdict": (results or {}).get("verdict", "undecided"),
            "sample": (results or {}).get("sample"),
        }


def experiments_of(app: web.Application) -> Experiments:
    return cast(Experiments, app[EXPERIMENTS])


@routes.get("/experiments")
async def get_experiments(request: web.Request) -> web.Response:
    experiments = experiments_of(request.app)
    champion = request.app[HOLDER].model
    body = experiments.status(request.app[HOLDER].online_status)
    body["champion"] = (
        None if champion is None else {"version": champion.version, "family": champion.family}
    )
    return json_response(body)


@routes.post("/experiments")
async def post_experiments(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return json_error(400, "bad_body", "the body must be JSON", parameter="body")
    if not isinstance(body, dict):
        return json_error(400, "bad_body", "the body must be a JSON object", parameter="body")
    mode, share = body.get("mode"), body.get("share", 0.5)
    if mode not in ("off", "interleave", "ab"):
        return json_error(
            400, "bad_parameter", "mode must be off, interleave or ab", parameter="mode"
        )
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1:
        return json_error(
            400, "bad_parameter", "share must be above 0 and below 1", parameter="share"
        )
    experiments = experiments_of(request.app)
    if mode != "off" and experiments.store is None:
        return json_error(
            409,
            "no_challenger",
            "start the server with --challenger-model-dir to run an experiment",
        )
    spec = ExperimentSpec.start(mode, float(share))
    everywhere = await asyncio.to_thread(experiments.publish, spec, request.app[HEALTH])
    return json_response(
        {"experiment": spec.to_dict(), "replicas": "all" if everywhere else "this process"},
        status=202 if everywhere else 200,
    )
