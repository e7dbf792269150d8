"""Scoring concurrent requests together: one product per batch, and no wait for a lone client."""

import asyncio
import time

import numpy as np
import pytest

from recommender.serving.batching import ScoreBatcher
from recommender.serving.model import RecommenderModel
from recommender.snapshot import load_snapshot

from .helpers import block_events, publish_window


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return RecommenderModel(
        load_snapshot(publish_window(tmp_path_factory.mktemp("m"), 1, block_events()))
    )


def vectors(model, count):
    return [np.asarray(model.user_factors[k]) for k in range(count)]


async def test_concurrent_requests_share_one_product_and_get_their_own_scores(model):
    batcher = ScoreBatcher(window=0.05)
    given = vectors(model, 6)
    scores = await asyncio.gather(*(batcher.score(model, v) for v in given))
    assert (batcher.batches, batcher.scored) == (1, 6)
    for vector, got in zip(given, scores, strict=True):
        np.testing.assert_allclose(got, model.score(vector), rtol=1e-5, atol=1e-6)


async def test_a_lone_client_never_waits_for_the_window(model):
    batcher = ScoreBatcher(window=1.0)
    started = time.perf_counter()
    for vector in vectors(model, 5):
        await batcher.score(model, vector)
    assert time.perf_counter() - started < 0.5  # five requests, none waited 1 s
    assert batcher.batches == 5


async def staggered(batcher, model, gap):
    """Three requests, then three more ``gap`` seconds later (each waits for its answer)."""
    first, second = vectors(model, 6)[:3], vectors(model, 6)[3:]

    async def later(vector):
        await asyncio.sleep(gap)
        return await batcher.score(model, vector)

    return await asyncio.gather(
        *(batcher.score(model, v) for v in first), *(later(v) for v in second)
    )


async def test_after_a_busy_batch_the_next_waits_for_as_many_requests(model):
    busy = ScoreBatcher(window=0.2)
    await asyncio.gather(*(busy.score(model, v) for v in vectors(model, 6)))  # 6 came together
    await staggered(busy, model, 0.02)
    assert busy.batches == 2  # the staggered six were scored together
    eager = ScoreBatcher(window=0)
    await asyncio.gather(*(eager.score(model, v) for v in vectors(model, 6)))
    await staggered(eager, model, 0.02)
    assert eager.batches == 3  # without a window: three, then three


async def test_the_wait_is_bounded_by_the_window_and_then_forgotten(model):
    batcher = ScoreBatcher(window=0.3)
    await asyncio.gather(*(batcher.score(model, v) for v in vectors(model, 6)))
    started = time.perf_counter()
    await batcher.score(model, vectors(model, 1)[0])  # expected 6, only one comes
    assert 0.25 <= time.perf_counter() - started < 2.0
    started = time.perf_counter()
    await batcher.score(model, vectors(model, 1)[0])  # alone last time: no wait now
    assert time.perf_counter() - started < 0.15


async def test_a_failed_product_fails_every_request_of_its_batch(model):
    class Broken:
        def score_many(self, stacked):
            raise FloatingPointError("factors are gone")

    batcher = ScoreBatcher()
    results = await asyncio.gather(
        *(batcher.score(Broken(), v) for v in vectors(model, 3)), return_exceptions=True
    )
    assert all(isinstance(r, FloatingPointError) for r in results)
