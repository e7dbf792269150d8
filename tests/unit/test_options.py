"""Option values an operator types: sizes, durations, the quality-drop bound."""

from __future__ import annotations

import argparse

import pytest

from recommender.cli import make_parser
from recommender.cli.options import byte_size, duration, int_list, optional_duration, quality_drop


@pytest.mark.parametrize(
    ("text", "expected"),
    [("256MB", 256_000_000), ("2GiB", 2 << 30), ("1.5 GiB", 3 << 29), ("100000", 100_000)],
)
def test_byte_size_reads_decimal_and_binary_units(text: str, expected: int) -> None:
    assert byte_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "12XB", "-5MB", "1KB"])
def test_byte_size_refuses_nonsense_and_tiny_budgets(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        byte_size(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("30s", 30.0), ("15m", 900.0), ("12h", 43200.0), ("2w", 1209600.0)],
)
def test_duration_units(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "-1h", "h", "5y", "1.2.3s"])
def test_duration_refuses_zero_negative_and_unknown_units(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)


def test_off_switches() -> None:
    assert optional_duration("off") is None
    assert optional_duration("6h") == 21600.0
    assert quality_drop("OFF") is None
    assert quality_drop("0.05") == 0.05
    with pytest.raises(argparse.ArgumentTypeError):
        quality_drop("1")


def test_int_list() -> None:
    assert int_list("5, 10,20") == [5, 10, 20]
    for bad in ("", "a,b", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            int_list(bad)


def test_builder_command_line_reads_units(capsys: pytest.CaptureFixture[str]) -> None:
    args = make_parser().parse_args(
        ["build", "events", "1000", "50000", "--half-life", "7d", "--tune-budget", "2m"]
    )
    assert (args.half_life, args.tune_budget) == (604800.0, 120.0)
    with pytest.raises(SystemExit):
        make_parser().parse_args(["serve", "--fresh-memory", "lots"])
    assert "expected a size such as 256MB" in capsys.readouterr().err


def test_duration_lists_take_the_half_life_units():
    from recommender.cli.options import duration_list

    assert duration_list("1d, 12h,90") == [86400.0, 43200.0, 90.0]
    for bad in ("", "1d,soon", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            duration_list(bad)


def test_the_batch_window_is_bounded_milliseconds():
    from recommender.cli.options import batch_window_ms

    assert batch_window_ms("0") == 0.0 and batch_window_ms("2.5") == 2.5
    for bad in ("-1", "101", "nan", "soon"):
        with pytest.raises(argparse.ArgumentTypeError):
            batch_window_ms(bad)


def test_a_family_setting_is_typed_checked_and_applied_whenever_that_family_is(tmp_path):
    from recommender.builder import BuilderConfig
    from recommender.errors import ConfigError
    from recommender.store import LocalStore

    args = make_parser().parse_args(
        ["build", "t", "10", "100", "--model-setting", "ease_lambda=200",
         "--model-setting", "knn_weighting=bm25", "--model-setting", "ease_binary=false"]
    )  # fmt: skip
    settings = dict(args.model_setting)
    assert settings == {"ease_lambda": 200, "knn_weighting": "bm25", "ease_binary": False}

    def config(**kw):
        return BuilderConfig(
            topic="t", retrain_every=10, window_events=100, store=LocalStore(tmp_path), **kw
        )

    ease = config(family_settings=settings).setting_for("ease", {"ease_lambda": 5.0})
    assert ease is not None and ease.params == {"ease_lambda": 200.0, "ease_binary": False}
    with pytest.raises(ConfigError, match="unknown setting"):
        config(family_settings={"ease_lamda": 1.0})
    with pytest.raises(ConfigError, match="--model is knn"):
        config(model="knn", family_settings={"ease_lambda": 1.0})
    with pytest.raises(ConfigError, match="names start with a family"):
        config(family_settings={"factors": 8})


def test_with_a_half_life_on_plain_events_item_item_families_learn_the_decayed_weights(tmp_path):
    from recommender.builder import BuilderConfig
    from recommender.ratings import RatingScale
    from recommender.store import LocalStore

    def setting(family, **kw):
        config = BuilderConfig(
            topic="t", retrain_every=10, window_events=100, store=LocalStore(tmp_path), **kw
        )
        found = config.setting_for(family, {})
        assert found is not None
        return found.params

    assert setting("ease")["ease_binary"] is True
    assert setting("ease", half_life_seconds=3600.0)["ease_binary"] is False
    assert setting("knn", half_life_seconds=3600.0)["knn_binary"] is False
    # Ratings: likes as 1 stays (their magnitudes measured worse), unless the operator says.
    scale = RatingScale.parse("1..5")
    assert setting("rp3beta", half_life_seconds=3600.0, ratings=scale)["rp3beta_binary"] is True
    given = {"ease_binary": True}
    assert setting("ease", half_life_seconds=3600.0, family_settings=given)["ease_binary"] is True
