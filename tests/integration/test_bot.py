"""The Telegram bot, as a real process, against a local server speaking the Bot API over HTTP and
a real recommender server on a real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from recommender.broker import free_port
from tests.telegram_api import FakeTelegram

from .conftest import ROOT, get_json, with_film_catalogue

TOKEN = "123456:TEST-token"
CHAT = 5151
HELP_START = "I recommend things to you"


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
    at, _ = telegram.wait_for(
        "sendMessage", lambda p: "I know no title like" in p["text"], after=at
    )
    telegram.user_says(CHAT, "/search " + "zq " * 1362)  # the answer quotes it: over 4,096
    _, long = telegram.wait_for("sendMessage", lambda p: "I know no" in p["text"], after=at + 1)
    assert len(long["text"]) == 4096 and long["text"].endswith("\u2026")


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


# -- failures: at the start, in updates, in what users type ------------------------------------


def run_bot_once(telegram_url: str, token: str, *extra: str) -> tuple[int, str]:
    """Run ``recommender bot`` to its end (at DEBUG: every line this project can log)."""
    done = subprocess.run(
        [sys.executable, "-m", "recommender", "bot", "--telegram-url", telegram_url, *extra],
        cwd=ROOT,
        env={**os.environ, "TELEGRAM_BOT_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def assert_one_error_line(output: str, says: str) -> None:
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert errors and says in errors[-1], output
    assert len(errors) == 1 and "Traceback" not in output, output


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_wrong_token_is_one_line_and_exit_code_2(telegram, fmt):
    wrong = "654321:WRONG-token"
    code, output = run_bot_once(telegram.url, wrong, "--log-level", "DEBUG", "--log-format", fmt)
    assert code == 2, output
    says = "Telegram refused the token: check --token / $TELEGRAM_BOT_TOKEN (BotFather)"
    if fmt == "text":
        assert_one_error_line(output, says)
    else:
        assert says in output and "Traceback" not in output and '"level": "error"' in output
    assert wrong not in output and "654321%3AWRONG" not in output


def test_an_unreachable_telegram_is_one_line_and_exit_code_2():
    url = f"http://127.0.0.1:{free_port()}/bot"  # nothing listens there
    code, output = run_bot_once(url, TOKEN, "--log-level", "DEBUG")
    assert code == 2, output
    assert_one_error_line(output, f"cannot reach Telegram at {url} (")
    assert "check the network or --telegram-url" in output and TOKEN not in output


def test_a_telegram_url_without_bot_is_one_line_and_exit_code_2():
    code, output = run_bot_once("http://127.0.0.1:8081", TOKEN)
    assert code == 2, output
    assert_one_error_line(output, "--telegram-url 'http://127.0.0.1:8081' must end in /bot")
    assert TOKEN not in output


@pytest.fixture(params=["text", "json"])
def lone_bot(request, daemons, telegram):
    """The bot at DEBUG with no recommender server (it answers what needs none)."""
    server = f"http://127.0.0.1:{free_port()}"
    args = ["--server", server, "--telegram-url", telegram.url, "--log-level", "DEBUG"]
    process = daemons(
        "bot", ["bot", *args, "--log-format", request.param], env={"TELEGRAM_BOT_TOKEN": TOKEN}
    )
    telegram.wait_for("getUpdates", lambda p: True, timeout=30)
    yield process
    stopped = process.proc.returncode is not None  # by the test
    assert stopped or process.proc.poll() is None, process.output()


#: Updates python-telegram-bot cannot turn into an Update (each wedged polling before).
BAD_UPDATES = [
    {"message": {"message_id": 1, "date": "garbage", "chat": {"id": CHAT, "type": "private"}}},
    {"message": "garbage"},
    {"callback_query": {"id": "q", "from": {"id": CHAT}, "chat_instance": "c", "data": "r:1:5"}},
]


def test_the_token_is_in_no_log_line(telegram, lone_bot):
    telegram.user_says(CHAT, "hello")
    at, _ = telegram.wait_for("sendMessage", lambda p: p["text"].startswith(HELP_START))
    telegram.user_says(CHAT, "/start")  # the server is unreachable: an error, and a reply
    at, _ = telegram.wait_for("sendMessage", lambda p: "Sorry, that failed" in p["text"], after=at)
    telegram.queue_raw(BAD_UPDATES[0])
    telegram.user_says(CHAT, "Naruto 9")
    telegram.wait_for("sendMessage", lambda p: "unreachable" in p["text"], after=at + 1)
    assert lone_bot.stop(signal.SIGTERM) == 0
    output = lone_bot.output()
    assert "DEBUG" in output or '"level": "debug"' in output  # every level was on
    assert "skipped update" in output and "bot stopped (1 unreadable updates skipped)" in output
    assert TOKEN not in output and "123456%3ATEST-token" not in output


def test_a_bad_update_is_skipped_and_the_next_one_answered(telegram, lone_bot):
    for update in BAD_UPDATES:
        telegram.queue_raw(update)
    telegram.user_says(CHAT, "hello")
    at, _ = telegram.wait_for("sendMessage", lambda p: p["text"].startswith(HELP_START))
    telegram.queue_raw(BAD_UPDATES[0])
    telegram.user_says(CHAT, "hello again")
    telegram.wait_for("sendMessage", lambda p: p["text"].startswith(HELP_START), after=at + 1)
    polls = sum(1 for method, _ in telegram.calls if method == "getUpdates")
    assert polls < 20  # no loop fetching the same batch (it made thousands of calls a second)
    skipped = [line for line in lone_bot.output().splitlines() if "skipped update" in line]
    assert len(skipped) == 1 and "4 skipped so far" not in skipped[0]  # one line, rate limited


def test_long_adversarial_messages_are_answered(telegram, lone_bot):
    telegram.user_says(CHAT, "1" * 4095 + "x")  # 1.3 s in the old parser's regex
    at, _ = telegram.wait_for("sendMessage", lambda p: p["text"].startswith(HELP_START))
    telegram.user_says(CHAT, "Naruto 9, " + "1" * 4000 + "x")
    _, reply = telegram.wait_for("sendMessage", lambda p: "Sorry" in p["text"], after=at + 1)
    assert "unreachable" in reply["text"]  # it read Naruto 9 and asked the server
