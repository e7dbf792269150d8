"""HTTP handlers through aiohttp's test client, with real snapshots on disk."""

import asyncio
import shutil

import pytest

from recommender.server import ServerConfig, create_app

from .helpers import block_events, publish_window


@pytest.fixture
def model_dir(tmp_path):
    return tmp_path / "model"


@pytest.fixture
async def client(aiohttp_client, model_dir):
    app = create_app(ServerConfig(model_dir=model_dir, poll_interval=0.05, max_n=50))
    return await aiohttp_client(app)


async def wait_for_version(client, version, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        response = await client.get("/ready")
        if response.status == 200 and (await response.json())["model_version"] >= version:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"model v{version} was not served within {timeout}s")


async def test_not_ready_until_a_snapshot_exists(client, model_dir):
    assert (await client.get("/health")).status == 200
    response = await client.get("/ready")
    assert response.status == 503 and (await response.json())["error"] == "model_not_ready"
    response = await client.get("/recommend", params={"user": "g0u1"})
    assert response.status == 503 and (await response.json())["error"] == "model_not_ready"
    publish_window(model_dir, 1, block_events())
    await wait_for_version(client, 1)
    body = await (await client.get("/recommend", params={"user": "g0u1", "n": "1"})).json()
    assert body["items"][0]["item"] == "g0i1"
    assert body["source"] == "personalised" and body["model_version"] == 1


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({}, "user"),
        ({"user": ""}, "user"),
        ({"user": "x" * 300}, "user"),
        ({"user": "a", "n": "0"}, "n"),
        ({"user": "a", "n": "51"}, "n"),
        ({"user": "a", "n": "ten"}, "n"),
        ({"user": "a", "filter_seen": "maybe"}, "filter_seen"),
    ],
)
async def test_bad_parameters_get_a_400_naming_the_parameter(client, params, parameter):
    response = await client.get("/recommend", params=params)
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "bad_parameter" and body["parameter"] == parameter
    assert body["message"].startswith(parameter)


async def test_repeated_parameter_is_refused(client):
    response = await client.get("/recommend?user=a&user=b")
    assert response.status == 400 and (await response.json())["parameter"] == "user"


async def test_unknown_route_and_method_answer_json(client):
    response = await client.get("/no/such/thing")
    assert response.status == 404 and (await response.json())["error"] == "not_found"
    response = await client.post("/recommend")
    assert response.status == 405 and "error" in await response.json()


async def test_unknown_user_gets_popular_items_marked_as_fallback(client, model_dir):
    publish_window(model_dir, 1, block_events())
    await wait_for_version(client, 1)
    body = await (await client.get("/recommend", params={"user": "nobody", "n": "3"})).json()
    assert body["source"] == "popular" and body["fallback"] is True and len(body["items"]) == 3


async def test_seed_compatible_query(client, model_dir):
    publish_window(model_dir, 1, block_events())
    await wait_for_version(client, 1)
    response = await client.get("/", params={"userId": "g1u2", "recommendationsNumber": "2"})
    body = await response.json()
    assert set(body) == {"user_id", "recommended_items"}
    assert body["user_id"] == "g1u2" and body["recommended_items"][0] == "g1i2"
    assert len(body["recommended_items"]) == 2
    response = await client.get("/", params={"userId": "g1u2", "recommendationsNumber": "x"})
    assert (await response.json())["parameter"] == "recommendationsNumber"
    page = await client.get("/")
    assert page.status == 200 and "text/html" in page.headers["Content-Type"]


async def test_hot_swap_and_corrupt_snapshots_never_replace_the_good_model(client, model_dir):
    publish_window(model_dir, 1, block_events())
    await wait_for_version(client, 1)
    # v2 is published complete, then damaged: it must be rejected, v1 keeps serving.
    path = publish_window(model_dir, 2, block_events())
    (path / "user_factors.npy").write_bytes(b"garbage")
    await asyncio.sleep(0.5)
    body = await (await client.get("/model")).json()
    assert body["manifest"]["version"] == 1
    assert (await client.get("/recommend", params={"user": "g0u1"})).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert "recommender_model_swap_failures_total 1.0" in metrics
    # A good v3 is picked up.
    publish_window(model_dir, 3, block_events(groups=3))
    await wait_for_version(client, 3)
    body = await (await client.get("/recommend", params={"user": "g2u3", "n": "1"})).json()
    assert body["model_version"] == 3 and body["items"][0]["item"] == "g2i3"


async def test_the_old_snapshot_disappearing_does_not_break_serving(client, model_dir):
    publish_window(model_dir, 1, block_events())
    await wait_for_version(client, 1)
    shutil.rmtree(model_dir / "v000000000001")  # pruned by the builder while being served
    response = await client.get("/recommend", params={"user": "g0u1"})
    assert response.status == 200


async def test_metrics_count_requests_fallbacks_and_model_version(client, model_dir):
    publish_window(model_dir, 4, block_events())
    await wait_for_version(client, 4)
    await client.get("/recommend", params={"user": "nobody"})
    await client.get("/recommend", params={"user": "g0u1"})
    await client.get("/recommend", params={"n": "1"})
    text = await (await client.get("/metrics")).text()
    assert 'recommender_http_requests_total{route="/recommend",status="200"} 2.0' in text
    assert 'recommender_http_requests_total{route="/recommend",status="400"} 1.0' in text
    assert "recommender_fallbacks_total 1.0" in text
    assert "recommender_model_version 4.0" in text
    assert 'recommender_http_request_duration_seconds_count{route="/recommend"} 3.0' in text
    model = await (await client.get("/model")).json()
    assert model["manifest"]["version"] == 4 and model["users"] == 40
