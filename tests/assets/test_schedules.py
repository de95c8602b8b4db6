"""The schedules ask for the right partitions."""

import datetime as dt

import dagster as dg

from assets.definitions import defs, hourly_outcomes_schedule


def test_pipeline_schedule_runs_the_hour_that_just_closed():
    sched = defs.resolve_schedule_def("hourly_pipeline_schedule")
    ctx = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 1, 2, 7, 5, tzinfo=dt.UTC)
    )
    [req] = list(sched.evaluate_tick(ctx).run_requests)
    assert req.partition_key == "2026-01-02-06:00"
    job = defs.resolve_job_def("hourly_pipeline")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {
        "raw_live_events",
        "moment_samples",
        "exposure_sequences",
    } <= keys and "live_outcomes" not in keys


def test_outcomes_schedule_waits_for_the_look_ahead():
    ctx = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 1, 2, 7, 15, tzinfo=dt.UTC)
    )
    req = hourly_outcomes_schedule(ctx)
    assert req.partition_key == "2026-01-02-03:00"
    early = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 1, 1, 2, 15, tzinfo=dt.UTC)
    )
    assert isinstance(hourly_outcomes_schedule(early), dg.SkipReason)
