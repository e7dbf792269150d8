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

from ..items import Catalog
from ..kafka import BrokerHealth, KafkaSettings
from ..online.experiments import ExperimentSpec, Mode
from ..store import SnapshotStore, open_store
from .state import EXPERIMENTS, HEALTH, HOLDER, ModelHolder, ServerConfig
from .validation import json_error, json_response

__all__ = ["ExperimentNotSent", "Experiments", "routes"]

#: Seconds a start or stop may take to reach Kafka before the request is answered 503.
PUBLISH_SECONDS = 5.0


class ExperimentNotSent(Exception):
    """Kafka did not take an experiment record (it was withdrawn)."""


log = logging.getLogger(__name__)

routes = web.RouteTableDef()


class Experiments:
    """The challenger and the running experiment of one server process."""

    def __init__(self, config: ServerConfig, kafka: KafkaSettings | None, catalog: Catalog) -> None:
        self.store: SnapshotStore | None = None
        self.challenger = ModelHolder(catalog, config)
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
        """Send a start or stop to every replica (True), or apply it here only (False).
        Raises :class:`ExperimentNotSent` when Kafka does not take it within
        ``PUBLISH_SECONDS`` (then it is withdrawn: it never starts later by surprise)."""
        if self.topic is None or self._kafka is None:
            self.spec = spec
            return False
        if health.down_since is not None:
            raise ExperimentNotSent("Kafka is unreachable")
        with self._lock:
            if self._producer is None:
                self._producer = self._kafka.producer(
                    **{"acks": "all", "message.timeout.ms": int(PUBLISH_SECONDS * 1000)},
                    **health.client_config("server experiments"),
                )
            producer = self._producer
            failures: list[str] = []
            producer.produce(
                self.topic,
                value=json.dumps(spec.to_dict()).encode(),
                key=b"x",
                on_delivery=lambda err, _msg: failures.append(str(err)) if err else None,
            )
            if producer.flush(PUBLISH_SECONDS) or failures:
                producer.purge()
                producer.flush(0)
                raise ExperimentNotSent(
                    failures[0] if failures else f"not delivered within {PUBLISH_SECONDS:g} s"
                )
        return True

    def problem(self) -> str | None:
        """Why the challenger does not answer, in a sentence, or None when it does."""
        if self.store is None:
            return None
        refused = self.challenger.refused
        if self.challenger.model is None:
            if refused:
                return (
                    f"no challenger snapshot could be loaded from {self.store.location}: {refused}"
                )
            return f"no challenger snapshot loaded yet from {self.store.location}"
        if refused:
            return f"the challenger's newest snapshot was refused (an older one answers): {refused}"
        return None

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
            # Why no challenger answers (none loaded, or its newest snapshot refused), or None.
            "challenger_problem": self.problem(),
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
    except (ValueError, UnicodeDecodeError, RecursionError):  # a 100,000-deep nesting too
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
    try:
        everywhere = await asyncio.to_thread(experiments.publish, spec, request.app[HEALTH])
    except ExperimentNotSent as exc:
        return json_error(
            503,
            "kafka_unavailable",
            f"the experiment was not started or stopped: {exc}; nothing changed, try again "
            "once Kafka is back",
        )
    return json_response(
        {"experiment": spec.to_dict(), "replicas": "all" if everywhere else "this process"},
        status=202 if everywhere else 200,
    )
