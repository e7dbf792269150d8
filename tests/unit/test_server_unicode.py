"""Lone UTF-16 surrogates in ids and text: a 400 naming the field, never a 500 (issue 14).

``{"user": "\\ud800"}`` is valid JSON that decodes to a str no encoder accepts; it once made
POST /interactions and the chat API answer 500."""

import json

import pytest

from recommender.server.ingest import decode_body

from .test_server import make_client, model_dir  # noqa: F401  (fixtures)

SURROGATE = "\ud800"


def test_a_json_event_with_a_lone_surrogate_is_rejected_not_raised():
    body = json.dumps([{"user": SURROGATE, "item": "i1"}, {"user": "u", "item": "x" + SURROGATE}])
    assert decode_body("application/json", body.encode()) == ["not_utf8", "not_utf8"]
    assert decode_body("application/json", b'{"user": "u", "item": "i"}') == [b"u:i"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/register", {"chat_id": SURROGATE}, "chat_id"),
        ("/get_unrated_movie", {"chat_id": "a" + SURROGATE}, "chat_id"),
        ("/rate_movie", {"chat_id": SURROGATE, "movie_id": "g0i1", "rating": 5}, "chat_id"),
        ("/rate_movie", {"chat_id": 7, "movie_id": SURROGATE, "rating": 5}, "movie_id"),
        ("/recommend", {"chat_id": SURROGATE, "top_n": 3}, "chat_id"),
    ],
)
async def test_chat_api_ids_with_lone_surrogates_get_a_400(make_client, path, body, field):  # noqa: F811
    client = await make_client()
    response = await client.post(
        path, data=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["parameter"] == field


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("/recommend?user=%ED%A0%80", "user"),
        ("/similar?item=%ED%A0%80", "item"),
        ("/items?q=%ED%A0%80", "q"),
        ("/recommend?items=g0i1,%ED%A0%80", "items"),
    ],
)
async def test_query_parameters_that_are_not_utf8_get_a_400_or_an_answer(make_client, query, field):  # noqa: F811
    client = await make_client()
    response = await client.get(query)
    assert response.status in (200, 400, 404), await response.text()
    if response.status == 400:
        assert (await response.json())["parameter"] == field
