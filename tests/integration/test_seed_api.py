"""The seed-001 chat API through a real server, broker and builder: register, ask, rate,
recommend."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from .conftest import TASTE, get_json, wait_until, with_film_catalogue


def post(base: str, path: str, body: object, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_register_knows_model_users_and_remembers_new_ones(kafka, system):
    _, base = with_film_catalogue(kafka, system, ["--enable-ingest", "--min-ratings", "5"])
    assert post(base, "/register", {"chat_id": 424242}) == (200, {"exists": 0})
    assert post(base, "/register", {"chat_id": "424242"}) == (200, {"exists": 1})  # same chat
    assert post(base, "/register", {"chat_id": 424242.0}) == (200, {"exists": 1})
    assert post(base, "/register", {"chat_id": "u3"}) == (200, {"exists": 1})  # in the model
    for bad in ({}, {"chat_id": None}, {"chat_id": True}, {"chat_id": 1.5}, {"chat_id": "a:b"}):
        status, body = post(base, "/register", bad)
        assert status == 400 and body["parameter"] == "chat_id", (bad, body)
    assert post(base, "/register", None, raw=b"{not json")[0] == 400
    assert post(base, "/register", None, raw=b"[1, 2]")[0] == 400


def test_a_new_user_rates_what_they_are_asked_and_then_gets_recommendations(kafka, system):
    _, base = with_film_catalogue(kafka, system, ["--enable-ingest", "--min-ratings", "5"])
    chat = 77
    status, body = post(base, "/recommend", {"chat_id": chat, "top_n": 3})
    assert (status, body["movies"], body["needed"]) == (200, [], 5)
    asked, rated = [], set()
    group = TASTE.user_group("u1")  # this user likes what u1's group likes
    for step in range(8):
        status, item = post(base, "/get_unrated_movie", {"chat_id": chat})
        assert status == 200 and item["title"].startswith("Film ") and item["url"]
        assert item["id"] not in rated
        if asked:
            assert item["id"] != asked[-1]  # never the same twice in a row
        asked.append(item["id"])
        liked = TASTE.item_group(item["id"]) == group
        rating = 5 if liked else (0 if step % 3 == 0 else 1)
        status, body = post(
            base, "/rate_movie", {"chat_id": chat, "movie_id": item["id"], "rating": str(rating)}
        )
        assert status == 200 and body["status"] == "success"
        assert body["recorded"] is (rating != 0)  # 0: "I don't know it", nothing recorded
        if rating:
            rated.add(item["id"])
    wait_until(
        lambda: len(get_json(f"{base}/users/{chat}/items")[1]["fresh"]) == len(rated),
        timeout=10,
        what="the ratings to be folded in",
    )
    fresh = {e["item"]: e["weight"] for e in get_json(f"{base}/users/{chat}/items")[1]["fresh"]}
    assert set(fresh.values()) <= {2.0, -2.0}  # 1..5 without a declared scale: 5 -> +2, 1 -> -2
    assert len(rated) >= 5  # at most 3 of the 8 answers were "don't know"
    status, body = post(base, "/recommend", {"chat_id": chat, "top_n": 4})
    assert status == 200 and len(body["movies"]) == 4
    assert not {m["id"] for m in body["movies"]} & rated  # rated items never come back
    assert all(m["title"] and m["url"] for m in body["movies"])


def test_a_one_star_rating_is_a_dislike_never_recommended_back(kafka, system):
    _, base = with_film_catalogue(kafka, system, ["--enable-ingest", "--min-ratings", "5"])
    user = "u5"  # a model user: their favourite item is about to be disliked
    top = get_json(f"{base}/recommend?user={user}&n=1")[1]["items"][0]["item"]
    status, _ = post(base, "/rate_movie", {"chat_id": user, "movieId": top, "rating": 1})
    assert status == 200
    wait_until(
        lambda: get_json(f"{base}/recommend?user={user}")[1].get("fresh_events") == 1,
        timeout=10,
        what="the rating",
    )
    unfiltered = get_json(f"{base}/recommend?user={user}&n=50&filter_seen=false")[1]
    assert top not in {i["item"] for i in unfiltered["items"]}


def test_bad_ratings_are_400_with_the_field_named(kafka, system):
    _, base = with_film_catalogue(kafka, system, ["--enable-ingest", "--min-ratings", "5"])
    for body, field in [
        ({"chat_id": 1, "movie_id": "i1", "rating": 7}, "rating"),
        ({"chat_id": 1, "movie_id": "i1", "rating": "five"}, "rating"),
        ({"chat_id": 1, "movie_id": "i1"}, "rating"),
        ({"chat_id": 1, "rating": 3}, "movieId"),
        ({"chat_id": 1, "movie_id": "i1", "rating": 3, "scale": "ten"}, "scale"),
        ({"chat_id": 1, "top_n": 0}, "top_n"),
    ]:
        path = "/recommend" if "top_n" in body else "/rate_movie"
        status, answer = post(base, path, body)
        assert status == 400 and answer["parameter"] == field, (body, answer)
    # The anime flow rates on 1..10: a 9 there is a like.
    status, _ = post(
        base, "/rate_movie", {"chat_id": 9, "movie_id": "i2", "rating": 9, "scale": "1..10"}
    )
    assert status == 200
