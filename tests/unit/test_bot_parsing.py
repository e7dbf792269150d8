"""Typed ratings (``Naruto 9, Bleach 7``): the formats, the bounds, linear time (hypothesis)."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from recommender.bot.parsing import (
    MAX_ECHO,
    MAX_NUMBER,
    MAX_TEXT,
    MAX_TITLE,
    MAX_UNREADABLE,
    TypedRating,
    parse_ratings,
)

#: The expression the parser used to match (quadratic when it fails): the specification of a
#: part, checked against the scan on short inputs, where its time does not matter.
REFERENCE = re.compile(
    r"^(?P<title>.*?\S)\s*[:=\-\u2013\u2014]?\s*(?P<rating>\d+(?:[.,]\d+)?)\s*(?:/\s*\d+)?$"
)


def reference(text: str) -> tuple[list[TypedRating], list[str]]:
    """The old parser, plus the bounds the new one documents."""
    ratings, unreadable = [], []
    for part in re.split(r"[,;\n]+", text[:MAX_TEXT]):
        part = part.strip()
        if not part:
            continue
        match = REFERENCE.match(part)
        if match is None or len(match["title"]) > MAX_TITLE or len(match["rating"]) > MAX_NUMBER:
            if len(unreadable) < MAX_UNREADABLE:
                unreadable.append(part if len(part) <= MAX_ECHO else part[: MAX_ECHO - 1] + "…")
            continue
        ratings.append(TypedRating(match["title"], float(match["rating"].replace(",", "."))))
        if len(ratings) >= 50:
            break
    return ratings, unreadable


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Title 9", [("Title", 9.0)]),
        ("Title: 9", [("Title", 9.0)]),
        ("Title - 9", [("Title", 9.0)]),
        ("Title \u2014 9", [("Title", 9.0)]),
        ("Title 9/10", [("Title", 9.0)]),
        ("Title 9 / 10", [("Title", 9.0)]),
        ("Title 7.5", [("Title", 7.5)]),
        ("Akira 1988 8", [("Akira 1988", 8.0)]),
        ("Akira 1988: 8", [("Akira 1988", 8.0)]),
        ("Blade Runner 2049 - 9/10", [("Blade Runner 2049", 9.0)]),
        ("Naruto 9, Bleach 7", [("Naruto", 9.0), ("Bleach", 7.0)]),
        ("Naruto 9; Bleach 7\nOne Piece 10", [("Naruto", 9), ("Bleach", 7), ("One Piece", 10)]),
        ("  Naruto   9 ,, ;\n\n", [("Naruto", 9.0)]),
        ("- 9", [("-", 9.0)]),
    ],
)
def test_the_formats_people_type(text, expected):
    ratings, unreadable = parse_ratings(text)
    assert [(r.title, r.rating) for r in ratings] == expected
    assert unreadable == []


def test_parts_that_are_not_title_number_are_returned_to_tell_the_user():
    ratings, unreadable = parse_ratings("Film 3 9, nonsense; 9; Film 7 12")
    assert ratings == [TypedRating("Film 3", 9.0), TypedRating("Film 7", 12.0)]
    assert unreadable == ["nonsense", "9"]


def test_inputs_are_bounded():
    assert len(parse_ratings("A 1, " * 100)[0]) == 50
    assert len(parse_ratings("A 1, " * 100, max_items=3)[0]) == 3
    ratings, unreadable = parse_ratings("x, " * 1000)
    assert ratings == [] and unreadable == ["x"] * MAX_UNREADABLE
    ratings, unreadable = parse_ratings("1" * 4096)  # title "1", a 4,095-digit number
    assert ratings == [] and unreadable == ["1" * (MAX_ECHO - 1) + "…"]
    assert parse_ratings("T" * (MAX_TITLE + 1) + " 9")[0] == []
    assert parse_ratings("T" * MAX_TITLE + " 9")[0] == [TypedRating("T" * MAX_TITLE, 9.0)]
    assert parse_ratings("x" * MAX_TEXT + ", Late 9") == ([], ["x" * (MAX_ECHO - 1) + "…"])


#: Each took 0.2-1.3 s with the old expression (it backtracks over every split of the part).
ADVERSARIAL = {
    "4,096 digits": "1" * 4096,
    "digits then a letter": "1" * 4095 + "x",
    "digits then a slash": "1" * 4095 + "/",
    "digits, slash, letter": "1" * 4094 + "/x",
    "a digit, spaces, a letter": "9" + " " * 4094 + "x",
    "a digit, dashes, a letter": "9" + "-" * 4094 + "x",
    "decimals": "1." * 2048,
    "spaced digits then a letter": "1 " * 2047 + "xx",
    "nothing but separators": ",;\n" * 1365,
}


def _fastest(text: str, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        parse_ratings(text)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_adversarial_messages_parse_in_linear_time(text):
    # Linear, this is well under a millisecond (50 ms leaves room for a slow, busy machine);
    # the fastest of 5 runs ignores a run the scheduler interrupted.
    assert _fastest(text) < 0.05
    # The same shape at a quarter of the length: linear is 4 times faster, quadratic 16 times;
    # 10 times is far from both, and the fastest runs of both sizes take scheduling noise out.
    quarter = text[: len(text) // 4 - 1] + text[-1]
    assert _fastest(text) < 10 * _fastest(quarter) + 0.002


#: What people type, and what the scan must get exactly as the expression did.
CHARS = st.sampled_from(list("ab9 0-:=\u2013\u2014/.,;\n\t\u00a0\u0663\u00b2x"))


@settings(max_examples=1500, deadline=None)
@given(st.text(CHARS, max_size=30) | st.text(max_size=30))
@example("9/10")  # title "9/", number 10: how the expression reads it
@example("1.5")
@example("\u0663 \u0664")  # Arabic-Indic digits are \d for the expression too
def test_the_scan_reads_every_part_as_the_expression_did(text):
    assert parse_ratings(text) == reference(text)


TITLES = st.from_regex(r"[A-Za-z][A-Za-z0-9 ]{0,30}", fullmatch=True).map(str.strip)
FORMS = st.sampled_from(["{t} {r}", "{t}: {r}", "{t} - {r}", "{t} {r}/10", "{t}={r}"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(TITLES, st.integers(1, 10), FORMS), min_size=1, max_size=20),
    st.sampled_from([", ", "; ", "\n", " ,\n "]),
)
def test_typed_ratings_come_back_as_typed(typed, separator):
    text = separator.join(form.format(t=title, r=rating) for title, rating, form in typed)
    ratings, unreadable = parse_ratings(text)
    assert [(r.title, r.rating) for r in ratings] == [(t, float(r)) for t, r, _ in typed]
    assert unreadable == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=6000), st.integers(1, 60))
def test_any_text_gives_bounded_clean_results(text, max_items):
    ratings, unreadable = parse_ratings(text, max_items=max_items)
    assert len(ratings) <= max_items and len(unreadable) <= MAX_UNREADABLE
    for rating in ratings:
        assert 0 < len(rating.title) <= MAX_TITLE and rating.title == rating.title.strip()
        assert not set(rating.title) & set(",;\n")
        assert rating.rating >= 0 and rating.rating != float("inf")
    assert all(0 < len(part) <= MAX_ECHO for part in unreadable)
