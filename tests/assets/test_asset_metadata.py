"""A UI that explains itself: every table asset's materialization carries its column schema
and row count, figures that chart per partition are plain numbers, speed figures sit apart
under ``speed/``, reason tables are sorted by count, previews show readable times; every
asset has owners, stage/layer tags and a plain-words description, and so does every check,
job, schedule and sensor."""

import base64
import re

import dagster as dg
import pyarrow as pa
import pytest

from assets import metadata as M
from assets.definitions import defs
from ml.io.lake import partition_dir
from ml.io.store import Store
from ml.schema import GSUS, TASKS
from ml.sim import SimConfig, simulate
from tests.dagster_helpers import ASSETS, CHECKS, resources

KEY = "2026-01-01-00:00"
TABLES = [
    "raw_live_events", "raw_short_video_events", "user_activity", "live_exposures",
    "moment_samples", "fast_samples", "slow_samples", "live_segments", "user_history",
    "exposure_sequences",
]  # fmt: skip
SAMPLES = ("moment_samples", "fast_samples", "slow_samples")
OLD_SPEED_KEYS = {"events_per_s", "rows_per_s", "exposures_per_s", "replay_samples_per_s"}
TAG_VALUE = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")


# ---- the helpers --------------------------------------------------------------------------
def test_arrow_type_names_and_column_schema():
    schema = pa.schema(
        [
            pa.field("item_id", pa.int64(), nullable=False),
            ("embedding", pa.list_(pa.float32(), 32)),
            ("seq", pa.list_(pa.int64())),
            ("name", pa.string()),
        ]
    )
    cs = M.column_schema(schema)
    assert [(c.name, c.type) for c in cs.columns] == [
        ("item_id", "int64"),
        ("embedding", "fixed_size_list<float>[32]"),
        ("seq", "list<int64>"),
        ("name", "string"),
    ]
    assert cs.columns[0].constraints.nullable is False
    meta = M.table_metadata(schema, 7)
    assert meta["dagster/row_count"] == 7 and meta["dagster/column_schema"] == cs
    assert "| embedding | fixed_size_list<float>[32] |" in M.schema_md(schema).value


def test_counts_table_most_frequent_first_ties_by_name():
    md = M.counts_table({"b_reason": 2, "a_reason": 2, "rare": 1, "common": 9}, "reason", 14)
    order = [line.split("|")[1].strip() for line in md.value.splitlines()[2:]]
    assert order == ["common", "a_reason", "b_reason", "rare"]
    assert "64.2857%" in md.value


def test_preview_shows_epoch_ms_as_iso_utc_and_leaves_durations():
    t = pa.table(
        {
            "event_time_ms": pa.array([1_767_225_600_123, None], pa.int64()),
            "watch_ms": pa.array([65_000, 1_000], pa.int64()),
            "raw_line": pa.array([b"x", b"y"]),
            "embedding": pa.array([[0.5] * 8, [0.25] * 8], pa.list_(pa.float32(), 8)),
        }
    )
    md = M.preview(t).value
    assert "2026-01-01T00:00:00.123+00:00" in md
    assert "| 65000 |" in md and "raw_line" not in md
    assert "(8)]" in md  # a long list is cut short


def test_asset_tags_and_speed_keys():
    assert M.asset_tags("ingest", "raw") == {"stage": "ingest", "layer": "raw"}
    with pytest.raises(ValueError):
        M.asset_tags("ingestion", "raw")
    assert M.speed(events_per_s=10, seconds=0.5) == {"speed/events_per_s": 10, "speed/seconds": 0.5}


# ---- the definitions ----------------------------------------------------------------------
def _plain(text: str | None) -> bool:
    return bool(text and text.strip()) and "DESIGN" not in text and "§" not in text


def test_every_asset_has_owners_stage_layer_and_a_plain_description():
    graph = defs.resolve_asset_graph()
    keys = list(graph.get_all_asset_keys())
    assert len(keys) >= 15
    for key in keys:
        node = graph.get(key)
        name = key.to_user_string()
        assert node.owners and all(o.startswith("team:") for o in node.owners), name
        assert node.tags.get("stage") in M.STAGES, name
        assert node.tags.get("layer") in M.LAYERS, name
        assert all(TAG_VALUE.match(node.tags[k]) for k in ("stage", "layer")), name
        assert _plain(node.description), name


def test_every_check_job_schedule_and_sensor_has_a_plain_description():
    for check in defs.asset_checks or []:
        for spec in check.check_specs:
            assert _plain(spec.description), spec.key.to_user_string()
    for job in defs.resolve_all_job_defs():
        if not job.name.startswith("__"):  # Dagster's implicit asset job
            assert _plain(job.description), job.name
    for item in [*(defs.schedules or []), *(defs.sensors or [])]:
        assert _plain(getattr(item, "description", None)), getattr(item, "name", item)


# ---- one simulated hour, materialized -----------------------------------------------------
@pytest.fixture(scope="module")
def hour(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ui") / "home")
    simulate(SimConfig(hours=1, users=300, seed=5, bad_rate=0.01), root, progress=False)
    res = resources(root)
    selection = ["content_catalog", *TABLES]  # the catalog of the hour, then its tables
    r = dg.materialize(
        ASSETS + CHECKS,
        selection=dg.AssetSelection.assets(*selection).without_checks(),
        partition_key=KEY,
        resources=res,
    )
    assert r.success
    meta = {
        e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
        for e in r.get_asset_materialization_events()
    }
    return Store(root), meta


@pytest.mark.slow
def test_every_table_carries_its_column_schema_and_row_count(hour):
    lake, meta = hour
    for name in TABLES:
        m = meta[name]
        schema = m["dagster/column_schema"].value
        assert isinstance(schema, dg.TableSchema), name
        published = lake.read_published(partition_dir(name, KEY))
        assert [c.name for c in schema.columns] == published.column_names, name
        assert m["dagster/row_count"].value == published.num_rows, name
    catalog = meta["content_catalog"]
    cols = {c.name: c.type for c in catalog["dagster/column_schema"].value.columns}
    assert cols["embedding"] == "fixed_size_list<float>[32]"
    assert "| author_type |" in catalog["schema/authors"].value
    seq = {
        c.name: c.type for c in meta["exposure_sequences"]["dagster/column_schema"].value.columns
    }
    assert re.fullmatch(r"fixed_size_list<int64>\[\d+\]", seq["sv_short_item_id"])


@pytest.mark.slow
def test_per_partition_figures_are_numbers_and_speed_sits_apart(hour):
    _, meta = hour
    for name in SAMPLES:
        for t in TASKS:
            v = meta[name][f"label_rate/{t}"]
            assert isinstance(v, dg.FloatMetadataValue) and 0.0 <= v.value <= 1.0, (name, t)
    for g in GSUS:
        v = meta["exposure_sequences"][f"gsu_fill/{g}"]
        assert isinstance(v, dg.FloatMetadataValue) and 0.0 <= v.value <= 1.0, g
    for name in ("raw_live_events", "raw_short_video_events", "live_segments"):
        assert isinstance(meta[name]["quarantine_rate"], dg.FloatMetadataValue), name
    assert meta["raw_live_events"]["quarantine_rate"].value > 0  # bad_rate=0.01
    expected = {
        "raw_live_events": "events_per_s",
        "user_history": "rows_per_s",
        "exposure_sequences": "exposures_per_s",
        "live_exposures": "exposures_per_s",
    }
    for name, key in expected.items():
        assert isinstance(meta[name][f"speed/{key}"].value, int), name
        assert isinstance(meta[name]["speed/seconds"].value, float), name
    for name, m in meta.items():
        assert not OLD_SPEED_KEYS & set(m), name
        for k, v in m.items():
            if k.startswith("speed/"):
                assert isinstance(v.value, int | float), (name, k)


@pytest.mark.slow
def test_reasons_sorted_previews_readable_plots_decode(hour):
    _, meta = hour
    rows = meta["raw_live_events"]["quarantine_reasons"].value.splitlines()[2:]
    counts = [int(r.split("|")[2]) for r in rows]
    assert counts and counts == sorted(counts, reverse=True)
    assert re.search(
        r"\| 2026-01-01T00:\d\d:\d\d\.\d{3}\+00:00 \|", meta["raw_live_events"]["preview"].value
    )
    assert "T00:" in meta["live_exposures"]["preview"].value
    for name, key in [
        ("live_exposures", "impressions_per_5_minutes"),
        ("fast_samples", "label_rate_plot"),
    ]:
        md = meta[name][key].value
        data = base64.b64decode(md[md.index("base64,") + 7 : -1])
        assert data.startswith(b"\x89PNG"), (name, key)
