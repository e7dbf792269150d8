"""Score concurrent requests together: one matrix product per event-loop turn.

Handlers that reach the scoring step in the same loop iteration share one ``vectors @ Yᵀ``
product, which reads the item factors once instead of once per request (measured on a 20k x 64
catalogue with one BLAS thread: 437 µs for 8 vectors against 1,880 µs one by one; see
:class:`~recommender.index.ExactTopK`).
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt

from ..model import RecommenderModel

__all__ = ["ScoreBatcher"]

FloatArray = npt.NDArray[np.float32]


class ScoreBatcher:
    """Collects (model, vector) pairs during one loop turn and scores them in batches."""

    def __init__(self, *, max_batch: int = 64) -> None:
        self.max_batch = max_batch
        self._pending: list[tuple[RecommenderModel, FloatArray, asyncio.Future[FloatArray]]] = []
        self.batches = 0
        self.scored = 0

    async def score(self, model: RecommenderModel, vector: FloatArray) -> FloatArray:
        """Every item's score for ``vector`` (a fresh row the caller may modify)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[FloatArray] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((model, vector, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        by_model: dict[
            int, list[tuple[RecommenderModel, FloatArray, asyncio.Future[FloatArray]]]
        ] = {}
        for entry in pending:
            by_model.setdefault(id(entry[0]), []).append(entry)
        for group in by_model.values():
            model = group[0][0]
            for lo in range(0, len(group), self.max_batch):
                chunk = group[lo : lo + self.max_batch]
                try:
                    scores = model.score_many(np.stack([vector for _, vector, _ in chunk]))
                except Exception as exc:  # hand the error to every waiting request
                    for _, _, future in chunk:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.batches += 1
                self.scored += len(chunk)
                for k, (_, _, future) in enumerate(chunk):
                    if not future.done():  # the request may have been cancelled meanwhile
                        future.set_result(scores[k])
