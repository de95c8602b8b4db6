"""The hint a user gets for a partition key Dagster does not know."""

from assets.partitions import partition_key_hint


def test_the_hint_gives_the_format_and_the_range():
    hint = partition_key_hint(None)
    assert "YYYY-MM-DD-HH:00 (UTC), from 2026-01-01-00:00 (LIVECROSS_START)" in hint
    assert "'2026-01-01-00:00|full-s0'" in hint


def test_a_key_of_another_shape_gets_the_key_it_meant():
    assert "Did you mean --partition 2026-01-01-05:00?" in partition_key_hint("2026-01-01T05")
    assert "Did you mean --partition 2026-01-01-05:00?" in partition_key_hint("2026-01-01-05")


def test_a_well_formed_key_outside_the_partitions_says_so():
    assert "outside the partitions" in partition_key_hint("2025-12-31-23:00")
    assert "Did you mean" not in partition_key_hint("garbage")
