"""Hot swap: watch the snapshot store, load new snapshots off the event loop, swap them in.

Versions are the numbers snapshots are published under (a snapshot whose manifest carries another
number is refused, so a copied snapshot can never make the watcher reload in a loop). A snapshot
that fails to load is logged and counted once, then skipped until a newer one arrives.

The store's history can change underneath: emptied and written again from v1, restored from a
backup, a directory replaced. When the served version is gone and every published one is older,
or the newest snapshot names another store id, the watcher says so and follows the new history
(it serves the newest snapshot there, whatever its number). Within one history, a snapshot whose
writer's fencing token is below the served one's was published by a builder that had lost the
store's lock: refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from ..errors import SnapshotError
from ..logs import RateLimitedLog
from ..online import ONLINE_STATUS
from ..serving.index import AnnSettings
from ..serving.model import RecommenderModel
from ..snapshot import load_published, writer_of
from ..store import SnapshotStore
from .experiments import experiments_of
from .state import (
    CONFIG,
    COVERAGE,
    FRESH,
    HOLDER,
    METRICS,
    STORE,
    ModelHolder,
    ServerConfig,
)

__all__ = ["load_model", "snapshot_watcher"]

log = logging.getLogger(__name__)


#: A load that failed for a reason outside the snapshot (the interpreter, memory) is tried this
#: many times before the version is refused; a snapshot that fails its checks is refused at once.
LOAD_ATTEMPTS = 3


class _LoadFailed(SnapshotError):
    """Loading failed for a reason that may not recur: not (yet) the snapshot's fault."""


def load_model(store: SnapshotStore, version: int, config: ServerConfig) -> RecommenderModel:
    """Load, verify and index a snapshot (blocking: run it in a thread).

    Raises SnapshotError for anything that makes it unservable here, including a snapshot built
    from another topic than the one this server follows (its offsets would name other events).
    """
    ann = AnnSettings(threshold=config.ann_threshold, exact=config.exact, ef_search=config.ann_ef)
    try:
        model = RecommenderModel(load_published(store, version), ann=ann)
    except SnapshotError:
        raise
    except (SystemError, MemoryError) as exc:
        raise _LoadFailed(f"v{version}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # whatever a crafted snapshot provokes, it is one rejection
        raise SnapshotError(f"v{version}: {type(exc).__name__}: {exc}") from exc
    topic = model.manifest.get("topic")
    if config.kafka is not None and topic is not None and topic != config.topic:
        raise SnapshotError(
            f"v{version} was built from topic {topic!r} but this server follows "
            f"{config.topic!r}: its offsets name other events; point --topic or --model-dir at "
            "the matching pair"
        )
    return model


def _fenced(served: RecommenderModel | None, model: RecommenderModel) -> str | None:
    """Why ``model`` must not replace ``served`` (a deposed writer's snapshot), or None."""
    if served is None:
        return None
    (served_store, served_token), (store_id, token) = (
        writer_of(served.manifest),
        writer_of(model.manifest),
    )
    if store_id is not None and store_id == served_store and token < served_token:
        return (
            f"published by a builder that had lost the store's lock (fencing token {token}, "
            f"the serving v{served.version} has {served_token})"
        )
    return None


def _history_changed(current: int, versions: list[int]) -> bool:
    """The served version is gone and every published one is older: the store was emptied,
    restored or replaced."""
    return bool(versions) and current > versions[-1] and current not in versions


def _drop_covered(app: web.Application, model: RecommenderModel) -> int:
    """Forget the fresh events ``model`` covers (blocking: may ask Kafka after a log reset)."""
    return app[FRESH].drop_covered(app[COVERAGE].positions(model))


async def _poll_once(
    app: web.Application,
    failed: set[int],
    holder: ModelHolder | None = None,
    store: SnapshotStore | None = None,
    attempts: dict[int, int] | None = None,
) -> None:
    """Swap in the newest good snapshot of ``store`` into ``holder`` (the champion's by
    default; an experiment's challenger has its own, and no fresh events to drop)."""
    champion = holder is None
    attempts = {} if attempts is None else attempts  # version -> loads that failed by chance
    holder = holder or app[HOLDER]
    store = store or app[STORE]
    metrics = app[METRICS]
    served = holder.model
    current = served.version if served else 0
    versions = await asyncio.to_thread(store.versions)
    changed = served is not None and _history_changed(current, versions)
    if changed:
        log.warning(
            "the snapshot store's history changed (serving v%d, which is gone; newest there now "
            "v%d): it was emptied, restored or replaced; following it",
            current,
            versions[-1],
        )
        metrics.store_history_changes.inc()
        current = 0  # anything there now is newer than what we serve
        failed.clear()
    loop = asyncio.get_running_loop()
    # Newest first; an older good snapshot is worth loading only if it beats what is served.
    for version in reversed(versions):
        if version <= current:
            return
        if version in failed:
            continue
        started = time.perf_counter()
        try:
            model = await loop.run_in_executor(None, load_model, store, version, app[CONFIG])
            fenced = None if changed else _fenced(served, model)
            if fenced:
                raise SnapshotError(fenced)
        except SnapshotError as exc:
            if version not in await asyncio.to_thread(store.versions):
                log.debug("v%d was pruned while loading; looking again", version)
                continue  # not a bad snapshot: the builder removed it meanwhile
            tries = attempts.get(version, 0) + 1
            if isinstance(exc, _LoadFailed) and tries < LOAD_ATTEMPTS:
                attempts[version] = tries
                metrics.swap_failures.inc()
                log.warning("could not load v%d (try %d, again at the next poll): %s",
                            version, tries, exc)  # fmt: skip
                continue
            attempts.pop(version, None)
            failed.add(version)
            holder.refused = f"v{version}: {exc}"
            metrics.swap_failures.inc()
            log.error(
                "rejected snapshot v%d, still serving v%d: %s",
                version,
                served.version if served else 0,
                exc,
            )
            continue
        seconds = time.perf_counter() - started
        metrics.load_seconds.observe(seconds)
        metrics.swaps.inc()
        old = holder.swap(await asyncio.to_thread(holder.prepare, model))
        failed.difference_update([v for v in failed if v <= version])
        for older in [v for v in attempts if v <= version]:
            del attempts[older]
        if old is not None and writer_of(old.manifest)[0] != writer_of(model.manifest)[0]:
            log.warning(
                "v%d comes from another store history than v%d (store id %s, was %s)",
                version,
                old.version,
                writer_of(model.manifest)[0],
                writer_of(old.manifest)[0],
            )
        if not champion:
            log.info("challenger: serving snapshot v%d of %s", version, store.location)
            return
        # Swap first, then forget the fresh events the new model covers (off the loop: the store
        # may be large). Meanwhile a request may count such an event twice, never lose one.
        dropped = await asyncio.to_thread(_drop_covered, app, model)
        log.info(
            "serving snapshot v%d (%d users, %d items), loaded in %.3fs; %d fresh events now "
            "in the model",
            version,
            model.n_users,
            model.n_items,
            seconds,
            dropped,
        )
        return


_STATUS_EVERY = 2.0  # seconds between reads of the builder's and the monitor's documents


async def _watch(
    app: web.Application, holder: ModelHolder | None = None, store: SnapshotStore | None = None
) -> None:
    failed: set[int] = set()
    attempts: dict[int, int] = {}
    interval = app[CONFIG].poll_interval
    errors = RateLimitedLog(log, interval=30.0)
    next_status = 0.0
    while True:
        try:
            await _poll_once(app, failed, holder, store, attempts)
            if holder is None and time.monotonic() >= next_status:
                next_status = time.monotonic() + _STATUS_EVERY
                champion = app[HOLDER]
                champion.builder_status = await asyncio.to_thread(app[STORE].read_status)
                champion.online_status = await asyncio.to_thread(
                    app[STORE].read_document, ONLINE_STATUS
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the watcher must outlive any surprise; the model keeps serving
            errors.warning(
                "poll", "cannot read the snapshot store: %s: %s", type(exc).__name__, exc
            )
        await asyncio.sleep(interval)


async def snapshot_watcher(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: run the watchers (the champion's, and an experiment's challenger's) for the
    life of the app."""
    tasks = [asyncio.create_task(_watch(app), name="snapshot-watcher")]
    experiments = experiments_of(app)
    if experiments.store is not None:
        tasks.append(
            asyncio.create_task(
                _watch(app, experiments.challenger, experiments.store), name="challenger-watcher"
            )
        )
    yield
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
