"""A stateful property test of the whole serving path: the real aiohttp application, in process,
driven through random sequences of what production throws at it, checked after every step.

Hypothesis runs a :class:`ServingMachine`: a server (its settings drawn: ``explore``,
``catalog_only``, a small or a large bound on new items) with a champion and a challenger store
(``--challenger-model-dir``), to which it publishes snapshots of every model family, with
different item vocabularies and colliding version numbers (both stores at v3); experiments
started and stopped (interleave, A/B, off; by ``POST /experiments`` and by control records);
item records (hidden, shown again, expired, not yet available, deleted, new items with
categories only or with events only); fresh events and dislikes of known and new users; and
queries on every answering route (``/recommend?user=``, ``/recommend?items=``, ``/similar``,
``/popular``, the seed's ``/?userId=``), alone or several at once, with random filters, ``n``,
``offset``, ``exclude`` and ``filter_seen``. The machine keeps its own account of the catalogue
and of what each snapshot knows, and proves, for every answer, that

- no route ever answers 5xx, and a 4xx only for invalid input (``/similar`` of an item no model
  knows); no handler raises; the challenger never fails to answer its arm;
- no hidden, expired, deleted or not-yet-available item is ever answered (nor, with
  ``catalog_only``, an item without a record);
- ``category=`` and ``exclude_category=`` are respected, and so are ``exclude=``, a session's
  own items, an item's own ``/similar``, seen items with ``filter_seen``, and dislikes;
- ``n`` items come back whenever clearly enough eligible items exist (counted conservatively);
- an experiment answers exactly when it should; each item of an interleaved or A/B answer comes
  from its own arm's model (its vocabulary, or that model's new items) and carries the score that
  arm's pipeline gives it alone;
- every answer's ``recommendation_id`` is unique across the run and logged exactly once, with
  the items shown, the route, the versions and the arms.

Small (tens of users and items; ALS fitted on one thread) so it runs with the unit tests.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from recommender.events import format_event
from recommender.features import ITEM_FEATURES, USER_FEATURES, FeatureSchema, ItemInformation
from recommender.items import ItemFilter
from recommender.models.als_training import AlsParams, train_als
from recommender.online.experiments import ExperimentSpec, ab_arm
from recommender.online.exposures import new_recommendation_id
from recommender.ranker import LearnedRanker
from recommender.ranker.candidates import MATCH_FEATURE, MATCH_LABELS
from recommender.ranker.window_fit import SOURCE, window_features
from recommender.server import ServerConfig, create_app
from recommender.server.exposures import ExposureLog
from recommender.server.state import BATCHER, EXPERIMENTS, FEED, FRESH, HOLDER, SERVING
from recommender.serving.query import Ask
from recommender.snapshot import feature_arrays, publish_snapshot, snapshot_arrays
from recommender.window import InteractionWindow

from .helpers import append_events, publish_family

# -- the world ----------------------------------------------------------------------------------

#: Items snapshots are built from (each snapshot knows a subset: the two arms differ).
UNIVERSE = tuple(f"i{k:02d}" for k in range(14))
#: Items no snapshot ever knows: they arrive by item records or fresh events only.
NEW_ITEMS = ("n0", "n1", "n2")
ALL_ITEMS = UNIVERSE + NEW_ITEMS
#: Users snapshots are built from, and users no snapshot knows.
USERS = tuple(f"u{k:02d}" for k in range(10))
NEW_USERS = ("x0", "x1")
ALL_USERS = USERS + NEW_USERS
#: Categories items are given; filters also ask for one no item has.
CATEGORIES = ("red", "green", "blue")
FILTER_CATEGORIES = (*CATEGORIES, "none")
FAMILIES = ("als", "ease", "knn", "rp3beta", "sequence")
ITEM_ITEM_PARAMS: dict[str, dict[str, Any]] = {
    "ease": {"ease_lambda": 5.0},
    "knn": {"knn_neighbours": 8},
    "rp3beta": {"rp3beta_neighbours": 8},
    "sequence": {"sequence_similar": 8},
}
MAX_N = 20
#: Epoch seconds: long past (an expired item) and far ahead (an item not yet available).
PAST, FUTURE = 1_000_000, 4_000_000_000
#: Offsets of fed events: above every snapshot's next offset, so they are all fresh.
FIRST_FRESH_OFFSET = 10_000
#: How long a published snapshot may take to be served (polled every 5 ms; generous for CI).
SERVED_WITHIN_S = 60.0


# -- what the machine knows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """A snapshot to publish: its family, what it is trained on (users touch a few items each;
    every item of ``items`` at least once), in a seeded order."""

    family: str
    factors: int
    items: frozenset[str]
    users: frozenset[str]
    seed: int
    #: ALS only: with a learned ranking stage.
    ranked: bool = False

    def events(self) -> list[tuple[str, str]]:
        rng = random.Random(self.seed)
        vocabulary, people = sorted(self.items), sorted(self.users)
        pairs = {
            (user, item)
            for user in people
            for item in rng.sample(vocabulary, rng.randint(1, min(5, len(vocabulary))))
        }
        touched = {item for _, item in pairs}
        pairs |= {(rng.choice(people), item) for item in vocabulary if item not in touched}
        events = sorted(pairs)
        rng.shuffle(events)
        return events


@dataclass(frozen=True)
class Published:
    """A snapshot as the machine published it."""

    version: int
    family: str
    items: frozenset[str]
    seen: dict[str, frozenset[str]]  # each user's window items


@dataclass(frozen=True)
class Listing:
    """An item's newest record."""

    categories: frozenset[str] = frozenset()
    hidden: bool = False
    expired: bool = False
    early: bool = False


@dataclass
class CatalogModel:
    """The catalogue as the records applied so far describe it."""

    catalog_only: bool = False
    listings: dict[str, Listing] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)

    def shown(self, item: str) -> bool:
        """Whether ``item`` may be answered at all."""
        if item in self.deleted:
            return False
        listing = self.listings.get(item)
        if listing is None:
            return not self.catalog_only
        return not (listing.hidden or listing.expired or listing.early)

    def why_not(self, item: str) -> str:
        if item in self.deleted:
            return "deleted"
        listing = self.listings.get(item)
        if listing is None:
            return "not in the catalogue (catalog_only)"
        flags = {"hidden": listing.hidden, "expired": listing.expired, "early": listing.early}
        return ", ".join(name for name, flag in flags.items() if flag)

    def categories(self, item: str) -> frozenset[str]:
        listing = self.listings.get(item)
        return frozenset() if listing is None else listing.categories

    def passes(self, item: str, wanted: frozenset[str], unwanted: frozenset[str]) -> bool:
        categories = self.categories(item)
        return (not wanted or bool(categories & wanted)) and not categories & unwanted


@dataclass(frozen=True)
class Query:
    """One request and what the checks need of it."""

    route: str
    params: list[tuple[str, str]]
    n: int
    offset: int = 0
    user: str | None = None
    session: tuple[str, ...] = ()
    item: str | None = None
    exclude: tuple[str, ...] = ()
    filter_seen: bool = True
    wanted: frozenset[str] = frozenset()
    unwanted: frozenset[str] = frozenset()

    @property
    def item_filter(self) -> ItemFilter | None:
        if not (self.wanted or self.unwanted):
            return None
        return ItemFilter(self.wanted, self.unwanted, ())

    def __str__(self) -> str:
        return f"GET {self.route}?" + "&".join(f"{k}={v}" for k, v in self.params)


class RecordingExposures:
    """Stands in for :class:`~recommender.server.exposures.ExposureLog`: keeps every record."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def record(
        self,
        *,
        route: str,
        items: Sequence[str],
        model_version: int,
        family: str,
        user: str | None = None,
        session: Sequence[str] = (),
        arm: Any = None,
        credit: Sequence[Any] | None = None,
        experiment: str | None = None,
        challenger_version: int | None = None,
        recommendation_id: str | None = None,
    ) -> str:
        rec_id = recommendation_id or new_recommendation_id()
        self.records.append(
            {
                "id": rec_id,
                "route": route,
                "items": list(items),
                "model_version": model_version,
                "family": family,
                "user": user,
                "session": list(session),
                "arm": arm,
                "credit": None if credit is None else list(credit),
                "experiment": experiment,
                "challenger_version": challenger_version,
            }
        )
        return rec_id


class LogTail(logging.Handler):
    """The server's warnings and errors, to quote when a check fails."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def tail(self, count: int = 15) -> str:
        return "\n".join(self.lines[-count:]) or "(nothing logged)"


_RANKER: list[LearnedRanker] = []


def learned_ranker() -> LearnedRanker:
    """A small LightGBM ranker over the serving features (made once): the machine's windows are
    too small to learn one, and what is checked is that a ranking stage composes with the rest
    (rules, experiments, new items, paging), not its quality."""
    if not _RANKER:
        import lightgbm

        names = (
            f"{SOURCE}.score", f"{SOURCE}.rank", *ITEM_FEATURES, *USER_FEATURES,
            MATCH_FEATURE, MATCH_LABELS, "attr.price",
        )  # fmt: skip
        rng = np.random.default_rng(0)
        rows = rng.normal(size=(400, len(names)))
        labels = (rows[:, 2] + rows[:, -1] + rng.normal(size=400) > 0).astype(float)
        booster = lightgbm.train(
            {"objective": "binary", "num_leaves": 4, "verbose": -1, "num_threads": 1},
            lightgbm.Dataset(rows, labels),
            num_boost_round=8,
        )
        schema = FeatureSchema(names, tuple(0.0 for _ in names))
        _RANKER.append(LearnedRanker(booster.model_to_string(), schema, "binary"))
    return _RANKER[0]


def publish_als(
    model_dir: Path, version: int, events: list[tuple[str, str]], factors: int, *, ranked: bool
) -> None:
    """As ``helpers.publish_window``, fitted on one thread (OpenMP's start costs more than this
    fit of a few dozen users); ``ranked``: with a learned ranker that serves."""
    window = InteractionWindow(1_000_000)
    append_events(window, events)
    matrix = window.matrix()
    params = AlsParams(factors=factors, iterations=8, regularization=0.05, alpha=1.0)
    trained = train_als(matrix.user_items, params, num_threads=1)
    manifest: dict[str, Any] = {
        "topic": "t",
        "partitions": {"0": {"window_start": 0, "next_offset": len(events)}},
        "params": params.to_dict(),
    }
    extra: dict[str, np.ndarray] = {}
    if ranked:
        ranker = learned_ranker()
        events = window.events()
        # the catalogue as the builder saw it: a category and a price for most items
        cols = [k for k, item in enumerate(events.item_ids) if zlib.crc32(item.encode()) % 5]
        categories = sp.csr_matrix(
            (np.ones(len(cols), np.float32),
             (cols, [zlib.crc32(events.item_ids[k].encode()) % 3 for k in cols])),
            shape=(len(events.item_ids), 3),
        )  # fmt: skip
        prices = np.full((len(events.item_ids), 1), np.nan, np.float32)
        prices[cols, 0] = [zlib.crc32(events.item_ids[k].encode()) % 97 for k in cols]
        labels = sp.csr_matrix(categories[:, :2])  # fewer items with a label than a category
        information = ItemInformation(categories, prices, ("price",), labels)
        features = window_features(events, information)
        extra = {**ranker.arrays(), **feature_arrays(features)}
        manifest["ranker"] = {
            "serves": True,
            "reason": "the stateful test's",
            "candidates": 20,
            "newest_ms": features.newest_ms,
            **ranker.describe(),
        }
    publish_snapshot(model_dir, version, snapshot_arrays(matrix, trained, extra=extra), manifest)


# -- strategies ---------------------------------------------------------------------------------

plans = st.builds(
    Plan,
    family=st.sampled_from((*FAMILIES, "als")),  # ALS twice: ranked or not
    factors=st.integers(2, 8),
    items=st.frozensets(st.sampled_from(UNIVERSE), min_size=4),
    users=st.frozensets(st.sampled_from(USERS), min_size=3),
    seed=st.integers(0, 2**16),
    ranked=st.booleans(),
)
category_sets = st.frozensets(st.sampled_from(CATEGORIES), max_size=2)
sizes = st.integers(1, 12)
offsets = st.sampled_from((0, 0, 1, 3))  # mostly a first page (where experiments answer)
excludes = st.lists(st.sampled_from(ALL_ITEMS), max_size=3, unique=True)
#: Filters: none half the time (an empty set leaves the parameter out).
wanted_categories = st.one_of(
    st.just(frozenset()), st.frozensets(st.sampled_from(FILTER_CATEGORIES), min_size=1, max_size=2)
)
unwanted_categories = st.one_of(
    st.just(frozenset()), st.builds(lambda c: frozenset([c]), st.sampled_from(FILTER_CATEGORIES))
)
seen_flags = st.sampled_from([None, True, False])  # None: the parameter left out


def filter_params(wanted: frozenset[str], unwanted: frozenset[str]) -> list[tuple[str, str]]:
    return [("category", c) for c in sorted(wanted)] + [
        ("exclude_category", c) for c in sorted(unwanted)
    ]


def user_query(
    user: str,
    n: int,
    offset: int = 0,
    exclude: Sequence[str] = (),
    filter_seen: bool | None = None,
    wanted: frozenset[str] = frozenset(),
    unwanted: frozenset[str] = frozenset(),
) -> Query:
    params = [("user", user), ("n", str(n)), ("offset", str(offset))]
    if exclude:
        params.append(("exclude", ",".join(exclude)))
    if filter_seen is not None:
        params.append(("filter_seen", str(filter_seen).lower()))
    return Query(
        "/recommend",
        params + filter_params(wanted, unwanted),
        n,
        offset,
        user=user,
        exclude=tuple(exclude),
        filter_seen=filter_seen is not False,
        wanted=wanted,
        unwanted=unwanted,
    )


# -- the machine --------------------------------------------------------------------------------


class ServingMachine(RuleBasedStateMachine):
    """One server (champion and challenger stores, no Kafka) per example; see the module
    docstring for the steps and the invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="serving-stateful-"))
        self.champion_dir, self.challenger_dir = self.root / "champion", self.root / "challenger"
        self.loop = asyncio.new_event_loop()
        self.logs = LogTail()
        logging.getLogger("recommender").addHandler(self.logs)
        self.app: web.Application | None = None
        self.client: TestClient | None = None
        self.exposures = RecordingExposures()
        self.failures: list[str] = []  # tracebacks of handlers and of the challenger's arm
        # The machine's account of the world.
        self.catalog = CatalogModel()
        self.described: set[str] = set()  # items that ever had a record with categories
        self.evented: set[str] = set()  # items that ever had fresh events
        self.fresh: dict[str, list[tuple[str, float]]] = {}
        self.offset = FIRST_FRESH_OFFSET
        self.arms: dict[str, Published | None] = {"champion": None, "challenger": None}
        self.mode = "off"
        self.ids: set[str] = set()

    @initialize(
        explore=st.sampled_from([0.0, 0.25]),
        catalog_only=st.booleans(),
        max_fresh_items=st.sampled_from([10_000, 2]),
        listings=st.dictionaries(
            st.sampled_from(UNIVERSE), st.frozensets(st.sampled_from(CATEGORIES), min_size=1)
        ),
        champion=plans,
        challenger=st.none() | plans,
        mode=st.sampled_from(["interleave", "ab"]),
    )
    def start(self, explore, catalog_only, max_fresh_items, listings, champion, challenger, mode):
        """The server, a catalogue, a champion, maybe a challenger (at v1 too: the versions
        collide) and an experiment (rules publish more, start and stop experiments)."""
        self.app = create_app(
            ServerConfig(
                model_dir=str(self.champion_dir),
                challenger_model_dir=str(self.challenger_dir),
                poll_interval=0.005,
                max_n=MAX_N,
                explore=explore,
                catalog_only=catalog_only,
                max_fresh_items=max_fresh_items,
            )
        )
        self.catalog.catalog_only = catalog_only
        # Instruments, set before the app starts: every exposure kept, every failure's traceback.
        serving = self.app[SERVING]
        serving.exposures = self.exposures
        counted = serving.on_arm_failure

        def on_arm_failure() -> None:  # called in the challenger's except block
            self.failures.append("the challenger failed:\n" + traceback.format_exc())
            counted()

        serving.on_arm_failure = on_arm_failure
        self.app.middlewares.append(self._keep_tracebacks)
        self.client = self.run(self._start_client(self.app))
        for item, categories in sorted(listings.items()):
            self._record(item, Listing(categories))
        self.publish("champion", champion, collide=False)
        if challenger is not None:
            self.publish("challenger", challenger, collide=True)
        self.experiment(mode, 0.5, by_record=False)

    @staticmethod
    async def _start_client(app: web.Application) -> TestClient:
        client = TestClient(TestServer(app))
        await client.start_server()
        return client

    @web.middleware
    async def _keep_tracebacks(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception:
            self.failures.append(f"{request.method} {request.path_qs}:\n{traceback.format_exc()}")
            raise

    def teardown(self) -> None:
        try:
            if self.client is not None:
                self.run(self.client.close())
            self.run(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            logging.getLogger("recommender").removeHandler(self.logs)
            shutil.rmtree(self.root, ignore_errors=True)

    def run(self, awaitable: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(awaitable)

    @property
    def http(self) -> TestClient:
        assert self.client is not None
        return self.client

    @property
    def server(self) -> web.Application:
        assert self.app is not None
        return self.app

    def context(self) -> str:
        return f"\n-- server log --\n{self.logs.tail()}"

    # -- snapshots ------------------------------------------------------------------------------

    @rule(arm=st.sampled_from(["champion", "challenger"]), plan=plans, collide=st.booleans())
    def publish(self, arm, plan, collide):
        """A new snapshot in ``arm``'s store; ``collide``: at the other store's version when
        that is ahead (the two stores number their snapshots independently)."""
        mine = self.arms[arm]
        other = self.arms["challenger" if arm == "champion" else "champion"]
        version = (mine.version if mine else 0) + 1
        if collide and other is not None and other.version > version:
            version = other.version
        events = plan.events()
        directory = self.champion_dir if arm == "champion" else self.challenger_dir
        if plan.family == "als":
            publish_als(directory, version, events, plan.factors, ranked=plan.ranked)
        else:
            publish_family(directory, version, events, plan.family, ITEM_ITEM_PARAMS[plan.family])
        seen: dict[str, set[str]] = {}
        for user, item in events:
            seen.setdefault(user, set()).add(item)
        windows = {user: frozenset(items) for user, items in seen.items()}
        self.arms[arm] = Published(version, plan.family, plan.items, windows)
        self.run(self._until_served(arm, version))

    async def _until_served(self, arm: str, version: int) -> None:
        """Until /ready (the champion) or /experiments (the challenger) names ``version``."""
        holder = self.server[HOLDER] if arm == "champion" else self._experiments.challenger
        deadline = time.monotonic() + SERVED_WITHIN_S
        while True:
            if arm == "champion":
                response = await self.http.get("/ready")
                body = await response.json()
                served = body.get("model_version") if response.status == 200 else None
            else:
                response = await self.http.get("/experiments")
                assert response.status == 200, await response.text()
                served = ((await response.json())["challenger"] or {}).get("version")
            if served == version:
                return
            assert time.monotonic() < deadline, (
                f"the {arm}'s v{version} was not served within {SERVED_WITHIN_S} s "
                f"(serving {served}; refused: {holder.refused}){self.context()}"
            )
            await asyncio.sleep(0.005)

    @property
    def _experiments(self) -> Any:
        return self.server[EXPERIMENTS]

    # -- experiments ----------------------------------------------------------------------------

    @rule(
        mode=st.sampled_from(["interleave", "ab", "off"]),
        share=st.sampled_from([0.1, 0.5, 0.9]),
        by_record=st.booleans(),
    )
    def experiment(self, mode, share, by_record):
        """Start or stop one: by POST /experiments, or by a record of the experiments topic."""
        if by_record:
            spec = ExperimentSpec.start(mode, share)
            self.server[FEED].controls([json.dumps(spec.to_dict()).encode()])
        else:
            body = {"mode": mode, "share": share}
            response = self.run(self.http.post("/experiments", json=body))
            text = self.run(response.text())
            assert response.status == 200, f"POST /experiments {body}: {text}{self.context()}"
        self.mode = mode

    # -- item records ---------------------------------------------------------------------------

    def _record(self, item: str, listing: Listing) -> None:
        record: dict[str, Any] = {
            "id": item,
            "title": f"Item {item}",
            "categories": sorted(listing.categories),
        }
        if listing.hidden:
            record["hidden"] = True
        if listing.expired:
            record["expires_at"] = PAST
        if listing.early:
            record["available_from"] = FUTURE
        applied = self.server[FEED].items([json.dumps(record).encode()], [item.encode()])
        assert applied == 1, record
        self.catalog.listings[item] = listing
        self.catalog.deleted.discard(item)
        if listing.categories:
            self.described.add(item)

    @rule(item=st.sampled_from(ALL_ITEMS), categories=category_sets)
    def describe(self, item, categories):
        """A record with categories only (for a new item: content cold start)."""
        self._record(item, Listing(categories))

    @rule(item=st.sampled_from(ALL_ITEMS))
    def hide(self, item):
        self._record(item, Listing(self.catalog.categories(item), hidden=True))

    @rule(item=st.sampled_from(ALL_ITEMS))
    def show_again(self, item):
        self._record(item, Listing(self.catalog.categories(item)))

    @rule(item=st.sampled_from(ALL_ITEMS))
    def expire(self, item):
        self._record(item, Listing(self.catalog.categories(item), expired=True))

    @rule(item=st.sampled_from(ALL_ITEMS))
    def not_yet_available(self, item):
        self._record(item, Listing(self.catalog.categories(item), early=True))

    @rule(item=st.sampled_from(ALL_ITEMS), tombstone=st.booleans())
    def delete(self, item, tombstone):
        """A tombstone (no value, keyed by the id), or a record saying ``deleted``."""
        value = None if tombstone else json.dumps({"id": item, "deleted": True}).encode()
        assert self.server[FEED].items([value], [item.encode()]) == 1
        self.catalog.listings.pop(item, None)
        self.catalog.deleted.add(item)

    # -- fresh events ---------------------------------------------------------------------------

    def _events(self, events: list[tuple[str, str, float | None]]) -> None:
        values = [format_event(user, item, weight) for user, item, weight in events]
        n = len(values)
        fresh = self.server[FEED].events(
            values,
            np.zeros(n, np.int64),
            np.arange(self.offset, self.offset + n, dtype=np.int64),
        )
        assert fresh == n, "events above every snapshot's next offset are all fresh"
        self.offset += n
        for user, item, weight in events:
            self.fresh.setdefault(user, []).append((item, 1.0 if weight is None else weight))
            self.evented.add(item)

    @rule(
        user=st.sampled_from(ALL_USERS),
        items=st.lists(st.sampled_from(ALL_ITEMS), min_size=1, max_size=4),
        weight=st.sampled_from([None, 1.0, 3.0]),
    )
    def interact(self, user, items, weight):
        self._events([(user, item, weight) for item in items])

    @rule(user=st.sampled_from(ALL_USERS), item=st.sampled_from(ALL_ITEMS))
    def dislike(self, user, item):
        self._events([(user, item, -1.0)])

    @rule(item=st.sampled_from(NEW_ITEMS), users=st.lists(st.sampled_from(USERS), min_size=1))
    def new_item_with_events(self, item, users):
        """Events of an item no snapshot knows (item fold-in)."""
        self._events([(user, item, None) for user in users])

    # -- queries --------------------------------------------------------------------------------

    @rule(
        user=st.sampled_from(ALL_USERS),
        n=sizes,
        offset=offsets,
        exclude=excludes,
        filter_seen=seen_flags,
        wanted=wanted_categories,
        unwanted=unwanted_categories,
    )
    def recommend_for_user(self, user, n, offset, exclude, filter_seen, wanted, unwanted):
        self._ask(user_query(user, n, offset, exclude, filter_seen, wanted, unwanted))

    @rule(users=st.lists(st.sampled_from(ALL_USERS), min_size=2, max_size=5), n=sizes)
    def burst(self, users, n):
        """Several users at once: their scoring is batched (both arms' models in one batch)."""
        self._ask(*(user_query(user, n) for user in users))

    @rule(
        session=st.lists(st.sampled_from(ALL_ITEMS), min_size=1, max_size=4),
        n=sizes,
        offset=offsets,
        exclude=excludes,
        wanted=wanted_categories,
        unwanted=unwanted_categories,
    )
    def recommend_for_session(self, session, n, offset, exclude, wanted, unwanted):
        params = [("items", ",".join(session)), ("n", str(n)), ("offset", str(offset))]
        if exclude:
            params.append(("exclude", ",".join(exclude)))
        query = Query(
            "/recommend",
            params + filter_params(wanted, unwanted),
            n,
            offset,
            session=tuple(session),
            exclude=tuple(exclude),
            wanted=wanted,
            unwanted=unwanted,
        )
        self._ask(query)

    @rule(
        item=st.sampled_from(ALL_ITEMS),
        n=sizes,
        wanted=wanted_categories,
        unwanted=unwanted_categories,
    )
    def similar(self, item, n, wanted, unwanted):
        params = [("item", item), ("n", str(n)), *filter_params(wanted, unwanted)]
        self._ask(Query("/similar", params, n, item=item, wanted=wanted, unwanted=unwanted))

    @rule(
        n=sizes,
        offset=offsets,
        recent=st.booleans(),
        wanted=wanted_categories,
        unwanted=unwanted_categories,
    )
    def popular(self, n, offset, recent, wanted, unwanted):
        params = [("n", str(n)), ("offset", str(offset)), ("recent", str(recent).lower())]
        params += filter_params(wanted, unwanted)
        self._ask(Query("/popular", params, n, offset, wanted=wanted, unwanted=unwanted))

    @rule(user=st.sampled_from(ALL_USERS), n=sizes)
    def seed_route(self, user, n):
        params = [("userId", user), ("recommendationsNumber", str(n))]
        self._ask(Query("/", params, n, user=user))

    # -- the checks -----------------------------------------------------------------------------

    @invariant()
    def nothing_failed(self):
        assert not self.failures, "\n\n".join(self.failures) + self.context()

    @invariant()
    def every_answer_logged_once(self):
        logged = Counter(record["id"] for record in self.exposures.records)
        assert set(logged) == self.ids, f"logged without an answer: {set(logged) - self.ids}"
        assert all(count == 1 for count in logged.values()), f"logged twice: {logged}"

    def _ask(self, *queries: Query) -> None:
        """Send ``queries`` at once, then check every answer."""

        async def send(query: Query) -> tuple[int, str]:
            response = await self.http.get(query.route, params=query.params)
            return response.status, await response.text()

        async def send_all() -> list[tuple[int, str]]:
            return await asyncio.gather(*(send(query) for query in queries))

        answers = self.run(send_all())
        for query, (status, text) in zip(queries, answers, strict=True):
            try:
                assert status < 500, "a server error"
                if query.route == "/similar" and status == 404:
                    self._check_unknown(query)
                    continue
                assert status == 200, "valid parameters, yet not answered"
                self._check(query, json.loads(text))
            except AssertionError as exc:
                failed = "".join(f"\n{failure}" for failure in self.failures)
                raise AssertionError(
                    f"{query}\n-> {status} {text}\n{exc}{failed}{self.context()}"
                ) from None

    def _check_unknown(self, query: Query) -> None:
        """A 404 of /similar: the champion knows the item neither as its own nor as new."""
        champion = self.arms["champion"]
        assert champion is not None and query.item is not None
        assert query.item not in champion.items, "/similar of a known item: 404"
        assert query.item not in self._new_items_of("champion"), (
            "/similar of a new item the champion has a vector for: 404"
        )

    def _check(self, query: Query, body: dict[str, Any]) -> None:
        champion = self.arms["champion"]
        assert champion is not None
        if query.route == "/":
            ids = body["recommended_items"]
            entries = [{"item": i} for i in ids]
        else:
            entries = body["items"]
            ids = [e["item"] for e in entries]
        assert len(ids) == len(set(ids)), f"an item twice: {ids}"
        assert len(ids) <= query.n, f"more than n={query.n} items"

        # The rules: what may be shown, the filters, what this request leaves out.
        for item in ids:
            assert self.catalog.shown(item), f"{item} is {self.catalog.why_not(item)}"
            assert self.catalog.passes(item, query.wanted, query.unwanted), (
                f"{item} (categories {sorted(self.catalog.categories(item))}) breaks the filter "
                f"category={sorted(query.wanted)} exclude_category={sorted(query.unwanted)}"
            )
        left_out = set(query.exclude) | set(query.session) | {query.item}
        assert not left_out & set(ids), f"left-out items answered: {left_out & set(ids)}"
        if query.item is not None:
            assert query.item in champion.items or query.item in self._new_items_of("champion"), (
                f"/similar answered for {query.item}, which the champion does not know"
            )

        # Which model answered each item, and what the user must not be shown again.
        arm_of = self._arms_of(query, body, entries)
        for item, arm in zip(ids, arm_of, strict=True):
            model = self.arms[arm]
            assert model is not None
            assert item in model.items or item in self._new_items_of(arm), (
                f"{item} credited to the {arm} (v{model.version}, {model.family}), which knows "
                "it neither as its own nor as a new item"
            )
        if query.user is not None:
            self._check_user(query, ids, arm_of)
        self._check_filled(query, body, ids)

        # The answer's id: unique across the run, logged with what was shown.
        rec_id = body["recommendation_id"]
        assert rec_id not in self.ids, f"recommendation_id {rec_id} given twice"
        self.ids.add(rec_id)
        logged = [r for r in self.exposures.records if r["id"] == rec_id]
        assert len(logged) == 1, f"recommendation_id {rec_id} logged {len(logged)} times"
        record = logged[0]
        assert record["route"] == query.route and record["items"] == ids, record
        assert record["model_version"] == champion.version, record
        assert record["user"] == query.user, record
        if "arm" in body:
            challenger = self.arms["challenger"]
            assert challenger is not None
            assert record["challenger_version"] == challenger.version, record
            assert record["experiment"] == self._experiments.spec.id, record
            if body["arm"] == "interleaved":
                assert record["credit"] == arm_of and record["arm"] is None, record
            else:
                assert record["arm"] == body["arm"] and record["credit"] is None, record
        else:
            assert record["experiment"] is None and record["arm"] is None, record

    def _new_items_of(self, arm: str) -> set[str]:
        """Items the arm's model may answer as new ones: those it has a vector for now (its
        own view), among those that had categories or events (the machine's own account)."""
        holder = self.server[HOLDER] if arm == "champion" else self._experiments.challenger
        view = holder.new_items.view
        ids = set(view.ids) if view.for_model(holder.model) else set()
        return ids & (self.described | self.evented)

    def _arms_of(self, query: Query, body: dict[str, Any], entries: list[dict[str, Any]]):
        """Each item's arm; checks that an experiment answers exactly when it should, and that
        each arm's items carry the scores that arm gives them alone."""
        in_experiment = (
            query.route == "/recommend"
            and query.user is not None
            and query.offset == 0
            and self.mode != "off"
            and self.arms["challenger"] is not None
        )
        if not in_experiment:
            assert "arm" not in body, "an experiment's answer outside the experiment"
            assert all("arm" not in e for e in entries), "arms outside an experiment"
            return ["champion"] * len(entries)
        assert query.user is not None
        if self.mode == "interleave":
            assert body.get("arm") == "interleaved", "no interleaved answer in the experiment"
            assert all(e.get("arm") in ("champion", "challenger") for e in entries), entries
            arm_of = [e["arm"] for e in entries]
        else:
            expected = ab_arm(self._experiments.spec, query.user)
            assert body.get("arm") == expected, f"A/B: the user's arm is the {expected}"
            assert all("arm" not in e for e in entries), "arms on the items of an A/B answer"
            arm_of = [expected] * len(entries)
        # Each arm's own answer, deeper than n: near-ties at the n-th place may fall either way
        # when scored in another batch, and deeper answers only add lower-ranked items.
        alone = self.run(self._answers_alone(query, MAX_N))
        for entry, arm in zip(entries, arm_of, strict=True):
            own = alone[arm]
            assert entry["item"] in own, f"{entry['item']} is not in the {arm}'s own answer"
            assert math.isclose(entry["score"], own[entry["item"]], rel_tol=1e-4, abs_tol=1e-6), (
                f"{entry['item']} scores {entry['score']} but the {arm} alone gives it "
                f"{own[entry['item']]}"
            )
        if self.mode == "ab":
            expected_size = min(query.n, len(alone[expected]))
            assert len(entries) == expected_size, f"the {expected} alone has {expected_size} items"
        return arm_of

    async def _answers_alone(self, query: Query, n: int) -> dict[str, dict[str, float]]:
        """Each arm's own top ``n`` for ``query`` (its pipeline, outside the experiment)."""
        assert query.user is not None
        ask = Ask(
            kind="user",
            route="/recommend",
            n=n,
            user=query.user,
            exclude=query.exclude,
            filter_seen=query.filter_seen,
            item_filter=query.item_filter,
            fresh=tuple(self.server[FRESH].events(query.user)),
        )
        score = self.server[BATCHER].score
        pipelines = {
            "champion": self.server[HOLDER].pipeline,
            "challenger": self._experiments.challenger.pipeline,
        }
        answers = {}
        for arm, pipeline in pipelines.items():
            assert pipeline is not None
            answer = await pipeline.answer(ask, score)
            answers[arm] = {s.item: s.score for s in answer.items}
        return answers

    def _check_user(self, query: Query, ids: list[str], arm_of: list[str]) -> None:
        """Seen items (with ``filter_seen``) and dislikes are never answered to the user."""
        assert query.user is not None
        fresh = self.fresh.get(query.user, [])
        for item, arm in zip(ids, arm_of, strict=True):
            model = self.arms[arm]
            assert model is not None
            window = model.seen.get(query.user, frozenset())
            weights = [w for i, w in fresh if i == item]
            if query.filter_seen:
                assert item not in window, f"{item} is in the user's window ({arm})"
                assert not weights, f"{item} is among the user's fresh events"
            disliked = bool(weights) and max(weights) < 0 and item not in window
            assert not disliked, f"{item} was answered to {query.user}, who only disliked it"

    def _check_filled(self, query: Query, body: dict[str, Any], ids: list[str]) -> None:
        """``n`` items whenever an answering model holds at least ``n + offset`` eligible items
        besides everything this request leaves out (new items not counted)."""
        answering = body.get("arm")
        if answering == "interleaved":
            arms = ["champion", "challenger"]
        else:
            arms = [answering] if answering else ["champion"]
        if query.route == "/similar":
            champion = self.arms["champion"]
            if champion is None or champion.family != "als" or query.item not in champion.items:
                return  # an item-item family's neighbours may be fewer: no shared evidence
        most = 0
        for arm in arms:
            model = self.arms[arm]
            assert model is not None
            left_out = set(query.exclude) | set(query.session) | {query.item}
            if query.user is not None:
                left_out |= model.seen.get(query.user, frozenset())
                left_out |= {item for item, _ in self.fresh.get(query.user, [])}
            eligible = [
                item
                for item in model.items - left_out
                if self.catalog.shown(item)
                and self.catalog.passes(item, query.wanted, query.unwanted)
            ]
            most = max(most, len(eligible))
        if most >= query.n + query.offset:
            assert len(ids) == query.n, (
                f"{len(ids)} items for n={query.n}, offset={query.offset}, though the "
                f"{' and '.join(arms)} hold {most} eligible ones"
            )


ServingMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("SERVING_EXAMPLES", "25")),
    stateful_step_count=25,
    deadline=None,
    # No explain phase: on a failure it would replay hundreds of variations (minutes) to say
    # which lines ran; the minimal steps and the server's traceback say more.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
#: Passing takes seconds; on a failure, shrinking to the minimal steps can take minutes (every
#: step runs on a real server), more than the suite's default timeout.
TestServingMachine = pytest.mark.timeout(600)(ServingMachine.TestCase)


def test_the_recording_sink_takes_what_the_exposure_log_takes():
    """The stand-in is called as the real log is: same parameters, same defaults."""

    def shape(function):
        return [
            (p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()
        ]

    assert shape(RecordingExposures.record) == shape(ExposureLog.record)
