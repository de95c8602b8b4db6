"""What starts a run: the jobs hold the right assets, the declared dependencies name the
newest upstream partition each hour reads, ``landing_ready_sensor`` asks for the right
hour (or says why not) against a real instance and a simulated landing zone, and
``outcome_automation`` waits for the look-ahead hours."""

import datetime as dt
import json
import shutil

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.test_utils import create_run_for_test

from assets.definitions import HOURLY, defs, landing_ready_sensor
from ml.hours import HOUR_MS, landing_dir, parse_hour, partition_key
from ml.sim import SimConfig, simulate
from resources.storage import LakeStorage, LandingZone

H0 = parse_hour("2026-01-01-00:00")
K = [partition_key(H0 + i * HOUR_MS) for i in range(5)]
PIPELINE_KEYS = [k for a in HOURLY for k in a.keys]


def _keys(job_name: str) -> set[str]:
    job = defs.resolve_job_def(job_name)
    return {k.to_user_string() for k in job.asset_layer.executable_asset_keys}


def test_jobs_hold_the_catalog_and_the_hour_and_nothing_that_looks_ahead():
    pipeline = _keys("hourly_pipeline")
    assert {
        "content_catalog",
        "raw_live_events",
        "raw_short_video_events",
        "user_activity",
        "live_exposures",
        "moment_samples",
        "fast_samples",
        "slow_samples",
        "live_segments",
        "segment_windows",
        "user_history",
        "exposure_sequences",
    } == pipeline
    assert pipeline == {k.to_user_string() for k in PIPELINE_KEYS}
    assert _keys("hourly_ingestion") == {
        "content_catalog",
        "raw_live_events",
        "raw_short_video_events",
    }
    assert _keys("hourly_outcomes") == {"live_outcomes"}
    names = {j.name for j in defs.jobs}
    assert "catalog_refresh" not in names
    assert not list(defs.schedules or [])
    assert {s.name for s in defs.sensors} == {"landing_ready_sensor", "outcome_automation"}


def _parents(asset: str, key) -> set[tuple[str, str]]:
    graph = defs.resolve_asset_graph()
    res = graph.get_parents_partitions(dg.AssetKey(asset), key)
    return {(p.asset_key.to_user_string(), str(p.partition_key)) for p in res.parent_partitions}


@pytest.mark.parametrize(
    ("asset", "parents"),
    [
        # compared with the hour before (what is new, what vanished from the export)
        ("content_catalog", {("content_catalog", 4)}),
        ("raw_live_events", {("content_catalog", 5), ("raw_live_events", 4)}),
        (
            "user_activity",
            {("raw_live_events", 5), ("raw_short_video_events", 5), ("user_activity", 4)},
        ),
        # reads raw 2..5 and user_activity[2]: implied by the chains of raw[5] and activity[5]
        (
            "live_exposures",
            {("raw_live_events", 5), ("raw_short_video_events", 5), ("user_activity", 5)},
        ),
        ("moment_samples", {("raw_live_events", 5)}),
        ("live_segments", {("content_catalog", 5), ("raw_live_events", 5)}),
        (
            "user_history",
            {
                ("content_catalog", 5),
                ("raw_live_events", 5),
                ("raw_short_video_events", 5),
                ("user_history", 4),
            },
        ),
        # reads user_history[4]: implied by user_history[5]
        (
            "exposure_sequences",
            {
                ("content_catalog", 5),
                ("live_exposures", 5),
                ("raw_live_events", 5),
                ("raw_short_video_events", 5),
                ("user_history", 5),
            },
        ),
        # reads raw up to H + 3: the newest is its one declared dependency
        ("live_outcomes", {("raw_live_events", 8)}),
    ],
)
def test_declared_dependencies_name_the_newest_partition_read(asset, parents):
    hour = parse_hour("2026-01-02-00:00")
    want = {(a, partition_key(hour + h * HOUR_MS)) for a, h in parents}
    assert _parents(asset, partition_key(hour + 5 * HOUR_MS)) == want


def test_the_first_hour_has_no_previous_partition():
    assert _parents("raw_live_events", K[0]) == {("content_catalog", K[0])}
    assert _parents("content_catalog", K[0]) == set()


def test_models_depend_on_their_own_hour_and_the_previous_model():
    hour = "2026-01-02-05:00"
    key = dg.MultiPartitionKey({"hour": hour, "variant": "full-s0"})
    same = {"content_catalog", "exposure_sequences", "live_exposures"}
    same |= {"moment_samples", "fast_samples", "slow_samples"}
    assert _parents("moment_cross_model", key) == {(a, hour) for a in same} | {
        ("moment_cross_model", "2026-01-02-04:00|full-s0")
    }
    assert _parents("moment_cross_eval", key) == {
        ("live_outcomes", hour),
        ("live_predictions", f"{hour}|full-s0"),
    }


# ---- landing_ready_sensor -------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("sensor") / "home"
    simulate(SimConfig(hours=3, users=200, seed=1), str(root), progress=False)
    return root


@pytest.fixture
def landing(simulated, tmp_path):
    """A private copy of the simulated landing zone (tests break it)."""
    root = tmp_path / "home"
    shutil.copytree(simulated, root)
    return root


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def tick(instance, root):
    storage = LakeStorage(root=str(root))
    with dg.build_sensor_context(
        instance=instance, resources={"landing": LandingZone(storage=storage)}
    ) as ctx:
        return landing_ready_sensor(ctx)


def built(instance, key: str) -> None:
    """Record hour ``key`` as fully materialized (every asset of the hourly job)."""
    for asset_key in PIPELINE_KEYS:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=asset_key, partition=key)
        )


def test_nothing_built_asks_for_the_first_hour(instance, landing):
    req = tick(instance, landing)
    assert isinstance(req, dg.RunRequest), req
    assert req.partition_key == K[0]


def test_the_next_hour_once_the_one_before_is_built(instance, landing):
    built(instance, K[0])
    req = tick(instance, landing)
    assert isinstance(req, dg.RunRequest) and req.partition_key == K[1]
    # a new run key per step forward: the same hour re-asked after a fix is a new run
    built(instance, K[1])
    nxt = tick(instance, landing)
    assert nxt.partition_key == K[2] and nxt.run_key != req.run_key


def test_an_hour_built_only_in_part_is_still_the_one_asked_for(instance, landing):
    built(instance, K[0])
    for asset_key in PIPELINE_KEYS[:3]:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=asset_key, partition=K[1])
        )
    assert tick(instance, landing).partition_key == K[1]


def test_past_the_simulated_hours_it_waits_for_the_sink(instance, landing):
    for key in K[:3]:
        built(instance, key)
    skip = tick(instance, landing)
    assert isinstance(skip, dg.SkipReason)
    assert f"hour {K[3]} is not ready" in skip.skip_message
    assert f"landing/live/{landing_dir(H0 + 3 * HOUR_MS)}/_SUCCESS" in skip.skip_message


@pytest.mark.parametrize("domain", ["live", "short_video"])
def test_a_landing_hour_without_its_success_marker_is_skipped(instance, landing, domain):
    built(instance, K[0])
    marker = landing / "landing" / domain / landing_dir(H0 + HOUR_MS) / "_SUCCESS"
    marker.unlink()
    skip = tick(instance, landing)
    assert isinstance(skip, dg.SkipReason)
    assert f"hour {K[1]} is not ready" in skip.skip_message
    assert f"landing/{domain}/{landing_dir(H0 + HOUR_MS)}/_SUCCESS" in skip.skip_message
    # the sink finishes: the hour goes
    marker.write_text("{}")
    assert tick(instance, landing).partition_key == K[1]


def test_missing_segment_features_are_skipped(instance, landing):
    (landing / "landing" / "content" / landing_dir(H0) / "segments.parquet").unlink()
    skip = tick(instance, landing)
    assert isinstance(skip, dg.SkipReason)
    assert f"landing/content/{landing_dir(H0)}/segments.parquet" in skip.skip_message


def test_a_catalog_export_older_than_the_hour_is_skipped(instance, landing):
    path = landing / "landing" / "catalog" / "_SUCCESS"
    man = json.loads(path.read_text())
    assert man["as_of_ms"] == H0 + 3 * HOUR_MS  # the sim exports as of its last hour's end
    path.write_text(json.dumps({**man, "as_of_ms": H0 + HOUR_MS}))
    # the export covers hour 0 exactly (as of its end) ...
    assert tick(instance, landing).partition_key == K[0]
    built(instance, K[0])
    # ... but not hour 1
    skip = tick(instance, landing)
    assert isinstance(skip, dg.SkipReason)
    assert f"hour {K[1]} is not ready" in skip.skip_message
    assert "catalog export" in skip.skip_message and "newer export" in skip.skip_message


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (DagsterRunStatus.STARTED, "is running (STARTED)"),
        (DagsterRunStatus.STARTING, "is running (STARTING)"),
        (DagsterRunStatus.FAILURE, "its last run failed"),
    ],
)
def test_a_running_or_failed_hour_is_skipped(instance, landing, status, words):
    built(instance, K[0])
    create_run_for_test(
        instance, job_name="hourly_pipeline", tags={"dagster/partition": K[1]}, status=status
    )
    skip = tick(instance, landing)
    assert isinstance(skip, dg.SkipReason)
    assert f"hour {K[1]}" in skip.skip_message and words in skip.skip_message


def test_a_failed_run_of_another_hour_does_not_hold_this_one(instance, landing):
    create_run_for_test(
        instance,
        job_name="hourly_pipeline",
        tags={"dagster/partition": K[2]},
        status=DagsterRunStatus.FAILURE,
    )
    assert tick(instance, landing).partition_key == K[0]


def test_a_succeeded_rerun_clears_a_failure(instance, landing):
    built(instance, K[0])
    tags = {"dagster/partition": K[1]}
    create_run_for_test(
        instance, job_name="hourly_pipeline", tags=tags, status=DagsterRunStatus.FAILURE
    )
    create_run_for_test(
        instance, job_name="hourly_pipeline", tags=tags, status=DagsterRunStatus.SUCCESS
    )
    # the newest run succeeded yet the hour is not complete: it is asked for again
    assert tick(instance, landing).partition_key == K[1]


# ---- outcome_automation ---------------------------------------------------------------


def test_outcome_automation_targets_outcomes_and_evaluation_only():
    sensor = defs.resolve_sensor_def("outcome_automation")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    graph = defs.resolve_asset_graph()
    targets = sensor.asset_selection.resolve(graph)
    assert {k.to_user_string() for k in targets} == {"live_outcomes", "moment_cross_eval"}
    for key in targets:
        assert graph.get(key).automation_condition is not None
    # nothing the landing sensor runs is automated as well
    for key in PIPELINE_KEYS:
        assert graph.get(key).automation_condition is None


def raw_hours(instance, keys) -> None:
    for key in keys:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key="raw_live_events", partition=key)
        )


OUTCOMES = dg.AssetKey("live_outcomes")
# 05:30 on the first day: hours 00 .. 04 exist (the last complete hour is 04:00)
AT = dt.datetime(2026, 1, 1, 5, 30, tzinfo=dt.UTC)


def test_outcomes_wait_for_the_look_ahead_hours(instance):
    sel = dg.AssetSelection.assets("live_outcomes")
    raw_hours(instance, K[:4])
    first = dg.evaluate_automation_conditions(
        defs, instance, asset_selection=sel, evaluation_time=AT
    )
    # outcomes[0] reads raw 0..3: all there; outcomes[1] needs raw[4], not there yet
    assert first.get_requested_partitions(OUTCOMES) & set(K[:2]) == {K[0]}
    raw_hours(instance, K[4:5])
    second = dg.evaluate_automation_conditions(
        defs, instance, asset_selection=sel, evaluation_time=AT, cursor=first.cursor
    )
    # raw[4] came: outcomes[1] goes, outcomes[0] (requested before) is not asked again
    assert second.get_requested_partitions(OUTCOMES) & set(K[:2]) == {K[1]}


def test_outcomes_are_not_requested_before_their_look_ahead_hours_exist(instance):
    sel = dg.AssetSelection.assets("live_outcomes")
    raw_hours(instance, K[:5])  # every hour there is at 05:30
    res = dg.evaluate_automation_conditions(defs, instance, asset_selection=sel, evaluation_time=AT)
    # outcomes[2..4] need raw[5..7]: hours that have not happened yet
    assert res.get_requested_partitions(OUTCOMES) == {K[0], K[1]}


# ---- what a backfill targets ------------------------------------------------------------


def test_an_asset_backfill_of_hours_targets_those_hours_and_nothing_past_them(instance):
    """Picking hours A..B of the hourly assets (the UI's Materialize selected) targets
    exactly A..B of each one, and the outcomes only where their look-ahead ends in A..B."""
    from assets.backfill import submit_backfill

    picked = K[1:5]
    selection = [*PIPELINE_KEYS, dg.AssetKey("live_outcomes")]
    bid = submit_backfill(instance, selection, picked, "targets")
    data = instance.get_backfill(bid).asset_backfill_data
    targets = {
        k.to_user_string(): set(data.target_subset.get_partitions_subset(k).get_partition_keys())
        for k in data.target_subset.asset_keys
    }
    for key in PIPELINE_KEYS:
        assert targets[key.to_user_string()] == set(picked), key
    # outcomes[H] is declared on raw[H + 3], its newest input: 3 and 4 are picked, so
    # outcomes 0 and 1 (made computable by the picked hours), none past them
    assert targets["live_outcomes"] == {K[0], K[1]}
