"""When an asset waits for its inputs instead of failing without them."""

import datetime as dt

import dagster as dg

# Materialize a partition once all its inputs exist and none is being written: when it
# first goes missing or whenever an input is updated. Unlike AutomationCondition.eager(),
# every hour qualifies, not only the latest: a backfill's hours get their outcomes too.
WHEN_INPUTS_EXIST = (
    (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated())
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("once its inputs exist")


def when_look_ahead_exists(hours: int) -> dg.AutomationCondition:
    """WHEN_INPUTS_EXIST for an hour that reads the ``hours`` hours after it. Those of the
    newest hours lie past the last partition: they do not exist yet, and a dependency
    that does not exist does not count as missing, so the newest ``hours`` partitions are
    left out until later hours arrive."""
    return (
        WHEN_INPUTS_EXIST
        & ~dg.AutomationCondition.in_latest_time_window(lookback_delta=dt.timedelta(hours=hours))
    ).with_label(f"once its inputs and the {hours} hours after it exist")
