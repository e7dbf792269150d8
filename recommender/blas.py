"""BLAS thread-pool limits, shared by training and serving."""

from __future__ import annotations

import threadpoolctl

__all__ = ["limit_blas_threads"]

_limiter: threadpoolctl.threadpool_limits | None = None


def limit_blas_threads() -> None:
    """Run BLAS single-threaded for the life of the process (idempotent).

    Training: implicit parallelises over users with OpenMP and asks for a single-threaded BLAS (a
    BLAS pool inside its per-user solves is many times slower; see implicit's check_blas_config).
    Serving: per-request math is one small matrix-vector product; a BLAS pool only adds spinning
    threads that take the CPU from the event loop (measured: half the throughput on 2 cores).
    """
    global _limiter
    if _limiter is None:
        _limiter = threadpoolctl.threadpool_limits(1, "blas")
