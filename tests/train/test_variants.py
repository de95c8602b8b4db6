"""Variant keys are validated before they pick a configuration or become a path."""

import pytest

from ml.io.lake import checked_variant, variant_dir
from ml.train.variants import (
    DEFAULT_VARIANT,
    VARIANT_KEYS,
    VARIANTS,
    parse_variant,
    variant_configs,
)


def test_every_variant_key_parses_to_its_configuration():
    assert DEFAULT_VARIANT in VARIANT_KEYS and len(VARIANT_KEYS) == 3 * len(VARIANTS)
    model, train = variant_configs("no_cross-s2")
    assert not model.use_cross and train.seed == 2
    assert variant_configs("fast_slow-s0")[1].streams == ("fast", "slow")
    assert variant_configs("stale_5m-s1")[1].freshness == "5m"
    assert variant_dir("live_predictions", "full-s0", "2026-01-01-03:00") == (
        "lake/live_predictions/full-s0/2026-01-01-03:00"
    )


@pytest.mark.parametrize(
    "bad", ["", "full", "full-s", "nope-s0", "../x-s0", "full-s0/..", "Full-s0"]
)
def test_a_bad_variant_key_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="variant"):
        parse_variant(bad)


@pytest.mark.parametrize("bad", ["../etc-s0", "full-s0/x", "full-s0 ", "full-sx"])
def test_a_bad_variant_never_becomes_a_path(bad):
    with pytest.raises(ValueError, match="invalid variant key"):
        checked_variant(bad)
    with pytest.raises(ValueError):
        variant_dir("moment_cross_model", bad, "2026-01-01-00:00")
    with pytest.raises(ValueError):
        variant_dir("moment_cross_model", "full-s0", "2026-01-01-00:00/../x")
