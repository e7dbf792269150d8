"""The Telegram bot, as a real process, against a local server speaking the Bot API over HTTP and
a real recommender server on a real broker."""

from __future__ import annotations

import pytest

from tests.telegram_api import FakeTelegram

from .conftest import get_json, with_film_catalogue

TOKEN = "123456:TEST-token"
CHAT = 5151


@pytest.fixture
def telegram():
    fake = FakeTelegram(TOKEN)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def bot(kafka, system, daemons, telegram):
    """A recommender server with a catalogue (titles 'Film N', links) and the bot on it."""
    _, base = with_film_catalogue(kafka, system, ["--enable-ingest", "--min-ratings", "5"])
    process = daemons(
        "bot",
        ["bot", "--server", base, "--telegram-url", telegram.url],
        env={"TELEGRAM_BOT_TOKEN": TOKEN},
    )
    telegram.wait_for("getUpdates", lambda p: True, timeout=30)  # polling
    yield base, process
    assert process.proc.poll() is None, process.output()


def test_rate_one_by_one_then_recommend(telegram, bot):
    telegram.user_says(CHAT, "/start")
    at, hello = telegram.wait_for("sendMessage", lambda p: "Hello" in p["text"])
    assert "/rate" in hello["text"]
    telegram.user_says(CHAT, "/recommend")
    at, answer = telegram.wait_for("sendMessage", lambda p: "Rate at least" in p["text"], after=at)
    assert "at least 5 items first (you have rated 0)" in answer["text"]
    telegram.user_says(CHAT, "/rate")
    for round_ in range(5):
        at, question = telegram.wait_for(
            "sendMessage", lambda p: "reply_markup" in p and "Film" in p["text"], after=at + 1
        )
        assert "https://films.example/" in question["text"]
        buttons = [b for row in question["reply_markup"]["inline_keyboard"] for b in row]
        assert [b["text"] for b in buttons] == ["1", "2", "3", "4", "5", "Don't know it"]
        message = telegram.sent_message(question)
        rating = "5" if round_ % 2 == 0 else "2"
        press = next(b["callback_data"] for b in buttons if b["text"] == rating)
        telegram.user_presses(CHAT, message["message_id"], press)
        answered = f"Rated {rating}"
        at, _ = telegram.wait_for(
            "answerCallbackQuery", lambda p, a=answered: p.get("text") == a, after=at
        )
        telegram.wait_for(
            "editMessageReplyMarkup",
            lambda p, m=message: int(p["message_id"]) == m["message_id"],
            after=at - 1,
        )
    telegram.wait_for("sendMessage", lambda p: "reply_markup" in p, after=at)  # the 6th question
    telegram.user_says(CHAT, "/recommend")
    at, top = telegram.wait_for("sendMessage", lambda p: p["text"].startswith("For you:"), after=at)
    lines = top["text"].splitlines()[1:]
    assert len(lines) == 3 and all(
        "Film" in line and "https://films.example/" in line for line in lines
    )


def test_search_a_title_to_rate_it(telegram, bot):
    telegram.user_says(CHAT, "/search film 12")
    at, found = telegram.wait_for("sendMessage", lambda p: "reply_markup" in p)
    assert found["text"].startswith("Film 12\n")
    telegram.user_says(CHAT, "/search zzzz qqqq")
    telegram.wait_for("sendMessage", lambda p: "I know no title like" in p["text"], after=at)


def test_typed_ratings_rate_several_titles_forgivingly_and_answer_a_top_10(telegram, bot):
    base, _ = bot
    telegram.user_says(CHAT, "Film 3 9, flim 5: 8\nSomething Else Entirely 7; nonsense; Film 7 12")
    _, reply = telegram.wait_for("sendMessage", lambda p: "Rated:" in p["text"], timeout=30)
    text = reply["text"]
    assert "Rated: Film 3 (9), Film 5 (8)." in text  # "flim 5" matched forgivingly
    assert "Not found: Something Else Entirely." in text
    assert "Could not read: nonsense" in text
    assert "Ratings go from 1 to 10: Film 7 (12)." in text
    top = text.split("Your top 10:\n")[1].splitlines()
    assert len(top) == 10 and not any(line.endswith("Film 3") for line in top)
    items = get_json(f"{base}/users/{CHAT}/items")[1]["fresh"]
    assert {e["item"] for e in items} == {"i3", "i5"}
    assert all(e["weight"] > 0 for e in items)  # a 9 and an 8 on 1..10 are likes
