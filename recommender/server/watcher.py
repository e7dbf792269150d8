"""Hot swap: watch the snapshot store, load new snapshots off the event loop, swap them in.

Versions are the numbers snapshots are published under (a snapshot whose manifest carries another
number is refused, so a copied snapshot can never make the watcher reload in a loop). A snapshot
that fails to load is logged and counted once, then skipped until a newer one arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from ..errors import SnapshotError
from ..index import AnnSettings
from ..logs import RateLimitedLog
from ..model import RecommenderModel
from ..store import SnapshotStore
from .state import CONFIG, COVERAGE, FRESH, HOLDER, METRICS, STORE, ServerConfig

__all__ = ["load_model", "snapshot_watcher"]

log = logging.getLogger(__name__)


def load_model(store: SnapshotStore, version: int, config: ServerConfig) -> RecommenderModel:
    """Load, verify and index a snapshot (blocking: run it in a thread).

    Raises SnapshotError for anything that makes it unservable here, including a snapshot built
    from another topic than the one this server follows (its offsets would name other events).
    """
    ann = AnnSettings(threshold=config.ann_threshold, exact=config.exact, ef_search=config.ann_ef)
    try:
        model = RecommenderModel(store.load(version), ann=ann)
    except SnapshotError:
        raise
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


def _drop_covered(app: web.Application, model: RecommenderModel) -> int:
    """Forget the fresh events ``model`` covers (blocking: may ask Kafka after a log reset)."""
    return app[FRESH].drop_covered(app[COVERAGE].positions(model))


async def _poll_once(app: web.Application, failed: set[int]) -> None:
    holder, metrics, store = app[HOLDER], app[METRICS], app[STORE]
    current = holder.model.version if holder.model else 0
    versions = await asyncio.to_thread(store.versions)
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
        except SnapshotError as exc:
            if version not in await asyncio.to_thread(store.versions):
                log.debug("v%d was pruned while loading; looking again", version)
                continue  # not a bad snapshot: the builder removed it meanwhile
            failed.add(version)
            metrics.swap_failures.inc()
            log.error("rejected snapshot v%d, still serving v%d: %s", version, current, exc)
            continue
        seconds = time.perf_counter() - started
        metrics.load_seconds.observe(seconds)
        metrics.swaps.inc()
        holder.swap(model)
        failed.difference_update([v for v in failed if v <= version])
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


_STATUS_EVERY = 2.0  # seconds between reads of the builder's status document


async def _watch(app: web.Application) -> None:
    failed: set[int] = set()
    interval = app[CONFIG].poll_interval
    errors = RateLimitedLog(log, interval=30.0)
    next_status = 0.0
    while True:
        try:
            await _poll_once(app, failed)
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + _STATUS_EVERY
                app[HOLDER].builder_status = await asyncio.to_thread(app[STORE].read_status)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the watcher must outlive any surprise; the model keeps serving
            errors.warning(
                "poll", "cannot read the snapshot store: %s: %s", type(exc).__name__, exc
            )
        await asyncio.sleep(interval)


async def snapshot_watcher(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: run the watcher for the life of the app."""
    task = asyncio.create_task(_watch(app), name="snapshot-watcher")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
