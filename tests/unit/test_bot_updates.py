"""Fetching updates: one the library cannot decode is emptied (confirmed, skipped), not fatal."""

from __future__ import annotations

import json
import logging

import pytest
from telegram.error import TelegramError

from recommender.bot.updates import UpdatesRequest


def _updates(*results: object) -> bytes:
    return json.dumps({"ok": True, "result": list(results)}).encode()


CHAT = {"id": 7, "type": "private"}
GOOD = {"update_id": 3, "message": {"message_id": 1, "date": 1, "text": "hi", "chat": CHAT}}


def test_an_update_that_does_not_decode_is_emptied_so_its_id_is_confirmed(caplog):
    request = UpdatesRequest()
    bad = [
        {"update_id": 1, "message": {"message_id": 1, "date": "garbage", "chat": {"id": 7}}},
        {"update_id": 2, "message": "garbage"},
        {"update_id": 4, "message": {"message_id": 1, "date": 1, "entities": [{"type": "x"}]}},
    ]
    with caplog.at_level(logging.WARNING):
        answer = request.parse_json_payload(_updates(bad[0], bad[1], GOOD, bad[2]))
    assert answer["result"] == [{"update_id": 1}, {"update_id": 2}, GOOD, {"update_id": 4}]
    assert request.skipped == 3
    assert len(caplog.records) == 1  # rate limited: one line for the kind
    assert "skipped update 1" in caplog.text and "TypeError" in caplog.text


def test_an_update_without_an_id_is_dropped():
    request = UpdatesRequest()
    answer = request.parse_json_payload(_updates("garbage", {"message": {}}, GOOD))
    assert answer["result"] == [GOOD] and request.skipped == 2


def test_errors_and_other_answers_pass_unchanged():
    request = UpdatesRequest()
    error = {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert request.parse_json_payload(json.dumps(error).encode()) == error
    assert request.parse_json_payload(b'{"ok": true, "result": true}')["result"] is True
    with pytest.raises(TelegramError, match="not JSON"):
        request.parse_json_payload(b"<html>502</html>")
