"""BLAS thread-pool limits, shared by training and serving."""

from __future__ import annotations

import threadpoolctl

__all__ = ["limit_blas_threads"]

# Kept alive: a limiter restores the old limits when it is garbage-collected.
_limiters: list[threadpoolctl.threadpool_limits] = []


def limit_blas_threads() -> None:
    """Run BLAS single-threaded for the life of the process (cheap to call again).

    Training: implicit parallelises over users with OpenMP and asks for a single-threaded BLAS (a
    BLAS pool inside its per-user solves is many times slower; see implicit's check_blas_config).
    Serving: per-request math is one small matrix-vector product; a BLAS pool only adds spinning
    threads that take the CPU from the event loop (measured: half the throughput on 2 cores).
    """
    # A limit reaches only the libraries loaded when it is set (numpy and scipy each bundle their
    # own OpenBLAS), so every call checks again rather than trusting an earlier one.
    if any(
        lib["num_threads"] != 1
        for lib in threadpoolctl.threadpool_info()
        if lib["user_api"] == "blas"
    ):
        _limiters.append(threadpoolctl.threadpool_limits(1, "blas"))
