"""A secret (the bot's token) kept out of every log line: messages, arguments, tracebacks."""

from __future__ import annotations

import io
import json
import logging

import pytest

from recommender.logs import configure_logging, hide_secret

TOKEN = "123456:SECRET-token_x"


@pytest.fixture
def captured(monkeypatch):
    """What the root logger's handler writes, once :func:`hide_secret` is set up."""

    def capture(fmt: str = "text") -> io.StringIO:
        stream = io.StringIO()
        monkeypatch.setattr("sys.stderr", stream)
        configure_logging("DEBUG", fmt)  # type: ignore[arg-type]
        hide_secret(TOKEN)
        return stream

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield capture
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_token_is_hidden_in_messages_arguments_and_tracebacks(captured, fmt):
    stream = captured(fmt)
    log = logging.getLogger("httpx")
    log.info("HTTP Request: POST http://h/bot%s/getMe", TOKEN)
    log.info("quoted: %s", "http://h/bot123456%3ASECRET-token_x/getMe")
    log.warning(f"in the message itself: {TOKEN} and %d", 3)
    try:
        raise ValueError(f"The token `{TOKEN}` was rejected by the server.")
    except ValueError:
        logging.getLogger("telegram.ext").exception("failed")
    out = stream.getvalue()
    assert TOKEN not in out and "123456%3ASECRET" not in out
    assert out.count("***") == 4 and "and 3" in out and "rejected by the server" in out
    if fmt == "json":
        assert all(json.loads(line) for line in out.splitlines())


def test_lines_without_the_token_are_left_alone(captured):
    stream = captured()
    logging.getLogger("x").info("100%% of %s", "it")
    assert stream.getvalue().endswith("x: 100% of it\n")
