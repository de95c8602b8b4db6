"""The user history store: what counts as an interaction, the action codes, the merge
(order, the 10,000 cap, determinism), sharding and re-sharding, catalog references, and
hour-by-hour building on simulated logs equal to building it at once."""

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml import schema as S
from ml.cross.catalog_view import CatalogView
from ml.cross.cross_hour import history_hour
from ml.cross.history import (
    ACTION_CODES,
    COLUMNS,
    DEFAULT_CAP,
    FLAG_LONG_VIEW,
    HISTORY_SCHEMA,
    LIVE_BASE,
    empty_columns,
    interactions,
    merge,
    publish_streaming,
    read_shard,
    read_shard_for,
    resolve_catalog,
    shard_name,
    shard_of,
    split_shards,
    take,
    to_columns,
    to_table,
    user_ranges,
)
from ml.io.store import Store, parquet_bytes
from ml.moment.sessions import LONG_VIEW_MS
from ml.schema import SV_LONG_VIEW_RATIO

H = 1_767_225_600_000


def catalog(n_videos=3, n_rooms=2):
    emb = pa.FixedSizeListArray.from_arrays(pa.array(np.ones(32 * n_videos, np.float32)), 32)
    remb = pa.FixedSizeListArray.from_arrays(pa.array(np.ones(32 * n_rooms, np.float32)), 32)
    sv = pa.table(
        {
            "item_id": np.arange(10, 10 + n_videos, dtype=np.int64)[::-1].copy(),  # not sorted
            "author_id": np.full(n_videos, 1, np.int64),
            "category": np.arange(n_videos, dtype=np.int32) + 3,
            "embedding": emb,
        }
    )
    rooms = pa.table(
        {
            "item_id": np.arange(50, 50 + n_rooms, dtype=np.int64),
            "author_id": np.full(n_rooms, 2, np.int64),
            "category": np.arange(n_rooms, dtype=np.int32) + 20,
            "embedding": remb,
        }
    )
    return CatalogView.from_tables(sv, rooms)


def raw(rows):
    """rows: (event_id, type, user, item, report_ms, watch, duration, gift)."""
    names = ["event_id", "event_type", "user_id", "item_id", "report_time_ms", "watch_ms",
             "duration_ms", "gift_value"]  # fmt: skip
    d = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    d["author_id"] = [7] * len(rows)
    d["event_time_ms"] = [r - 50 for r in d["report_time_ms"]]
    d["page"] = ["feed"] * len(rows)
    return pa.table(d, schema=S.CLEAN_EVENT_SCHEMA) if rows else S.CLEAN_EVENT_SCHEMA.empty_table()


def test_action_codes_are_one_small_int_per_interaction_type():
    codes = list(ACTION_CODES.values())
    assert len(set(codes)) == len(codes) and 0 not in codes and max(codes) < 128
    for (domain, etype), code in ACTION_CODES.items():
        assert etype in S.EVENT_TYPES[domain] and etype != "impression"
        assert (code >= LIVE_BASE) == (domain == S.LIVE)
    # every event type but impressions is an interaction
    for domain, types in S.EVENT_TYPES.items():
        assert {t for (d, t) in ACTION_CODES if d == domain} == set(types) - {"impression"}


def test_interactions_values_flags_and_catalog_refs():
    cat = catalog()
    sv = raw(
        [
            ("s1", "impression", 1, 10, H + 1, None, None, None),
            ("s2", "play", 1, 10, H + 2, 30_000, 60_000, None),  # ratio 0.5: long view
            ("s3", "play", 1, 11, H + 3, 29_999, 60_000, None),  # just short of half
            ("s4", "like", 1, 12, H + 4, None, None, None),
            ("s5", "play", 1, 99, H + 5, 10, 20, None),  # unknown video
        ]
    )
    live = raw(
        [
            ("l1", "impression", 1, 50, H + 1, None, None, None),
            ("l2", "enter", 1, 50, H + 2, None, None, None),
            ("l3", "exit", 1, 50, H + 6, LONG_VIEW_MS, None, None),
            ("l4", "gift", 1, 51, H + 7, None, None, 12.5),
            ("l5", "exit", 1, 51, H + 8, LONG_VIEW_MS - 1, None, None),
        ]
    )
    t = interactions(live, sv, cat).to_pandas()
    assert t.shape[0] == 8  # impressions are not interactions
    assert t.report_time_ms.is_monotonic_increasing
    play = t[t.action == ACTION_CODES[S.SHORT_VIDEO, "play"]]
    assert play.value.tolist() == [30_000, 29_999, 10]
    assert play.watch_ratio.tolist() == pytest.approx([0.5, 29_999 / 60_000, 0.5])
    assert play["flags"].tolist() == [FLAG_LONG_VIEW, 0, FLAG_LONG_VIEW]
    assert SV_LONG_VIEW_RATIO == 0.5
    # catalog rows: videos are stored in reverse id order, rooms in order
    assert play.emb_row.tolist() == [2, 1, -1] and play.category.tolist() == [5, 4, -1]
    ex = t[t.action == ACTION_CODES[S.LIVE, "exit"]]
    assert ex["flags"].tolist() == [FLAG_LONG_VIEW, 0] and ex.emb_row.tolist() == [0, 1]
    gift = t[t.action == ACTION_CODES[S.LIVE, "gift"]]
    assert gift.value.tolist() == [12.5] and gift.category.tolist() == [21]
    assert pa.Table.from_pandas(t, preserve_index=False).schema.names == HISTORY_SCHEMA.names


def test_interactions_sort_by_user_report_time_then_event_id():
    cat = catalog()
    sv = raw([("b", "like", 2, 10, H + 5, None, None, None), ("a", "share", 2, 11, H + 5, None, None, None),
              ("c", "like", 1, 12, H + 9, None, None, None)])  # fmt: skip
    live = raw([("0", "enter", 2, 50, H + 5, None, None, None)])
    t = interactions(live, sv, cat).to_pandas()
    assert t.user_id.tolist() == [1, 2, 2, 2]
    # same user, same report time: event ids "0" < "a" < "b"
    assert t.item_id.tolist() == [12, 50, 11, 10]


def rows(user, times, item=10, action=1):
    n = len(times)
    return {
        "user_id": np.full(n, user, np.int64),
        "report_time_ms": np.asarray(times, np.int64),
        "event_time_ms": np.asarray(times, np.int64) - 1,
        "item_id": np.full(n, item, np.int64),
        "author_id": np.full(n, 1, np.int64),
        "action": np.full(n, action, np.int8),
        "category": np.zeros(n, np.int32),
        "emb_row": np.zeros(n, np.int32),
        "value": np.zeros(n),
        "watch_ratio": np.zeros(n, np.float32),
        "flags": np.zeros(n, np.int8),
    }


def cat_cols(*parts):
    return {c: np.concatenate([p[c] for p in parts]) for c in COLUMNS}


def test_cap_keeps_exactly_the_newest_10000():
    old = cat_cols(rows(1, np.arange(10_003)), rows(2, [5, 6]))
    new = cat_cols(rows(1, H + np.arange(5), item=11), rows(3, [H]))
    merged, stats = merge(old, new)
    u = merged["user_id"]
    assert (u == 1).sum() == DEFAULT_CAP and stats.evicted == 8 and stats.max_len == DEFAULT_CAP
    t1 = merged["report_time_ms"][u == 1]
    assert t1[0] == 8 and t1[-1] == H + 4  # the oldest 8 went
    assert np.all(np.diff(t1) > 0)
    assert merged["item_id"][u == 1][-5:].tolist() == [11] * 5
    assert u.tolist() == [1] * DEFAULT_CAP + [2, 2, 3]
    # the hour alone can overflow the cap too
    merged, stats = merge(empty_columns(), rows(4, np.arange(12)), cap=10)
    assert merged["report_time_ms"].tolist() == list(range(2, 12)) and stats.evicted == 2


def test_merge_puts_each_users_new_rows_after_the_old_and_rejects_disorder():
    old = cat_cols(rows(1, [1, 2]), rows(3, [1]))
    new = cat_cols(rows(2, [H]), rows(3, [H, H]))
    merged, stats = merge(old, new)
    assert merged["user_id"].tolist() == [1, 1, 2, 3, 3, 3]
    assert merged["report_time_ms"].tolist() == [1, 2, H, 1, H, H]
    assert (stats.rows, stats.users, stats.evicted) == (6, 3, 0)
    with pytest.raises(ValueError, match="not sorted"):
        merge(cat_cols(rows(1, [H + 10])), rows(1, [H]))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 1000)), max_size=120),
    st.lists(st.tuples(st.integers(0, 8), st.integers(0, 1000)), max_size=60),
    st.integers(1, 20),
)
def test_merge_equals_naive_append_and_tail(old_rows, new_rows, cap):
    def build(rs, base):
        rs = sorted(rs)
        parts = [rows(u, [base + t]) for u, t in rs]
        return cat_cols(*parts) if parts else empty_columns()

    old, new = build(old_rows, 0), build(new_rows, 10_000)
    old, _ = merge(empty_columns(), old, cap)  # a valid (capped) history[H-1]
    merged, _ = merge(old, new, cap)
    df = pd.concat([pd.DataFrame(old), pd.DataFrame(new)], ignore_index=True)
    df = df.iloc[np.argsort(df.user_id.to_numpy(), kind="stable")]
    want = df.groupby("user_id", sort=True).tail(cap)
    assert merged["user_id"].tolist() == want.user_id.tolist()
    assert merged["report_time_ms"].tolist() == want.report_time_ms.tolist()


def test_shard_of_is_stable_and_balanced():
    users = np.arange(100_000, dtype=np.int64) * 7 + 3
    s = shard_of(users, 8)
    assert s.min() == 0 and s.max() == 7
    counts = np.bincount(s, minlength=8)
    assert counts.min() > 0.9 * counts.mean()
    # a fixed function of the id: the same values on every machine and run
    assert shard_of(np.array([0, 1, 42, -5, 2**62]), 8).tolist() == [7, 1, 5, 2, 3]
    parts = split_shards(cat_cols(rows(5, [1, 2]), rows(6, [1])), 4)
    assert sum(len(p["user_id"]) for p in parts) == 3
    for i, p in enumerate(parts):
        assert (shard_of(p["user_id"], 4) == i).all()


def test_resharding_reads_the_same_users(tmp_path):
    store = Store(str(tmp_path))
    users = np.repeat(np.arange(40, dtype=np.int64), 3)
    cols = cat_cols(*[rows(u, [1, 2, 3]) for u in range(40)])
    files = {shard_name(s): parquet_bytes(to_table(p)) for s, p in enumerate(split_shards(cols, 4))}
    store.publish("lake/h", files, {"n_shards": 4})
    man = store.manifest("lake/h")
    got = [read_shard_for(store, "lake/h", man, s, 8) for s in range(8)]
    assert sum(len(g["user_id"]) for g in got) == len(users)
    for s, g in enumerate(got):
        assert (shard_of(g["user_id"], 8) == s).all()
        assert np.all(np.diff(g["user_id"]) >= 0)
        start, end = user_ranges(g["user_id"], np.unique(g["user_id"]))
        assert ((end - start) == 3).all()  # every user's slice, by searchsorted
    assert (
        read_shard(store, "lake/h", 0)["user_id"].tolist()
        == split_shards(cols, 4)[0]["user_id"].tolist()
    )


def test_catalog_change_re_resolves_references():
    cols = cat_cols(rows(1, [1], item=10), rows(1, [2], item=50, action=LIVE_BASE))
    a = resolve_catalog(cols, catalog())
    assert a["emb_row"].tolist() == [2, 0] and a["category"].tolist() == [5, 20]
    b = resolve_catalog(cols, catalog(n_videos=1, n_rooms=1))
    assert b["emb_row"].tolist() == [0, 0] and b["category"].tolist() == [3, 20]
    assert catalog().fingerprint != catalog(n_videos=1).fingerprint
    assert catalog().fingerprint == catalog().fingerprint


def test_publish_streaming_matches_store_publish(tmp_path):
    a, b = Store(str(tmp_path / "a")), Store(str(tmp_path / "b"))
    files = {"shard-00.parquet": b"x" * 10, "shard-01.parquet": b"yy"}
    a.publish("lake/t/k", files, {"n": 1})
    publish_streaming(b, "lake/t/k", iter(sorted(files.items())), {"n": 1})
    assert a.read_bytes("lake/t/k/_SUCCESS") == b.read_bytes("lake/t/k/_SUCCESS")
    assert b.read_bytes("lake/t/k/shard-01.parquet") == b"yy"


def test_columns_roundtrip_and_deterministic_bytes():
    cols = cat_cols(rows(1, [1, 2]), rows(2, [3]))
    t = to_table(cols)
    assert t.schema == HISTORY_SCHEMA
    back = to_columns(pq.read_table(io.BytesIO(parquet_bytes(t))))
    assert all(np.array_equal(back[c], cols[c]) for c in COLUMNS)
    assert parquet_bytes(to_table(back)) == parquet_bytes(t)
    assert to_columns(HISTORY_SCHEMA.empty_table())["user_id"].dtype == np.int64


# ---- on simulated logs -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_hours(tmp_path_factory):
    from tests.sim_helpers import simulated_hours

    sim = simulated_hours(tmp_path_factory.mktemp("hist_sim"), hours=3, users=2500, seed=8)
    cat, hours = sim.catalog, list(zip(sim.live, sim.sv, strict=True))
    return cat, hours


def test_hour_by_hour_equals_all_at_once(sim_hours):
    cat, hours = sim_hours
    n_shards, cap = 4, 25  # a small cap so that eviction happens on simulated users
    shards = [empty_columns() for _ in range(n_shards)]
    for live, sv in hours:
        new = to_columns(interactions(live, sv, cat))
        shards = [m for _, m, _ in history_hour(new, shards.__getitem__, n_shards, cap, threads=2)]
    at_once = to_columns(
        interactions(
            pa.concat_tables([h[0] for h in hours]), pa.concat_tables([h[1] for h in hours]), cat
        )
    )
    want = pd.DataFrame(at_once).groupby("user_id", sort=True).tail(cap)
    got = pd.concat([pd.DataFrame(s) for s in shards]).sort_values("user_id", kind="stable")
    assert len(got) == len(want) and len(got) < len(at_once["user_id"])  # some eviction
    for c in COLUMNS:
        assert np.array_equal(got[c].to_numpy(), want[c].to_numpy()), c
    # the newest row of every user is its newest interaction
    for s, part in enumerate(shards):
        assert (shard_of(part["user_id"], n_shards) == s).all()


def test_history_holds_interactions_of_both_domains(sim_hours):
    cat, hours = sim_hours
    new = to_columns(interactions(*hours[0], cat))
    live = new["action"] >= LIVE_BASE
    assert 0 < live.sum() < 0.2 * len(live)
    assert (new["emb_row"] >= 0).all()  # ingestion already dropped unknown items
    assert set(np.unique(new["action"])) <= set(ACTION_CODES.values())
    per_user = np.bincount(np.unique(new["user_id"], return_inverse=True)[1])
    assert per_user.max() < DEFAULT_CAP
    sel = take(new, np.flatnonzero(new["action"] == ACTION_CODES[S.SHORT_VIDEO, "play"]))
    assert ((sel["flags"] & FLAG_LONG_VIEW) > 0).mean() == pytest.approx(
        (sel["watch_ratio"] >= SV_LONG_VIEW_RATIO).mean(), abs=0.02
    )


@pytest.mark.parametrize(("threads", "ahead"), [(1, 0), (2, 0), (2, 4), (3, 5)])
def test_shards_run_in_order_at_most_threads_at_once(threads, ahead):
    """``_in_order`` yields every result once and in order, never runs more than
    ``threads`` at once, and keeps at most ``ahead`` finished results waiting."""
    import threading
    import time

    from ml.cross.cross_hour import _in_order

    lock, running, most = threading.Lock(), [0], [0]
    started: list[int] = []

    def work(s: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            started.append(s)
        time.sleep(0.002 * (s % 3))  # later items can finish before earlier ones
        with lock:
            running[0] -= 1
        return s * s

    consumed = 0
    for got in _in_order(work, 12, threads, ahead):
        assert got == consumed * consumed
        consumed += 1
        assert len(started) <= consumed + max(ahead, threads)  # submitted ahead, bounded
    assert consumed == 12 and most[0] <= threads and sorted(started) == list(range(12))
