"""GSU extraction: exact on hand-built histories (ties, empty histories, no short-video
history, an unknown author, padding), equal to the pandas reference on random and
simulated data (hypothesis), leakage-free, and meaningful against the simulator."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml.cross.catalog_view import CatalogView
from ml.cross.cross_hour import history_hour, sequence_hour
from ml.cross.gsu import GSUS, extract, sequence_view
from ml.cross.gsu_reference import reference_sequences
from ml.cross.history import (
    ACTION_CODES,
    FLAG_LONG_VIEW,
    LIVE_ENTER,
    LIVE_EXIT,
    SV_PLAY,
    empty_columns,
    resolve_catalog,
    take,
)
from ml.cross.score_levels import Scorer

SV = {t: c for (d, t), c in ACTION_CODES.items() if d == "short_video"}
LV = {t: c for (d, t), c in ACTION_CODES.items() if d == "live"}
H = 1_767_225_600_000  # 2026-01-01 00:00


def fsl(values: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.astype(np.float32).ravel()), 32)


def make_catalog(video_emb, room_emb, video_author=None, room_author=None, video_cat=None):
    nv, nr = len(video_emb), len(room_emb)
    sv = pa.table(
        {
            "item_id": np.arange(100, 100 + nv, dtype=np.int64),
            "author_id": np.asarray(video_author if video_author is not None else np.full(nv, 7)),
            "category": np.asarray(
                video_cat if video_cat is not None else np.arange(nv) % 5, np.int32
            ),
            "embedding": fsl(np.asarray(video_emb)),
        }
    )
    rooms = pa.table(
        {
            "item_id": np.arange(900, 900 + nr, dtype=np.int64),
            "author_id": np.asarray(room_author if room_author is not None else np.full(nr, 8)),
            "category": np.zeros(nr, np.int32),
            "embedding": fsl(np.asarray(room_emb)),
        }
    )
    return CatalogView.from_tables(sv, rooms)


def history(cat, rows):
    """rows: (user, report_ms, item, author, action, flags) in store order per user."""
    if not rows:
        return empty_columns()
    a = np.array(rows, dtype=np.int64)
    n = len(a)
    cols = {
        "user_id": a[:, 0],
        "report_time_ms": a[:, 1],
        "event_time_ms": a[:, 1] - 100,
        "item_id": a[:, 2],
        "author_id": a[:, 3],
        "action": a[:, 4].astype(np.int8),
        "category": np.zeros(n, np.int32),
        "emb_row": np.zeros(n, np.int32),
        "value": np.zeros(n),
        "watch_ratio": np.zeros(n, np.float32),
        "flags": a[:, 5].astype(np.int8),
    }
    cols = resolve_catalog(cols, cat)
    return take(cols, np.lexsort((np.arange(n), cols["report_time_ms"], cols["user_id"])))


def exposures(rows):
    """rows: (user, room_id, room_author, t0)."""
    a = np.array(rows, dtype=np.int64).reshape(-1, 4)
    return pa.table(
        {
            "exposure_id": [f"e{i}" for i in range(len(a))],
            "user_id": a[:, 0],
            "room_id": a[:, 1],
            "author_id": a[:, 2],
            "t0_ms": a[:, 3],
        }
    )


def seq(out: pa.Table, g: str, field: str, row: int = 0, length: int | None = None):
    v = out.column(f"{g}_{field}")[row].as_py()
    n = out.column(f"{g}_len")[row].as_py()
    return v[: n if length is None else length]


def one_hot(i, scale=1.0):
    e = np.zeros(32)
    e[i] = scale
    return e


# ---- hand-built exactness ------------------------------------------------------------------
def test_topk_ties_break_by_recency_and_scores_are_exact():
    # videos 100..103: dot products with the room 1, 2, 2, 0.5
    cat = make_catalog([one_hot(0), one_hot(0, 2), one_hot(0, 2), one_hot(0, 0.5)], [one_hot(0)])
    old = history(
        cat,
        [
            (1, H - 5000, 101, 7, SV_PLAY, 0),  # score 2, oldest
            (1, H - 4000, 100, 7, SV_PLAY, 0),  # score 1
            (1, H - 3000, 102, 7, SV_PLAY, 0),  # score 2, newer than 101
            (1, H - 2000, 103, 7, SV_PLAY, 0),  # score 0.5
            (1, H - 1000, 101, 7, SV_PLAY, 0),  # 101 again: score 2, newest
        ],
    )
    out = extract(old, empty_columns(), exposures([(1, 900, 8, H)]), cat, length=3)
    assert seq(out, "sv_topk", "item_id") == [101, 102, 101]  # 2 (newest), 2, 2 (oldest)
    assert seq(out, "sv_topk", "gap_ms") == [1100, 3100, 5100]
    assert out.column("sv_topk_score")[0].as_py() == [2.0, 2.0, 2.0]
    assert seq(out, "sv_short", "item_id") == [101, 103, 102]


def test_equal_report_times_keep_store_order():
    cat = make_catalog([one_hot(1)] * 3, [one_hot(1)])
    old = history(cat, [(1, H - 10, 100, 7, SV_PLAY, 0), (1, H - 10, 101, 7, SV_PLAY, 0),
                        (1, H - 10, 102, 7, SV_PLAY, 0)])  # fmt: skip
    out = extract(old, empty_columns(), exposures([(1, 900, 8, H)]), cat, length=5)
    # equal timestamps: the store order (event id order at ingestion) is the recency order
    assert seq(out, "sv_short", "item_id") == [102, 101, 100]
    assert seq(out, "sv_topk", "item_id") == [102, 101, 100]  # equal scores too


def test_empty_history_and_padding():
    cat = make_catalog([one_hot(0)], [one_hot(0)])
    out = extract(empty_columns(), empty_columns(), exposures([(5, 900, 8, H)]), cat, length=4)
    for g in GSUS:
        assert out.column(f"{g}_len")[0].as_py() == 0
        assert out.column(f"{g}_mask")[0].as_py() == [0, 0, 0, 0]
        assert out.column(f"{g}_item_id")[0].as_py() == [0, 0, 0, 0]
        assert out.column(f"{g}_category")[0].as_py() == [-1] * 4
        assert out.column(f"{g}_emb_row")[0].as_py() == [-1] * 4
        assert out.column(f"{g}_max_report_ms")[0].as_py() == -1


def test_user_without_short_video_history_and_unmet_author():
    cat = make_catalog([one_hot(0)], [one_hot(0), one_hot(1)], room_author=[8, 9])
    old = history(
        cat,
        [
            (1, H - 900, 900, 8, LIVE_ENTER, 0),
            (1, H - 800, 900, 8, LV["like"], 0),
            (1, H - 700, 900, 8, LIVE_EXIT, FLAG_LONG_VIEW),
        ],
    )
    ex = exposures([(1, 900, 8, H), (1, 901, 9, H)])
    out = extract(old, empty_columns(), ex, cat, length=3)
    for g in ("sv_short", "sv_topk"):
        assert out.column(f"{g}_len").to_pylist() == [0, 0]
    assert seq(out, "live", "action") == [LIVE_EXIT, LIVE_ENTER]
    assert seq(out, "long_view", "item_id") == [900]
    assert seq(out, "author", "action") == [LIVE_EXIT, LV["like"], LIVE_ENTER]
    assert seq(out, "author", "category") == [0, 0, 0]
    assert seq(out, "author", "emb_row") == [0, 0, 0]  # row of room 900 in the rooms table
    assert out.column("author_len")[1].as_py() == 0  # author 9: never met


def test_author_search_spans_both_domains_and_padding_mask():
    cat = make_catalog([one_hot(0), one_hot(1)], [one_hot(0)], video_author=[8, 3], room_author=[8])
    old = history(
        cat,
        [
            (1, H - 900, 100, 8, SV_PLAY, FLAG_LONG_VIEW),  # video by the room's author
            (1, H - 850, 101, 3, SV_PLAY, 0),  # another author
            (1, H - 800, 900, 8, LIVE_ENTER, 0),
            (2, H - 500, 100, 8, SV["like"], 0),  # another user
        ],
    )
    out = extract(old, empty_columns(), exposures([(1, 900, 8, H)]), cat, length=4)
    assert seq(out, "author", "item_id") == [900, 100]
    assert seq(out, "author", "action") == [LIVE_ENTER, SV_PLAY]
    assert out.column("author_mask")[0].as_py() == [1, 1, 0, 0]
    assert seq(out, "long_view", "item_id") == [100]


def test_only_rows_reported_before_t0_and_the_hours_own_rows():
    cat = make_catalog([one_hot(0)] * 4, [one_hot(0)])
    old = history(cat, [(1, H - 3000, 100, 7, SV_PLAY, 0), (1, H - 1000, 101, 7, SV_PLAY, 0)])
    new = history(
        cat,
        [
            (1, H + 100, 102, 7, SV_PLAY, 0),
            (1, H + 500, 103, 7, SV_PLAY, 0),  # reported exactly at t0: excluded
        ],
    )
    ex = exposures([(1, 900, 8, H + 500), (1, 900, 8, H - 1000), (1, 900, 8, H + 501)])
    out = extract(old, new, ex, cat, length=5)
    assert seq(out, "sv_short", "item_id", 0) == [102, 101, 100]
    # a late impression (t0 before the hour): nothing reported at or after t0, old or new
    assert seq(out, "sv_short", "item_id", 1) == [100]
    assert seq(out, "sv_short", "item_id", 2) == [103, 102, 101, 100]
    maxrep = out.column("sv_short_max_report_ms").to_pylist()
    assert maxrep == [H + 100, H - 3000, H + 500]


def test_read_only_history_columns_give_the_same_sequences():
    """history[H-1] comes from Parquet as read-only Arrow views while the hour's rows are
    writable: the kernels must take sources whose arrays differ in that way."""
    cat = make_catalog([one_hot(0)] * 4, [one_hot(0)])
    old = history(cat, [(1, H - 3000, 100, 7, SV_PLAY, 0), (1, H - 1000, 101, 7, SV_PLAY, 0)])
    new = history(cat, [(1, H + 100, 102, 7, SV_PLAY, 0)])
    ex = exposures([(1, 900, 8, H + 500)])
    want = extract(old, new, ex, cat, length=5)
    for col in old.values():
        col.setflags(write=False)
    got = extract(old, new, ex, cat, length=5)
    assert got.equals(want)
    assert seq(got, "sv_short", "item_id", 0) == [102, 101, 100]


def test_window_is_the_newest_cap_rows():
    cat = make_catalog([one_hot(0, s) for s in (3.0, 1.0, 1.0, 1.0)], [one_hot(0)])
    rows = [(1, H - 5000 + i, 100 + (i > 0), 7, SV_PLAY, 0) for i in range(4)]
    old = history(cat, rows)
    out = extract(old, empty_columns(), exposures([(1, 900, 8, H)]), cat, length=2, cap=3)
    # the best video (score 3) is the oldest row: outside the 3 newest, not a candidate
    assert seq(out, "sv_topk", "item_id") == [101, 101]
    assert out.column("sv_topk_score")[0].as_py() == [1.0, 1.0]


def test_default_window_holds_the_newest_10000():
    cat = make_catalog([one_hot(0, 9.0), one_hot(0, 1.0)], [one_hot(0)])
    n = 10_050
    rows = [(1, H - 10 * n + 10 * i, 100 if i < 50 else 101, 7, SV_PLAY, 0) for i in range(n)]
    out = extract(history(cat, rows), empty_columns(), exposures([(1, 900, 8, H)]), cat)
    # the 50 best plays are the oldest 50: outside the store's 10,000 newest
    assert set(seq(out, "sv_topk", "item_id")) == {101}
    assert out.column("sv_topk_max_report_ms")[0].as_py() == H - 10


def test_unknown_room_and_unknown_video_have_no_topk():
    cat = make_catalog([one_hot(0)], [one_hot(0)])
    old = history(cat, [(1, H - 10, 555, 7, SV_PLAY, 0), (1, H - 5, 100, 7, SV_PLAY, 0)])
    out = extract(old, empty_columns(), exposures([(1, 999, 8, H), (1, 900, 8, H)]), cat)
    assert out.column("sv_topk_len").to_pylist() == [0, 1]
    assert out.column("sv_short_len").to_pylist() == [2, 2]
    assert seq(out, "sv_short", "emb_row", 0) == [0, -1]  # unknown video: -1


def test_zero_copy_views():
    cat = make_catalog([one_hot(0)], [one_hot(0)])
    old = history(cat, [(1, H - 10, 100, 7, SV_PLAY, 0)])
    out = extract(old, empty_columns(), exposures([(1, 900, 8, H)] * 3), cat, length=6)
    col = out.column("sv_short_item_id").chunk(0)
    view = col.flatten().to_numpy(zero_copy_only=True).reshape(-1, 6)
    assert np.shares_memory(view, col.values.to_numpy(zero_copy_only=True))
    assert view.shape == (3, 6) and sequence_view(out.column("sv_short_mask"), 6).dtype == np.int8


# ---- equal to the reference on random histories -----------------------------------------------
def near_tie_embeddings(rng, n):
    """Unit vectors a few float32 ulps apart: their scores against any room differ by
    about the float32 GEMM's own error, so approximate levels alone would misrank them."""
    base = rng.standard_normal(32)
    emb = base + 1e-6 * rng.standard_normal((n, 32)) * (rng.random((n, 1)) < 0.7)
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


def random_world(rng, users=12, rows=3000, hour_rows=300, near_ties=False):
    nv, nr = 60, 6
    if near_ties:
        video_emb, room_emb = near_tie_embeddings(rng, nv), rng.standard_normal((nr, 32))
    else:  # integer embeddings: many equal dot products
        video_emb, room_emb = rng.integers(-2, 3, (nv, 32)), rng.integers(-2, 3, (nr, 32))
    cat = make_catalog(
        video_emb,
        room_emb,
        video_author=rng.integers(0, 9, nv),
        room_author=rng.integers(0, 9, nr),
    )
    codes = list(ACTION_CODES.values())

    def rows_(n, t_lo, t_hi):
        live = rng.random(n) < 0.15
        return [
            (
                int(rng.integers(0, users)),
                int(rng.integers(t_lo, t_hi)),
                int(rng.integers(900, 900 + nr + 1) if lv else rng.integers(100, 100 + nv + 2)),
                int(rng.integers(0, 9)),
                int(
                    rng.choice(
                        [c for c in codes if (c >= 16) == lv] + ([SV_PLAY] * 4 if not lv else [])
                    )
                ),
                int(rng.random() < 0.4),
            )
            for lv in live
        ]

    old = history(cat, rows_(rows, H - 10**7, H))
    new = history(cat, rows_(hour_rows, H, H + 3_600_000))
    return cat, old, new


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 2**31),
    st.integers(1, 12),
    st.sampled_from([5, 40, 400, 10_000]),
    st.sampled_from([None, 1, 2]),
    st.booleans(),
)
def test_fast_path_equals_reference(seed, length, cap, table_rooms, near_ties):
    """table_rooms: score-table budget in rooms (None: the default, one table for the
    hour); small budgets make the walk run once per block of rooms. near_ties: video
    embeddings whose scores differ by about the score table's float32 error."""
    rng = np.random.default_rng(seed)
    cat, old, new = random_world(rng, near_ties=near_ties)
    ex = exposures(
        [
            (int(rng.integers(0, 13)), int(rng.integers(900, 907)), int(rng.integers(0, 9)),
             int(rng.integers(H - 5_000_000, H + 3_600_000)))
            for _ in range(25)
        ]
    )  # fmt: skip
    scorer = None
    if table_rooms is not None:
        room_rows = cat.rooms.rows_of(ex.column("room_id").to_numpy())
        budget = table_rooms * 2 * (len(cat.short_videos.category) + 1)
        scorer = Scorer(cat, room_rows, budget=budget)
        assert scorer.max_rooms == table_rooms and scorer.rooms is None
    out = extract(old, new, ex, cat, length=length, cap=cap, scorer=scorer)
    frame = pd.concat([pd.DataFrame(old), pd.DataFrame(new)], ignore_index=True)
    for i, row in enumerate(out.to_pylist()):
        rows = frame[frame.user_id == row["user_id"]]
        ref = reference_sequences(rows, row, cat, length, cap)
        assert {k: row[k] for k in ref} == ref, i


# ---- against the simulator ------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from ml.cross.history import interactions, to_columns
    from ml.hours import HOUR_MS
    from ml.moment.emission_hour import label_hour
    from tests.sim_helpers import H0, simulated_hours

    sim = simulated_hours(tmp_path_factory.mktemp("gsu_sim"), hours=3, users=4000, seed=11)
    store, cat, live, sv, h0 = sim.store, sim.catalog, sim.live, sim.sv, H0
    hours = [to_columns(interactions(live[i], sv[i], cat)) for i in range(3)]
    hist = empty_columns()
    for i in range(2):
        parts = list(history_hour(hours[i], lambda s, h=hist: h, 1))
        hist = parts[0][1]
    ex = label_hour(pa.concat_tables(live), pa.concat_tables(sv), h0 + 2 * HOUR_MS).exposures
    out = pa.concat_tables(
        [p.table for p in sequence_hour(ex, hours[2], cat, lambda s: hist, 1, threads=2)]
    )
    users = store.read_parquet("oracle/users.parquet", ["user_id", "low_live_cohort"]).to_pandas()
    return {"cat": cat, "old": hist, "new": hours[2], "ex": ex, "out": out, "users": users}


def test_sim_sequences_equal_reference_before_t0(sim):
    out, cat = sim["out"], sim["cat"]
    frame = pd.concat([pd.DataFrame(sim["old"]), pd.DataFrame(sim["new"])], ignore_index=True)
    groups = dict(tuple(frame.groupby("user_id", sort=False)))

    @settings(max_examples=40, deadline=None)
    @given(st.integers(0, out.num_rows - 1))
    def check(i):
        row = out.slice(i, 1).to_pylist()[0]
        rows = groups.get(row["user_id"], frame.iloc[:0])
        # leakage: every item of every GSU was reported before t0
        assert all(row[f"{g}_max_report_ms"] < row["t0_ms"] for g in GSUS)
        ref = reference_sequences(rows, row, cat)
        assert {k: row[k] for k in ref} == ref

    check()


def test_sim_topk_shares_the_room_category_far_above_chance(sim):
    """The best few of the top-k share the room's category far more often than the user's
    plays at large do (the chance of a blind pick from the same candidates)."""
    out, cat = sim["out"], sim["cat"]
    room_cat = cat.rooms.category[cat.rooms.rows_of(out.column("room_id").to_numpy())]
    n = out.column("sv_short_len").to_numpy()
    pool = (n >= 10) & (n < 50)  # the short sequence holds every play: the candidate pool
    best = sequence_view(out.column("sv_topk_category"), 50)[pool, :3]
    plays = sequence_view(out.column("sv_short_category"), 50)[pool]
    mask = sequence_view(out.column("sv_short_mask"), 50)[pool].astype(bool)
    same = room_cat[pool, None]
    top_rate = (best == same).mean()
    base_rate = (plays == same)[mask].mean()
    assert pool.sum() > 200
    assert top_rate > 4 * base_rate, (top_rate, base_rate)
    # when the pool holds a play of the room's category, the top-1 is one
    has = ((plays == same) & mask).any(axis=1)
    top1 = (best[has, 0] == same[has, 0]).mean()
    assert top1 > 0.8, top1


def test_sim_low_live_users_get_short_video_sequences(sim):
    out, users = sim["out"], sim["users"]
    low = set(users.user_id[users.low_live_cohort])
    is_low = np.isin(out.column("user_id").to_numpy(), list(low))
    assert is_low.sum() >= 5
    short = out.column("sv_short_len").to_numpy()[is_low]
    topk = out.column("sv_topk_len").to_numpy()[is_low]
    live = out.column("live_len").to_numpy()[is_low]
    assert (short > 0).mean() > 0.9 and (topk > 0).mean() > 0.9
    assert short.mean() > 3 * max(live.mean(), 1.0)  # the cross-domain signal they have
