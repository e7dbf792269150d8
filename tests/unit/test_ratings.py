"""Rating scales: the documented mapping, thresholds, and bad specs."""

import numpy as np
import pytest

from recommender.errors import ConfigError
from recommender.ratings import RatingScale


def test_one_to_five_likes_four_and_five_dislikes_one_and_two():
    scale = RatingScale.parse("1..5")
    weights, valid = scale.weights([1, 2, 3, 4, 5, 0, 6, np.nan])
    assert weights.tolist()[:5] == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert valid.tolist() == [True] * 5 + [False] * 3


def test_one_to_ten_has_a_neutral_middle_fifth():
    scale = RatingScale.parse("1..10")
    assert [scale.weight(r) for r in (1, 4, 5, 6, 7, 10)] == [-4.5, -1.5, 0.0, 0.0, 1.5, 4.5]


def test_explicit_thresholds_count_steps_from_them():
    scale = RatingScale.parse("1..10:7:4")
    assert [scale.weight(r) for r in (1, 4, 5, 6, 7, 10)] == [-4.0, -1.0, 0.0, 0.0, 1.0, 4.0]
    assert RatingScale.from_dict(scale.to_dict()) == scale


def test_half_star_scales_work():
    scale = RatingScale.parse("0.5..5")
    assert scale.weight(5.0) == pytest.approx(2.25) and scale.weight(2.5) == 0.0
    assert scale.weight(0.5) == pytest.approx(-2.25)


@pytest.mark.parametrize("spec", ["5..1", "1-5", "1..5:2:4", "1..5:9:1", "a..b", ""])
def test_bad_specs_are_config_errors(spec):
    with pytest.raises(ConfigError):
        RatingScale.parse(spec)


def test_a_malformed_manifest_record_gives_no_scale():
    assert RatingScale.from_dict({"spec": "nonsense"}) is None
    assert RatingScale.from_dict(None) is None
