"""Running the server: one process, or N worker processes sharing one port.

- The port is checked before anything starts (a port in use, a host that does not resolve or
  cannot be bound is one line and exit 2, never a traceback after "serving on").
- With ``--workers N`` each worker process listens only once it has loaded a model: the kernel
  spreads connections over the workers that listen (SO_REUSEPORT), so a client never meets a
  worker that answers 503 next to one that answers 200. Until the first model loads, the port
  refuses connections (a load balancer reads that as not ready). One process listens at once
  and answers 503 on ``/ready`` until a model is loaded.
- Workers die with their parent: a parent-death signal (Linux ``prctl``) and, everywhere, a watch
  of the parent's pid; a SIGKILLed parent leaves nothing serving stale state behind.
- Workers share the chat API's registrations (shared memory: :mod:`.chat_state`).
- Workers count into one set of Prometheus counters (prometheus-client's multiprocess mode in a
  folder the parent creates and removes): ``/metrics`` from any worker sums every worker's
  counters and histograms; state gauges (model version, fresh events, ...) are those of the
  worker that answered, which says who it is in ``recommender_worker_info``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
from typing import Any

from aiohttp import web

from ..blas import limit_blas_threads
from ..errors import ConfigError
from .app import create_app
from .chat_state import Registrations, SharedRegistry
from .state import HOLDER, ServerConfig

__all__ = ["check_port", "run_server"]

log = logging.getLogger(__name__)

#: Set in a worker's environment: its number, for /metrics.
WORKER_ENV = "RECOMMENDER_WORKER"
_PARENT_WATCH_SECONDS = 1.0


def check_port(host: str, port: int) -> None:
    """Raise ConfigError (one line, what to do) unless ``host``:``port`` can be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} does not resolve ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    probe = socket.socket(family, kind, proto)
    try:
        # As aiohttp binds: SO_REUSEADDR (a port in TIME-WAIT after a restart is free), but not
        # SO_REUSEPORT, which would quietly share the port with a server already there.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is in use (another server?): stop it, or choose another "
                "with --port"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    finally:
        probe.close()


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGTERM this process when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


async def _serve(
    config: ServerConfig,
    *,
    reuse_port: bool,
    parent: int | None,
    chat_registry: SharedRegistry | None = None,
) -> None:
    app: web.Application = create_app(config, chat_registry=chat_registry)
    # A few seconds for requests in flight (run_app's default of 60 s let keep-alive clients
    # hold a stopping server).
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await runner.setup()  # starts the watcher and the follower (cleanup_ctx)
    try:
        if parent is not None:
            watch = asyncio.create_task(_watch_parent(parent, stop))
            ready = asyncio.create_task(app[HOLDER].loaded.wait())
            waiting = asyncio.create_task(stop.wait())
            await asyncio.wait({ready, waiting}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            waiting.cancel()
            if stop.is_set():
                return
        site = web.TCPSite(runner, config.host, config.port, reuse_port=reuse_port)
        try:
            await site.start()
        except OSError as exc:  # taken between the check and now
            raise ConfigError(
                f"cannot listen on {config.host}:{config.port}: {exc.strerror}; choose another "
                "--port"
            ) from None
        if parent is not None:
            log.info("worker %s ready: listening", os.environ.get(WORKER_ENV, "?"))
        await stop.wait()
    finally:
        if parent is not None:
            watch.cancel()
        await runner.cleanup()


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("the parent process %d is gone: this worker stops", parent)
            stop.set()
            return
        await asyncio.sleep(_PARENT_WATCH_SECONDS)


def _serve_process(
    config: ServerConfig,
    reuse_port: bool,
    parent: int | None,
    chat_registry: SharedRegistry | None = None,
) -> None:
    """A process's main: serve until SIGINT/SIGTERM (or, for a worker, its parent's death)."""
    if parent is not None:
        _die_with_parent(parent)
        from ..logs import configure_logging

        configure_logging(config.log_level, config.log_format)
    limit_blas_threads()  # see recommender.blas: one BLAS thread serves faster here
    try:
        asyncio.run(
            _serve(config, reuse_port=reuse_port, parent=parent, chat_registry=chat_registry)
        )
    except ConfigError as exc:
        log.error("%s", exc)
        sys.exit(2)


def run_server(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM (see the module docstring)."""
    check_port(config.host, config.port)
    log.info(
        "serving on http://%s:%d with %d worker(s), snapshots from %s",
        config.host,
        config.port,
        config.workers,
        config.model_dir,
    )
    if config.workers <= 1:
        _serve_process(config, reuse_port=False, parent=None)
        return
    metrics_dir = tempfile.mkdtemp(prefix="recommender-metrics-")
    context = multiprocessing.get_context("spawn")
    registry, memory = Registrations.create_shared(config.chat_memory // 4, context.Lock())
    workers: list[Any] = []
    try:
        for k in range(config.workers):
            # Read by each worker as it starts (spawn: a fresh interpreter with this environment).
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            os.environ[WORKER_ENV] = str(k)
            worker = context.Process(
                target=_serve_process,
                args=(config, True, os.getpid(), registry),
                name=f"server-{k}",
            )
            worker.start()
            workers.append(worker)

        def forward(signum: int, frame: object) -> None:
            for worker in workers:
                if worker.is_alive() and worker.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker.pid, signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for worker in workers:
            worker.join()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        memory.close()
        memory.unlink()
    codes = [w.exitcode for w in workers]
    if any(code == 2 for code in codes):
        raise ConfigError("a worker could not start (see its message above)")
