"""Hot swap: watch the model directory, load new snapshots off the event loop, swap them in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from ..errors import SnapshotError
from ..model import RecommenderModel
from ..snapshot import list_snapshot_dirs, load_snapshot
from .state import CONFIG, FRESH, HOLDER, METRICS

__all__ = ["load_model", "snapshot_watcher"]

log = logging.getLogger(__name__)


def load_model(path: Path) -> RecommenderModel:
    """Load, verify and index a snapshot (blocking: run it in a thread)."""
    return RecommenderModel(load_snapshot(path))


async def _poll_once(app: web.Application, failed: set[int]) -> None:
    holder, metrics = app[HOLDER], app[METRICS]
    current = holder.model.version if holder.model else 0
    candidates = await asyncio.to_thread(list_snapshot_dirs, app[CONFIG].model_dir)
    loop = asyncio.get_running_loop()
    # Newest first; an older good snapshot is worth loading only if it beats what is served.
    for version, path in reversed(candidates):
        if version <= current:
            return
        if version in failed:
            continue
        started = time.perf_counter()
        try:
            model = await loop.run_in_executor(None, load_model, path)
        except SnapshotError as exc:
            failed.add(version)
            metrics.swap_failures.inc()
            log.error("rejected snapshot v%d, still serving v%d: %s", version, current, exc)
            continue
        seconds = time.perf_counter() - started
        metrics.load_seconds.observe(seconds)
        metrics.swaps.inc()
        holder.swap(model)
        # Swap first, then forget the fresh events the new model covers (off the loop: the store
        # may be large). Meanwhile a request may count such an event twice, never lose one.
        dropped = await asyncio.to_thread(app[FRESH].drop_covered, model.positions)
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


async def _watch(app: web.Application) -> None:
    failed: set[int] = set()
    interval = app[CONFIG].poll_interval
    while True:
        try:
            await _poll_once(app, failed)
        except asyncio.CancelledError:
            raise
        except Exception:  # the watcher must outlive any surprise; the model keeps serving
            log.exception("snapshot watcher error")
        await asyncio.sleep(interval)


async def snapshot_watcher(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: run the watcher for the life of the app."""
    task = asyncio.create_task(_watch(app), name="snapshot-watcher")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
