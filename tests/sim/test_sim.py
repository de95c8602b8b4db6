"""The platform simulator, judged on the files it writes (read back with gzip/json/pyarrow)."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq
import pytest

from ml import schema as S
from ml.hours import HOUR_MS, landing_dir, parse_hour
from ml.io.store import Store
from ml.sim import SimConfig, SimSummary, simulate
from ml.sim.bad import PLANTED_REASONS

ROOT = Path(__file__).resolve().parents[2]
BASE = SimConfig(start="2026-01-01-00:00", hours=4, users=8000, seed=11, dup_rate=0.005)
BAD = SimConfig(hours=2, users=2000, seed=5, bad_rate=0.03, corrupt_files=1)
EVENT_DIRS = ("landing/live", "landing/short_video")


def _run(factory, name: str, cfg: SimConfig) -> tuple[Path, SimSummary]:
    root = factory.mktemp(name)
    return root, simulate(cfg, str(root), progress=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return _run(tmp_path_factory, "base", BASE)


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return _run(tmp_path_factory, "bad", BAD)


def all_files(root: Path, under: tuple[str, ...] = ("",)) -> dict[str, bytes]:
    out = {}
    for u in under:
        for p in sorted((root / u).rglob("*")):
            if p.is_file():
                out[str(p.relative_to(root))] = p.read_bytes()
    return out


def lines_of(path: Path) -> list[bytes]:
    data = gzip.decompress(path.read_bytes())
    return data.split(b"\n")[:-1] if data else []


def event_files(root: Path, domain: str) -> list[Path]:
    return sorted((root / "landing" / domain).glob("*/*.jsonl.gz"))


def events(root: Path, domain: str) -> pd.DataFrame:
    opts = pj.ParseOptions(explicit_schema=S.RAW_EVENT_SCHEMA)
    tables = [
        pj.read_json(io.BytesIO(gzip.decompress(p.read_bytes())), parse_options=opts)
        for p in event_files(root, domain)
    ]
    return pa.concat_tables(tables).to_pandas()


def oracle(root: Path, name: str) -> pd.DataFrame:
    paths = sorted((root / "oracle" / name).glob("*/*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in paths]).to_pandas()


def catalog_items(root: Path, domain: str) -> set[int]:
    name = "rooms" if domain == S.LIVE else "short_videos"
    return set(
        pq.read_table(root / f"landing/catalog/{name}.parquet").column("item_id").to_pylist()
    )


def classify(line: bytes, domain: str, hour_ms: int, known: set[int]) -> str | None:
    """An independent reading of schema.QUARANTINE_REASONS: first applicable reason, or None."""
    if not line.strip():
        return "empty_line"
    try:
        obj = json.loads(line)
    except ValueError:
        return "malformed_json"
    if not isinstance(obj, dict):
        return "malformed_json"
    for f in S.RAW_EVENT_SCHEMA:
        v = obj.get(f.name)
        if v is None:
            continue
        if pa.types.is_string(f.type):
            ok = isinstance(v, str)
        elif pa.types.is_integer(f.type):
            ok = isinstance(v, int) and not isinstance(v, bool)
        else:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if not ok:
            return "wrong_type"
    if any(obj.get(k) in (None, "") for k in S.ID_FIELDS):
        return "missing_id"
    if obj["event_type"] not in S.EVENT_TYPES[domain]:
        return "unknown_event_type"
    if any(obj.get(k) is None for k in S.REQUIRED_BY_TYPE[domain].get(obj["event_type"], ())):
        return "missing_field"
    if any(obj.get(k) is None for k in S.TIME_FIELDS):
        return "missing_time"
    et, rt = obj["event_time_ms"], obj["report_time_ms"]
    if not hour_ms <= rt < hour_ms + HOUR_MS:
        return "report_time_outside_partition"
    if et < S.MIN_VALID_TIME_MS or et < rt - S.MAX_REPORT_DELAY_MS:
        return "event_time_absurd"
    if et > rt + S.CLOCK_SKEW_MS:
        return "event_after_report"
    watch, dur, gift = (obj.get(k) for k in ("watch_ms", "duration_ms", "gift_value"))
    if any(v is not None and v < 0 for v in (watch, dur, gift)):
        return "negative_value"
    if (
        (watch or 0) > S.MAX_WATCH_MS
        or (dur or 0) > S.MAX_DURATION_MS
        or (gift or 0) > S.MAX_GIFT_VALUE
    ):
        return "absurd_value"
    if obj["item_id"] not in known:
        return "unknown_item"
    return None


# ---- determinism ------------------------------------------------------------------------------


def test_same_seed_same_bytes_different_seed_different(base, tmp_path_factory):
    root, _ = base
    again, _ = _run(tmp_path_factory, "again", BASE)
    a, b = all_files(root), all_files(again)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    other, _ = _run(tmp_path_factory, "other", BASE.replace(seed=12, hours=1))
    f = "landing/live/2026-01-01-00/part-00000.jsonl.gz"
    assert (other / f).read_bytes() != (root / f).read_bytes()
    assert (other / "landing/catalog/rooms.parquet").read_bytes() != a[
        "landing/catalog/rooms.parquet"
    ]


def test_shorter_run_is_a_byte_identical_prefix(base, tmp_path_factory):
    root, _ = base
    short, _ = _run(tmp_path_factory, "short", BASE.replace(hours=2))
    s = all_files(short, (*EVENT_DIRS, "landing/content", "oracle/live_exposures"))
    assert len([k for k in s if k.endswith(".jsonl.gz")]) == 4
    full = all_files(root)
    assert [k for k in s if full.get(k) != s[k]] == []
    # the catalog grows: every room of the short run is in the long one
    assert catalog_items(short, S.LIVE) <= catalog_items(root, S.LIVE)


def test_same_bytes_on_s3(s3_env, tmp_path):
    cfg = SimConfig(hours=1, users=300, seed=3, bad_rate=0.01)
    simulate(cfg, str(tmp_path / "local"), progress=False)
    s3 = Store(f"s3://{s3_env}/sim")
    simulate(cfg, s3, progress=False)
    local = all_files(tmp_path / "local")
    for rel, data in local.items():
        assert s3.read_bytes(rel) == data, rel


# ---- layout and validity -----------------------------------------------------------------------


def test_layout_schemas_and_summary(base):
    root, summary = base
    start = parse_hour(BASE.start)
    for i in range(BASE.hours):
        hour = landing_dir(start + i * HOUR_MS)
        for d in ("live", "short_video"):
            names = sorted(p.name for p in (root / "landing" / d / hour).iterdir())
            assert names == ["_SUCCESS", "part-00000.jsonl.gz"]
            assert (
                json.loads((root / "landing" / d / hour / "_SUCCESS").read_bytes())["hour"] == hour
            )
        seg = pq.read_table(root / f"landing/content/{hour}/segments.parquet")
        assert seg.schema.equals(S.SEGMENTS_SCHEMA) and seg.num_rows > 0
        end = seg.column("segment_end_ms").to_numpy()
        assert ((end >= start + i * HOUR_MS) & (end < start + (i + 1) * HOUR_MS)).all()
        assert (root / f"oracle/live_exposures/{hour}/part-00000.parquet").exists()
        assert (root / f"oracle/segments/{hour}/part-00000.parquet").exists()
    for name, schema in S.CATALOG_TABLES.items():
        assert pq.read_schema(root / f"landing/catalog/{name}.parquet").equals(schema), name
    assert (root / "landing/catalog/_SUCCESS").exists()
    rooms = pq.read_table(root / "landing/catalog/rooms.parquet").column("item_id").to_numpy()
    videos = (
        pq.read_table(root / "landing/catalog/short_videos.parquet").column("item_id").to_numpy()
    )
    assert rooms.min() > videos.max()
    users = pq.read_table(root / "oracle/users.parquet")
    assert users.num_rows == BASE.users and users.schema.field("interest").type.list_size == 32
    assert json.loads((root / "oracle/sim_config.json").read_text())["seed"] == BASE.seed
    for d in S.DOMAINS:
        n = sum(len(lines_of(p)) for p in event_files(root, d))
        assert n == summary.lines[d] == sum(summary.events[d].values())


def test_every_landing_line_is_a_valid_event(base):
    root, _ = base
    strict = pj.ParseOptions(explicit_schema=S.RAW_EVENT_SCHEMA, unexpected_field_behavior="error")
    for domain in S.DOMAINS:
        known = catalog_items(root, domain)
        seen: dict[str, dict] = {}
        for k, path in enumerate(event_files(root, domain)):
            hour_ms = parse_hour(path.parent.name)
            data = gzip.decompress(path.read_bytes())
            # every file: typed parse (no unknown field, ints are ints) and vectorised rules
            t = pj.read_json(io.BytesIO(data), parse_options=strict).to_pandas()
            assert len(t) == data.count(b"\n") and data.endswith(b"\n")
            assert t.report_time_ms.between(hour_ms, hour_ms + HOUR_MS - 1).all()
            assert (t.event_time_ms < t.report_time_ms).all()
            assert t.event_type.isin(S.EVENT_TYPES[domain]).all() and t.page.isin(S.PAGES).all()
            assert t.item_id.isin(known).all()
            for etype, required in S.REQUIRED_BY_TYPE[domain].items():
                assert t.loc[t.event_type == etype, list(required)].notna().all().all()
            by_key = t.sort_values(["report_time_ms", "event_id"], kind="stable")
            assert (by_key.index == t.index).all()
            if domain == S.SHORT_VIDEO and k > 0:
                continue
            # all live lines and one short-video hour: line by line, JSON types exactly
            for line in data.splitlines():
                assert classify(line, domain, hour_ms, known) is None, line
                obj = json.loads(line)
                if domain == S.SHORT_VIDEO:
                    assert obj["duration_ms"] > 0
                if obj["event_type"] == "gift":
                    assert isinstance(obj["gift_value"], float) and obj["gift_value"] > 0
                prev = seen.setdefault(obj["event_id"], obj)
                if prev is not obj:  # a re-delivery: same event, later report
                    assert {**prev, "report_time_ms": 0} == {**obj, "report_time_ms": 0}


# ---- the generative model ------------------------------------------------------------------------


def test_click_rate_as_calibrated_and_rises_with_highlight(base):
    ex = oracle(base[0], "live_exposures")
    assert 0.3 <= ex.entered.mean() <= 0.5  # auto-play slide feed (SimConfig.b0)
    lo, hi = ex.highlight.quantile([0.25, 0.75])
    low, high = ex.entered[ex.highlight <= lo].mean(), ex.entered[ex.highlight >= hi].mean()
    # P(enter) is logistic in the highlight: compare odds (ratios of probabilities shrink
    # as the click rate approaches 1/2)
    assert high > 1.5 * low
    assert (high / (1 - high)) / (low / (1 - low)) > 2.5
    assert ex.p_enter.corr(ex.entered.astype(float)) > 0.1
    seg = oracle(base[0], "segments")
    assert np.corrcoef(seg.highlight, seg.true_ctr)[0, 1] > 0.7
    assert seg.true_ctr.between(0, 1).all()


def test_live_is_about_a_tenth_of_exposures(base):
    live, sv = events(base[0], S.LIVE), events(base[0], S.SHORT_VIDEO)
    n_live = live.event_id[live.event_type == "impression"].nunique()
    n_sv = sv.event_id[sv.event_type == "impression"].nunique()
    assert 0.06 <= n_live / (n_live + n_sv) <= 0.15


def test_gifts_come_long_after_the_impression(base):
    live = events(base[0], S.LIVE).drop_duplicates("event_id")
    imp = live[live.event_type == "impression"][["user_id", "item_id", "event_time_ms"]]
    gifts = live[live.event_type == "gift"][["user_id", "item_id", "event_time_ms"]]
    m = pd.merge_asof(
        gifts.sort_values("event_time_ms"),
        imp.rename(columns={"event_time_ms": "t0"}).sort_values("t0"),
        left_on="event_time_ms",
        right_on="t0",
        by=["user_id", "item_id"],
    ).dropna()
    delay_min = (m.event_time_ms - m.t0) / 60_000
    assert len(m) >= 30
    assert (delay_min > 5).mean() >= 0.2
    assert (delay_min > 60).sum() >= 1


def test_low_live_activity_cohort(base):
    root = base[0]
    live, sv = events(root, S.LIVE), events(root, S.SHORT_VIDEO)
    users = pq.read_table(root / "oracle/users.parquet").to_pandas().set_index("user_id")
    n_live = live[live.event_type == "impression"].groupby("user_id").size()
    n_sv = sv[sv.event_type == "impression"].groupby("user_id").size()
    active = n_sv[n_sv >= 5].index
    live_of_active = n_live.reindex(active, fill_value=0)
    assert (live_of_active <= 1).mean() >= 0.25
    share = live_of_active / (live_of_active + n_sv[active])
    cohort = users.low_live_cohort.reindex(active)
    assert 0.3 <= users.low_live_cohort.mean() <= 0.5
    assert share[cohort].mean() < 0.2 * share[~cohort].mean()


def test_interests_are_shared_across_domains(base):
    root = base[0]
    live, sv = events(root, S.LIVE), events(root, S.SHORT_VIDEO)
    video_cat = pq.read_table(root / "landing/catalog/short_videos.parquet").to_pandas()
    room_cat = pq.read_table(root / "landing/catalog/rooms.parquet").to_pandas()
    plays = sv[sv.event_type == "play"].merge(video_cat[["item_id", "category"]], on="item_id")
    enters = live[live.event_type == "enter"].merge(room_cat[["item_id", "category"]], on="item_id")
    hist = {}
    for name, df in (("sv", plays), ("live", enters)):
        h = np.zeros((BASE.users + 1, BASE.categories))
        np.add.at(h, (df.user_id.to_numpy(), df.category.to_numpy()), 1)
        hist[name] = h
    ok = (hist["sv"].sum(1) >= 5) & (hist["live"].sum(1) >= 2)
    a, b = hist["sv"][ok], hist["live"][ok]
    assert ok.sum() >= 100

    def cos(x, y):
        return ((x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)).mean()

    shuffled = b[np.random.default_rng(0).permutation(len(b))]
    assert cos(a, b) > 1.5 * cos(a, shuffled)


def test_duplicates_and_late_reports(base):
    root, summary = base
    dups = pq.read_table(root / "oracle/duplicates.parquet").to_pandas()
    assert set(dups.domain) == set(S.DOMAINS)
    gap = dups.duplicate_report_time_ms - dups.original_report_time_ms
    assert (gap > 0).all() and (gap < HOUR_MS).all()
    assert (dups.original_hour != dups.duplicate_hour).sum() >= 1
    for domain in S.DOMAINS:
        ev = events(root, domain)
        counts = ev.event_id.value_counts()
        repeated = set(counts[counts > 1].index)
        assert repeated == set(dups.event_id[dups.domain == domain])
        delay = ev.report_time_ms - ev.event_time_ms
        assert (delay > 0).all()
        assert (delay > HOUR_MS).sum() >= 1
        assert (delay < 4 * HOUR_MS).all()
    assert sum(summary.late.values()) > 0


# ---- bad input -----------------------------------------------------------------------------------


def test_bad_records_cover_every_class_and_are_where_recorded(bad):
    root, summary = bad
    rec = pq.read_table(root / "oracle/bad_records.parquet").to_pandas()
    assert set(rec.reason) == set(PLANTED_REASONS)
    assert len(rec) == sum(summary.bad_lines.values())
    real_ids = set()
    for domain in S.DOMAINS:
        for p in event_files(root, domain):
            if not rec[(rec.file == str(p.relative_to(root))) & rec.in_corrupt_file].empty:
                continue
            for line in lines_of(p):
                if line.startswith(b'{"event_id":"' + (b"L" if domain == S.LIVE else b"S")):
                    real_ids.add(json.loads(line)["event_id"])
    checked = 0
    for (file, domain, hour), grp in rec[~rec.in_corrupt_file].groupby(["file", "domain", "hour"]):
        lines = lines_of(root / file)
        known = catalog_items(root, domain)
        for line_number, reason in zip(grp.line_number, grp.reason, strict=True):
            got = classify(lines[line_number - 1], domain, parse_hour(hour), known)
            assert got == reason, (file, line_number, lines[line_number - 1])
            checked += 1
    assert checked >= 13
    assert not set(rec.event_id.dropna()) & real_ids


def test_corrupt_file_is_truncated_mid_stream(bad):
    root, summary = bad
    corrupt = pq.read_table(root / "oracle/corrupt_files.parquet").to_pandas()
    assert len(corrupt) == BAD.corrupt_files == summary.corrupt_files
    for file, written in zip(corrupt.file, corrupt.written_bytes, strict=True):
        data = (root / file).read_bytes()
        assert len(data) == written
        d = zlib.decompressobj(wbits=31)
        try:
            d.decompress(data)
            assert not d.eof
        except zlib.error:
            pass


# ---- interfaces ----------------------------------------------------------------------------------


def test_cli_runs_and_rejects_bad_arguments(tmp_path):
    out = tmp_path / "cli"
    ok = subprocess.run(
        [sys.executable, "-m", "ml.sim", "--out", str(out), "--start", "2026-01-01-05",
         "--hours", "1", "--users", "200", "--seed", "4", "--dup-rate", "0.01"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("\n") == 1 and "lines" in ok.stdout
    assert (out / "landing/live/2026-01-01-05/part-00000.jsonl.gz").exists()
    for args, word in (
        (["--hours", "0"], "--hours"),
        (["--start", "2026-01-01 05:00"], "--start"),
        (["--bad-rate", "abc"], "--bad-rate"),
        (["--corrupt-files", "5", "--hours", "1"], "corrupt_files"),
        (["--set", "nope=1"], "--set"),
    ):
        r = subprocess.run(
            [sys.executable, "-m", "ml.sim", "--out", str(tmp_path / "x"), *args],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
        assert r.returncode == 2, (args, r.stderr)
        assert word in r.stderr and "Traceback" not in r.stderr


def test_config_validation():
    with pytest.raises(ValueError, match="hours"):
        SimConfig(hours=0)
    with pytest.raises(ValueError, match="start"):
        SimConfig(start="2026-01-01")
    with pytest.raises(ValueError, match="bad_rate"):
        SimConfig(bad_rate=0.7)
    assert SimConfig(start="2026-01-01-03").start_ms == parse_hour("2026-01-01-03:00")
