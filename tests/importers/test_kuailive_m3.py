"""The KuaiLive-M3 importer on a hand-made fixture in the published layout: every table
mapped as documented, bad input counted and kept, same bytes on every run, and the
pipeline's own ingestion accepting the result unchanged."""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from ml import schema as S
from ml.hours import HOUR_MS, landing_dir
from ml.importers.kuailive_common import reduce_embedding
from ml.importers.kuailive_m3 import REPORT, import_kuailive, main
from ml.importers.kuailive_segments import rebucket
from ml.importers.kuailive_source import MissingColumnError, MissingTableError
from ml.ingest.catalog import ingest_catalog
from ml.ingest.landing_hour import ingest_hours
from ml.io.store import Store
from tests.fixtures_kuailive import (
    ROOM_START,
    SEC,
    SEGMENT_ENDS,
    T0,
    bad_rows,
    clean_tables,
    write_kuailive,
)

ROOT = Path(__file__).resolve().parents[2]
HOURS = [T0 + i * HOUR_MS for i in range(3)]
SMALL = {"batch_rows": 3, "spill_mb": 0.001, "progress": False}  # many batches and spills


def run_import(src, out, **kw):
    return import_kuailive(src, out, **{**SMALL, **kw})


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    base = tmp_path_factory.mktemp("kl")
    tables = write_kuailive(base / "src")
    summary = run_import(base / "src", base / "out")
    return SimpleNamespace(
        base=base, src=base / "src", out=base / "out", store=Store(str(base / "out")),
        tables=tables, summary=summary,
    )  # fmt: skip


# ---- the reference mapping (the module docstring, written out row by row) ---------------------
def eid(prefix: str, row: int, sub: int = 0) -> str:
    return f"KL-{prefix}-{row * 100_000 + sub:016d}"


def expected_events(t: dict) -> dict[str, list[tuple]]:
    """(event_id, event_type, user, item, author, time) of every event the tables imply."""
    room_author = {r["live_id"]: r["author_id"] for r in t["live_room_meta"]}
    live, sv = [], []
    for i, r in enumerate(t["live_show"], 1):
        live.append(
            (
                eid("show", i),
                "impression",
                r["user_id"],
                r["live_id"],
                r["author_id"],
                r["show_timestamp"],
            )
        )
    for i, r in enumerate(t["live_interaction"], 1):
        s, e, base = (
            r["live_play_start_timestamp"],
            r["live_play_end_timestamp"],
            (r["user_id"], r["live_id"], r["author_id"]),
        )
        live += [(eid("sess", i, 0), "enter", *base, s), (eid("sess", i, 1), "exit", *base, e)]
        gifts = r["send_gift_cnt"] or (1 if r["send_gift_num"] > 0 else 0)
        for kind, n, sub in (("follow", r["follow_author_cnt"], 10_000), ("gift", gifts, 20_000)):
            live += [
                (eid("sess", i, sub + k), kind, *base, s + (k + 1) * (e - s) // (n + 1))
                for k in range(n)
            ]
    for i, r in enumerate(t["live_like"], 1):
        live.append(
            (
                eid("like", i),
                "like",
                r["user_id"],
                r["live_id"],
                room_author[r["live_id"]],
                r["like_timestamp"],
            )
        )
    for i, r in enumerate(t["live_comment"], 1):
        live.append(
            (
                eid("cmnt", i),
                "comment",
                r["user_id"],
                r["live_stream_id"],
                r["author_id"],
                r["comment_ts"],
            )
        )
    for i, r in enumerate(t["live_share"], 1):
        live.append(
            (
                eid("shar", i),
                "share",
                r["user_id"],
                r["live_id"],
                r["author_id"],
                r["share_timestamp"],
            )
        )
    for i, r in enumerate(t["photo_play"], 1):
        base, leave = (r["user_id"], r["photo_id"], r["author_id"]), r["leave_timestamp"]
        sv += [
            (eid("play", i, 0), "impression", *base, r["enter_timestamp"]),
            (eid("play", i, 1), "play", *base, leave),
        ]
        if r["like_status_type"] == 1:
            sv.append((eid("play", i, 2), "like", *base, leave))
        if r["is_follow_after_play"] == 1 and r["is_follow_before_play"] != 1:
            sv.append((eid("play", i, 3), "follow", *base, leave))
    return {S.LIVE: sorted(live), S.SHORT_VIDEO: sorted(sv)}  # fmt: skip


def landing_events(store: Store, domain: str) -> list[dict]:
    out = []
    for d in store.list_dirs(f"landing/{domain}"):
        for name in store.list(f"landing/{domain}/{d}", ".jsonl.gz"):
            body = gzip.decompress(store.read_bytes(f"landing/{domain}/{d}/{name}"))
            out += [json.loads(line) | {"_hour": d} for line in body.splitlines()]
    return out


def as_tuples(events: list[dict]) -> list[tuple]:
    keys = ("event_id", "event_type", "user_id", "item_id", "author_id", "event_time_ms")
    return sorted(tuple(e[k] for k in keys) for e in events)


def landing_bytes(root: Path) -> dict[str, bytes]:
    base = root / "landing"
    return {
        str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()
    }


# ---- mapping ------------------------------------------------------------------------------------
@pytest.mark.parametrize("domain", S.DOMAINS)
def test_every_event_the_tables_imply_lands_once_in_its_report_hour(clean, domain):
    got = landing_events(clean.store, domain)
    assert as_tuples(got) == expected_events(clean.tables)[domain]
    for e in got:
        assert e["report_time_ms"] == e["event_time_ms"]
        assert e["_hour"] == landing_dir(e["event_time_ms"] - e["event_time_ms"] % HOUR_MS)
        assert e["page"] in S.PAGES
    types = Counter(e["event_type"] for e in got)
    t = clean.tables
    if domain == S.LIVE:
        assert types == {
            "impression": len(t["live_show"]), "enter": len(t["live_interaction"]),
            "exit": len(t["live_interaction"]), "like": len(t["live_like"]),
            "comment": len(t["live_comment"]), "share": len(t["live_share"]),
            "follow": sum(r["follow_author_cnt"] for r in t["live_interaction"]),
            "gift": sum(r["send_gift_cnt"] or int(r["send_gift_num"] > 0) for r in t["live_interaction"]),
        }  # fmt: skip
    else:
        plays = t["photo_play"]
        assert types == {
            "impression": len(plays), "play": len(plays),
            "like": sum(r["like_status_type"] == 1 for r in plays),
            "follow": sum(r["is_follow_after_play"] == 1 and r["is_follow_before_play"] != 1 for r in plays),
        }  # fmt: skip
    assert clean.summary.events[domain] == len(got)


def test_values_pages_and_line_order(clean):
    live = {e["event_id"]: e for e in landing_events(clean.store, S.LIVE)}
    sessions = clean.tables["live_interaction"]
    for i, r in enumerate(sessions, 1):
        assert live[eid("sess", i, 1)]["watch_ms"] == r["play_duration"]
    assert [live[eid("sess", i)]["page"] for i in range(1, 6)] == [
        "follow", "live_square", "search", "feed", "feed"
    ]  # fmt: skip
    sv = {e["event_id"]: e for e in landing_events(clean.store, S.SHORT_VIDEO)}
    durations = {r["photo_id"]: r["duration"] for r in clean.tables["photo_meta"]}
    for i, r in enumerate(clean.tables["photo_play"], 1):
        play = sv[eid("play", i, 1)]
        assert play["watch_ms"] == r["leave_timestamp"] - r["enter_timestamp"]
        assert play["duration_ms"] == durations[r["photo_id"]]
    assert sv[eid("play", 5, 0)]["page"] == "explore"  # DISCOVER
    for domain in S.DOMAINS:  # lines sorted by (report_time_ms, event_id), like the simulator
        for h in HOURS:
            body = gzip.decompress(
                clean.store.read_bytes(f"landing/{domain}/{landing_dir(h)}/part-00000.jsonl.gz")
            )
            keys = [
                (e["report_time_ms"], e["event_id"]) for e in map(json.loads, body.splitlines())
            ]
            assert keys == sorted(keys) and keys


def test_gifts_and_follows_are_placed_inside_their_session(clean):
    live = landing_events(clean.store, S.LIVE)
    for i, r in enumerate(clean.tables["live_interaction"], 1):
        prefix = eid("sess", i)[:-5]
        mine = [e for e in live if e["event_id"].startswith(prefix)]
        s, e_ = r["live_play_start_timestamp"], r["live_play_end_timestamp"]
        for kind in ("gift", "follow"):
            times = sorted(e["event_time_ms"] for e in mine if e["event_type"] == kind)
            assert all(s < t < e_ for t in times), (i, kind, times)
            assert len(set(times)) == len(times)  # evenly spaced, distinct
        gifts = [e["gift_value"] for e in mine if e["event_type"] == "gift"]
        assert math.isclose(sum(gifts), r["send_gift_num"]) or not gifts


def test_catalog_tables_and_taxonomy(clean):
    store, t = clean.store, clean.tables
    taxonomy = json.loads(store.read_bytes("landing/catalog/taxonomy.json"))["categories"]
    assert taxonomy == sorted({r["first_level_category_name"] for r in t["photo_tag"]})
    authors = {
        r["author_id"]: r for r in store.read_parquet("landing/catalog/authors.parquet").to_pylist()
    }
    ix = taxonomy.index
    assert authors[101]["author_type"] == "game" and authors[101]["primary_category"] == ix("游戏")
    assert authors[101]["secondary_category"] == ix("生活")  # tie 1:1 -> smaller index first
    assert authors[104]["author_type"] == "talent" and authors[104]["secondary_category"] == -1
    assert authors[103]["primary_category"] == ix("美食") and authors[103][
        "secondary_category"
    ] == ix("音乐")
    assert authors[102]["primary_category"] == -1 and authors[102]["author_type"] == "chat"
    assert [authors[a]["hosts_live"] for a in (101, 102, 103, 104)] == [True, True, False, False]
    q = {a: authors[a]["quality"] for a in authors}
    assert q[103] < q[102] < q[101] < q[104] and all(0 < v < 1 for v in q.values())
    videos = store.read_parquet("landing/catalog/short_videos.parquet").to_pylist()
    tag = {r["photo_id"]: ix(r["first_level_category_name"]) for r in t["photo_tag"]}
    first_play = {}
    for r in t["photo_play"]:
        first_play[r["photo_id"]] = min(
            first_play.get(r["photo_id"], r["enter_timestamp"]), r["enter_timestamp"]
        )
    assert [v["item_id"] for v in videos] == [r["photo_id"] for r in t["photo_meta"]]
    for v in videos:
        assert v["category"] == tag[v["item_id"]]
        assert v["publish_time_ms"] == first_play[v["item_id"]]
    rooms = store.read_parquet("landing/catalog/rooms.parquet").to_pylist()
    assert [(r["item_id"], r["start_ms"], r["end_ms"]) for r in rooms] == [
        (r["live_id"], r["start_timestamp"], r["end_timestamp"]) for r in t["live_room_meta"]
    ]
    assert [r["category"] for r in rooms] == [ix("游戏"), -1, ix("游戏")]  # the author's primary


def test_embeddings_are_reduced_deterministically_with_the_contract_shapes(clean):
    x = np.random.default_rng(0).standard_normal((5, 128)).astype(np.float32)
    a, b = reduce_embedding(x), reduce_embedding(x.copy())
    assert a.shape == (5, S.EMBED_DIM) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-6)
    assert not reduce_embedding(np.zeros((1, 64))).any()
    videos = clean.store.read_parquet("landing/catalog/short_videos.parquet")
    assert videos.schema.field("embedding").type == S.embedding_type()
    src = {r["photo_id"]: r["feature"] for r in clean.tables["photo_emb_128"]}
    for row in videos.to_pylist():
        full = np.asarray(src[row["item_id"]], np.float32)
        assert row["has_embedding"] and np.array_equal(
            np.asarray(row["embedding_full"], np.float32), full
        )
        assert np.allclose(row["embedding"], reduce_embedding(full[None])[0])
    rooms = clean.store.read_parquet("landing/catalog/rooms.parquet")
    assert {len(v) for v in rooms.column("embedding_full").to_pylist()} == {64}
    seg = clean.store.read_parquet(f"landing/content/{landing_dir(HOURS[0])}/segments.parquet")
    visual = np.asarray(seg.column("visual").to_pylist()).reshape(-1, 3, S.EMBED_DIM)
    assert np.allclose(np.linalg.norm(visual, axis=2), 1, atol=1e-5)
    assert not np.asarray(seg.column("asr").to_pylist()).any()
    assert seg.select(S.SEGMENTS_SCHEMA.names).schema == S.SEGMENTS_SCHEMA


# ---- segments ----------------------------------------------------------------------------------
def test_rebucketing_is_exact_on_a_hand_made_case():
    e = np.eye(4)
    # room 7 (start 0): ends 20 s (a), 25 s (b), 70 s (c); room 8 (start 1 s): one source
    # segment ending 45 s later (d); room 9 (start 0): 30 s (a), then c ending 15 min later,
    # which covers only its last 10 minutes (a gap of segments 1..10).
    room = np.array([7, 7, 7, 8, 9, 9])
    start = np.array([0, 0, 0, 1_000, 0, 0])
    end = np.array([20_000, 25_000, 70_000, 46_000, 30_000, 930_000])
    feat = e[[0, 1, 2, 3, 0, 2]]
    bk = rebucket(room, start, end, feat)
    assert bk.room.tolist() == [7, 7, 7, 8, 8] + [9] * 21
    assert bk.index.tolist() == [0, 1, 2, 0, 1, 0, *range(11, 31)]
    assert bk.start.tolist()[:5] == [0, 30_000, 60_000, 1_000, 31_000]
    a, b, c, d = e
    assert np.allclose(bk.frames[0], [a, a, (b + c) / 2])
    assert np.allclose(bk.frames[1], [c, c, c])
    assert np.allclose(bk.frames[2], [c, c, c])  # [60, 70) covered, the tail repeats it
    assert bk.frame_ms[:5].tolist() == [[10_000] * 3, [10_000] * 3, [10_000, 0, 0],
                                         [10_000] * 3, [10_000, 5_000, 0]]  # fmt: skip
    assert np.allclose(bk.mean[0], (2 * a + (b + c) / 2) / 3)
    assert np.allclose(bk.frames[4], [d, d, d])
    assert np.allclose(bk.frames[5], [a, a, a]) and np.allclose(bk.frames[6:], c)
    # averaging in the projected space = projecting the averages
    r = np.random.default_rng(1).standard_normal((4, 3))
    projected = rebucket(room, start, end, feat, r)
    assert np.allclose(projected.frames, bk.frames @ r) and np.allclose(projected.mean, bk.mean)


def test_fixture_segments_by_end_hour(clean):
    segs = pa.concat_tables(
        clean.store.read_parquet(f"landing/content/{landing_dir(h)}/segments.parquet")
        for h in HOURS
    )
    per_room = Counter(segs.column("room_id").to_pylist())
    assert per_room == {r: math.ceil(ends[-1] / 30) for r, ends in SEGMENT_ENDS.items()}
    assert clean.summary.segments == segs.num_rows
    for h in HOURS:
        seg = clean.store.read_parquet(f"landing/content/{landing_dir(h)}/segments.parquet")
        end = np.asarray(seg.column("segment_end_ms"))
        assert ((end >= h) & (end < h + HOUR_MS)).all()
    rows = segs.to_pylist()
    for r in rows:
        assert r["segment_start_ms"] == ROOM_START[r["room_id"]] + 30_000 * r["segment_index"]
        assert r["author_id"] == {3001: 101, 3002: 102, 3003: 101}[r["room_id"]]
    last = [r for r in rows if r["room_id"] == 3002][-1]
    assert last["coverage_ms"] == (118 - 90) * SEC


# ---- bad input, window, missing things -------------------------------------------------------------
def test_bad_rows_are_counted_kept_with_their_reason_and_change_nothing_else(clean, tmp_path):
    write_kuailive(tmp_path / "src", bad=True)
    summary = run_import(tmp_path / "src", tmp_path / "out")
    store = Store(str(tmp_path / "out"))
    report = json.loads(store.read_bytes(REPORT))
    base = clean_tables()
    total = 0
    for table, rows in bad_rows().items():
        want = Counter(reason for _, reason in rows)
        assert report["tables"][table]["rejected"] == dict(want), table
        rejects = store.read_parquet(f"landing/_import_rejects/{table}.parquet").to_pylist()
        assert Counter(r["reason"] for r in rejects) == want
        for k, (row, reason) in enumerate(rows):
            if reason == "malformed_row":
                hit = [r for r in rejects if r["reason"] == reason]
                assert hit and row in json.loads(hit[0]["row"])["text"]
                continue
            n = len(base[table]) + k + 1  # appended after the clean rows
            if table == "live_emb_128_ts":  # sharded: row numbers are within the shard
                assert any(r["reason"] == reason for r in rejects)
                continue
            hit = [r for r in rejects if r["row_number"] == n]
            assert [h["reason"] for h in hit] == [reason], (table, n)
            assert hit[0]["source_file"].startswith(table)
        total += len(rows)
    assert report["rejected"] == summary.rejected == total
    # the good rows land exactly as without the bad ones
    got, ref = landing_bytes(tmp_path / "out"), landing_bytes(clean.out)
    same = {k for k in ref if not k.startswith("_import")}
    assert {k: got[k] for k in same} == {k: ref[k] for k in same}


def test_window_counts_rows_outside_it(clean, tmp_path):
    summary = run_import(clean.src, tmp_path / "out", start="2026-01-01-01:00", hours=1)
    store = Store(str(tmp_path / "out"))
    assert summary.hours == ["2026-01-01-01"]
    assert store.list_dirs("landing/live") == ["2026-01-01-01"]
    report = json.loads(store.read_bytes(REPORT))
    for domain in S.DOMAINS:
        every = expected_events(clean.tables)[domain]
        inside = [e for e in every if HOURS[1] <= e[-1] < HOURS[2]]
        assert as_tuples(landing_events(store, domain)) == inside
    n_events = sum(len(v) for v in expected_events(clean.tables).values())
    n_inside = sum(summary.events.values())
    seg_out = report["tables"]["live_emb_128_ts"]["outside_range"]
    assert report["outside_range"] == summary.outside_range == n_events - n_inside + seg_out
    assert report["tables"]["live_show"]["outside_range"] == sum(
        not HOURS[1] <= r["show_timestamp"] < HOURS[2] for r in clean.tables["live_show"]
    )
    assert seg_out + summary.segments == clean.summary.segments and seg_out > 0
    assert report["window"] == {"start": "2026-01-01-01:00", "hours": 1}


def test_missing_column_is_one_clear_error_naming_file_and_column(tmp_path, capsys):
    write_kuailive(tmp_path / "src")
    like = pcsv.read_csv(tmp_path / "src" / "live_like.csv").drop_columns(["like_timestamp"])
    pcsv.write_csv(like, tmp_path / "src" / "live_like.csv")
    with pytest.raises(
        MissingColumnError, match=r"live_like\.csv: missing column 'like_timestamp'"
    ):
        run_import(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out" / "landing").exists()  # checked before anything is written
    show = pq.read_table(tmp_path / "src" / "live_show.parquet").drop_columns(["show_timestamp"])
    pq.write_table(show, tmp_path / "src" / "live_show.parquet")
    os.remove(tmp_path / "src" / "live_like.csv")
    assert main(["--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "live_show.parquet: missing column 'show_timestamp'" in err and "Traceback" not in err


def test_missing_tables(tmp_path):
    write_kuailive(tmp_path / "src", omit=("live_comment", "photo_emb_128", "user_id_set"))
    summary = run_import(tmp_path / "src", tmp_path / "out")
    report = json.loads(Store(str(tmp_path / "out")).read_bytes(REPORT))
    assert report["tables"]["live_comment"] == {"files": [], "missing": True}
    assert any("live_comment not found" in w for w in report["warnings"])
    assert summary.warnings == report["warnings"]
    videos = Store(str(tmp_path / "out")).read_parquet("landing/catalog/short_videos.parquet")
    assert not any(videos.column("has_embedding").to_pylist())
    assert "comment" not in {
        e["event_type"] for e in landing_events(Store(str(tmp_path / "out")), S.LIVE)
    }
    write_kuailive(tmp_path / "src2", omit=("photo_meta",))
    with pytest.raises(MissingTableError, match="required table 'photo_meta'"):
        run_import(tmp_path / "src2", tmp_path / "out2")


# ---- determinism ---------------------------------------------------------------------------------
def test_same_input_same_bytes_and_reruns_replace_hours_whole(clean, tmp_path):
    run_import(clean.src, tmp_path / "again", batch_rows=1000, spill_mb=100)
    first = landing_bytes(clean.out)
    assert landing_bytes(tmp_path / "again") == first  # also independent of batch sizes
    stale = clean.out / "landing" / "live" / landing_dir(HOURS[0]) / "part-00099.jsonl.gz"
    stale.write_bytes(b"left over")
    run_import(clean.src, clean.out)
    assert landing_bytes(clean.out) == first
    assert not [p for p in clean.out.iterdir() if p.name.startswith(".kuailive")]  # no spill left


def test_cli(clean, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ml.importers.kuailive_m3"]
    for args, needle in (
        (["--src", str(clean.src), "--out", str(tmp_path), "--hours", "0"], "must be >= 1"),
        (
            ["--src", str(clean.src), "--out", str(tmp_path), "--start", "2026-13-01-00:00"],
            "invalid hour",
        ),
        (["--src", str(tmp_path / "nope"), "--out", str(tmp_path)], "is not a directory"),
        (
            ["--src", str(clean.src), "--out", str(tmp_path), "--hours", "2"],
            "--hours needs --start",
        ),
    ):
        r = subprocess.run(
            cmd + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 2, r.stderr
        assert needle in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [*cmd, "--src", str(clean.src), "--out", str(tmp_path / "out"), "--start", "2026-01-01-00:00", "--hours", "3"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") == 1 and "kuailive_m3:" in r.stdout and "3 h" in r.stdout
    assert landing_bytes(tmp_path / "out").keys() == landing_bytes(clean.out).keys()


# ---- the pipeline's ingestion on the imported hours -------------------------------------------------
def test_ingestion_accepts_the_imported_landing_zone_unchanged(clean):
    cat = ingest_catalog(clean.store)
    assert cat.conserved() and cat.quarantine.num_rows == 0
    assert cat.rows_in == {"authors": 4, "short_videos": 6, "rooms": 3}
    expected = expected_events(clean.tables)
    for domain, table in ((S.LIVE, "rooms"), (S.SHORT_VIDEO, "short_videos")):
        known = cat.tables[table].column("item_id")
        results = ingest_hours(clean.store, domain, HOURS[0], len(HOURS), known_items=known)
        for h, res in zip(HOURS, results, strict=True):
            assert res.conserved() and res.quarantine.num_rows == 0, res.manifest()
            want = sorted(e for e in expected[domain] if h <= e[-1] < h + HOUR_MS)
            assert as_tuples(res.clean.to_pylist()) == want


def test_dagster_materializes_the_imported_hours(clean, tmp_path):
    import dagster as dg

    from assets.ingestion import content_catalog, raw_live_events, raw_short_video_events
    from assets.ingestion_checks import ingestion_checks
    from resources.device import Device
    from resources.storage import LakeStorage, LandingZone

    storage = LakeStorage(root=str(tmp_path / "lake"))
    resources = {
        "storage": storage,
        "landing": LandingZone(storage=storage, root=str(clean.out)),
        "device": Device(kind="cpu"),
    }
    defs = [content_catalog, raw_live_events, raw_short_video_events, *ingestion_checks]
    expected = expected_events(clean.tables)
    instance = dg.DagsterInstance.ephemeral()
    for h in HOURS[:2]:
        key = f"{landing_dir(h)}:00"
        res = dg.materialize(
            defs,
            selection=dg.AssetSelection.assets(
                "content_catalog", "raw_live_events", "raw_short_video_events"
            ),
            partition_key=key, resources=resources, instance=instance,
        )  # fmt: skip
        assert res.success
        for domain, asset in (
            (S.LIVE, "raw_live_events"),
            (S.SHORT_VIDEO, "raw_short_video_events"),
        ):
            meta = res.asset_materializations_for_node(asset)[0].metadata
            assert meta["quarantined"].value == 0 and meta["duplicates"].value == 0
            want = sum(h <= e[-1] < h + HOUR_MS for e in expected[domain])
            assert meta["dagster/row_count"].value == want


def test_label_assets_run_on_the_imported_hours(clean, tmp_path):
    """The Moment side (exposures, the three streams, segments) on the imported fixture:
    one exposure per imported impression, exactly one moment label per task, and with
    report time = event time no positive is ever late *in reporting* (slow samples come
    only from positives that happen late in a watch)."""
    import dagster as dg

    from assets.definitions import MOMENT_ASSET_NAMES, defs
    from ml.moment.sessions import TASKS
    from resources.device import Device
    from resources.storage import LakeStorage, LandingZone

    storage = LakeStorage(root=str(tmp_path / "lake"))
    resources = {
        "storage": storage,
        "landing": LandingZone(storage=storage, root=str(clean.out)),
        "device": Device(kind="cpu"),
    }
    assets = list(defs.assets)
    hourly = MOMENT_ASSET_NAMES
    lake = Store(str(tmp_path / "lake"))
    expected = expected_events(clean.tables)
    for h in HOURS:
        key = f"{landing_dir(h)}:00"
        res = dg.materialize(
            assets,
            selection=dg.AssetSelection.assets(*hourly),
            partition_key=key,
            resources=resources,
        )
        assert res.success
        ex = lake.read_published(f"lake/live_exposures/{key}")
        impressions = [
            e for e in expected[S.LIVE] if e[1] == "impression" and h <= e[-1] < h + HOUR_MS
        ]
        assert ex.num_rows == len(impressions)
        seg = lake.read_published(f"lake/live_segments/{key}")
        imported = clean.store.read_parquet(f"landing/content/{landing_dir(h)}/segments.parquet")
        assert seg.num_rows == imported.num_rows
        for sample in ("moment_samples", "fast_samples", "slow_samples"):
            t = lake.read_published(f"lake/{sample}/{key}")
            assert (
                pc.less_equal(t.column("label_cutoff_ms"), t.column("emit_ms"))
            ).to_pylist() == [True] * t.num_rows
    moment = pa.concat_tables(
        [lake.read_published(f"lake/moment_samples/{landing_dir(h)}:00") for h in HOURS]
    ).to_pandas()
    assert moment.exposure_id.nunique() > 0
    for task in TASKS:
        assert (moment.groupby("exposure_id")[f"m_{task}"].sum() <= 1).all()
