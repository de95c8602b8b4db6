"""Volume gates: an hour's rows against the median of the hours before it."""

import pytest

from ml.quality.volume import MIN_BASELINE_ROWS, volume_verdict


def test_an_hour_in_the_band_passes_and_one_outside_fails():
    assert volume_verdict(1000, [900, 1100, 1000]).passed
    low = volume_verdict(400, [900, 1100, 1000])
    assert not low.passed and low.ratio == pytest.approx(0.4)
    assert "0.40 x the median of the previous 3 hour(s), outside [0.5, 2.0]" in low.reason
    assert not volume_verdict(2100, [1000, 1000, 1000]).passed
    # the edges of the band pass
    assert volume_verdict(500, [1000]).passed and volume_verdict(2000, [1000]).passed


def test_the_baseline_is_the_median_so_one_odd_hour_does_not_move_it():
    v = volume_verdict(1000, [1000, 10, 1000])
    assert v.baseline == 1000 and v.passed


def test_nothing_to_compare_with_passes_with_the_reason():
    first = volume_verdict(5, [])
    assert first.passed and first.baseline is None and "no previous hour" in first.reason
    tiny = volume_verdict(0, [MIN_BASELINE_ROWS - 1] * 3)
    assert tiny.passed and "too small to judge" in tiny.reason


def test_a_band_that_is_not_low_high_is_an_error():
    with pytest.raises(ValueError, match="low < high"):
        volume_verdict(1, [1000], band=(2.0, 0.5))
