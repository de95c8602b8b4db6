"""The top-k's primitives: score levels, windows, and the pruning contract of
the compiled walk (exact for any level table within its error bound)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.cross import gsu_scan
from ml.cross.history import ACTION_CODES, FLAG_LONG_VIEW, SV_PLAY
from ml.cross.score_levels import levels_into, quantize
from ml.cross.windows import windows

LV = {t: c for (d, t), c in ACTION_CODES.items() if d == "live"}
CODES = gsu_scan.WalkCodes(SV_PLAY, LV["enter"], LV["exit"], FLAG_LONG_VIEW)


# ---- primitives -------------------------------------------------------------------------------
def test_quantize_is_monotone_and_keeps_level_0_free():
    rng = np.random.default_rng(0)
    x = np.sort(
        np.concatenate([rng.standard_normal(5000), [-np.inf, -3e38, -0.0, 0.0, 1e-30, -1e-30]])
    ).astype(np.float32)
    q = quantize(x)
    assert np.all(np.diff(q.astype(np.int64)) >= 0)
    assert quantize(np.array([-0.0], np.float32))[0] == quantize(np.array([0.0], np.float32))[0]
    assert q.min() >= 1  # level 0 means "no candidate"


def test_table_levels_are_the_scalar_levels():
    """The vectorised table quantizer and ``level_of`` (which the walk's bounds use) must
    agree on every float32, zeros, infinities and subnormals included."""
    rng = np.random.default_rng(1)
    special = [-0.0, 0.0, np.inf, -np.inf, 1e-45, -1e-45, 3.4e38, -3.4e38, 1.0, -1.0]
    plain = np.concatenate([special, rng.standard_normal(5000), rng.uniform(-1e-38, 1e-38, 500)])
    any_bits = rng.integers(0, 2**32, 3000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = np.concatenate([plain.astype(np.float32), any_bits[~np.isnan(any_bits)]])
    out = np.zeros((1, len(x) + 3), np.uint16)
    levels_into(x[None, :], out, 2)
    assert out[0, 2:-1].tolist() == quantize(x).tolist()
    assert out[0, :2].tolist() == [0, 0] and out[0, -1] == 0  # only its columns written


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 12))
def test_windows_are_the_newest_cap_rows_reported_before_t0(seed, cap):
    rng = np.random.default_rng(seed)

    def source(n):
        users = np.sort(rng.integers(0, 6, n))
        report = np.concatenate(
            [np.sort(rng.integers(0, 50, (users == u).sum())) for u in range(6)]
        )
        return users.astype(np.int64), report.astype(np.int64)

    ou, orep = source(int(rng.integers(0, 40)))
    orep = orep - 100  # history[H-1]: reported before the hour's rows
    nu, nrep = source(int(rng.integers(0, 30)))
    users, t0 = rng.integers(0, 7, 25), rng.integers(-120, 60, 25)
    w = windows(ou, orep, nu, nrep, users, t0, cap)
    for e in range(25):
        old = [i for i in range(len(ou)) if ou[i] == users[e] and orep[i] < t0[e]]
        new = [i for i in range(len(nu)) if nu[i] == users[e] and nrep[i] < t0[e]]
        rows = [("o", i) for i in old] + [("n", i) for i in new]  # oldest first
        keep = rows[max(0, len(rows) - cap) :]
        assert [i for s, i in keep if s == "o"] == list(range(w.olo[e], w.ohi[e]))
        assert [i for s, i in keep if s == "n"] == list(range(w.nlo[e], w.nhi[e]))


def _sources(action, flags, author, emb):
    """(old, new) walk sources: every row old, none new."""
    from ml.cross.gsu_scan import WalkSource

    return WalkSource(action, flags, author, emb), WalkSource(
        action[:0], flags[:0], author[:0], emb[:0]
    )


def topk_with_levels(rng, videos, room, approx, eps, length, n=4000):
    """(refs, scores) of one window of n random plays through the compiled walk with the
    levels of ``approx``, and the exact top-L (row, score) by brute force."""
    nv = len(videos)
    exact = (videos.astype(np.float64) @ room.astype(np.float64)).astype(np.float32)
    levels = np.concatenate([[0], quantize(approx)]).astype(np.uint16)
    action = np.where(rng.random(n) < 0.8, SV_PLAY, LV["enter"]).astype(np.int8)
    emb = rng.integers(-1, nv, n).astype(np.int32)  # -1: a video without an embedding
    zeros8, author = np.zeros(n, np.int8), np.zeros(n, np.int64)
    refs = np.full((5, 1, length), -1, np.int64)
    scores = np.zeros((1, length), np.float32)
    one = np.array([0], np.int64)
    gsu_scan.window_refs(
        *_sources(action, zeros8, author, emb), gsu_scan.WindowBounds(one, np.array([n]), one, one),
        np.array([-1]), gsu_scan.TopkInputs(one, levels, videos, room[None, :],
        np.array([eps * (1 + 1e-9)])), CODES, one, refs, scores,
    )  # fmt: skip
    cand = [i for i in range(n) if action[i] == SV_PLAY and emb[i] >= 0]
    want = sorted(cand, key=lambda i: (exact[emb[i]], i), reverse=True)[:length]
    return (
        (refs[1, 0].tolist(), scores[0].tolist()),
        (want + [-1] * (length - len(want)), [float(exact[emb[i]]) for i in want]
         + [0.0] * (length - len(want))),
    )  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 60), st.sampled_from([1e-4, 1e-3, 1e-2]))
def test_topk_is_exact_for_any_level_table_within_its_error_bound(seed, length, eps):
    """The pruning contract of ``gsu_scan``: the levels of *any* approximation within
    ``eps`` of the exact scores give exactly the top-L of the exact scores, ties newer
    first."""
    rng = np.random.default_rng(seed)
    videos = rng.standard_normal((300, 32))
    videos = (videos / np.linalg.norm(videos, axis=1, keepdims=True)).astype(np.float32)
    room = rng.standard_normal(32).astype(np.float32)
    exact = (videos.astype(np.float64) @ room.astype(np.float64)).astype(np.float32)
    approx = (exact + eps * rng.uniform(-1, 1, len(exact))).astype(np.float32)
    got, want = topk_with_levels(rng, videos, room, approx, eps, length)
    assert got == want


@pytest.mark.parametrize("eps", [1e-3, 1e-2])
def test_topk_keeps_the_best_video_when_its_approximation_drops_a_level(eps):
    """Four videos scoring just under 4.0 (a level boundary); the approximation lifts
    three over it and drops the best one by eps: the best one's level is then below the
    L-th largest candidate level, and only the error margin keeps it a survivor."""
    rng = np.random.default_rng(0)
    room = rng.standard_normal(32)
    room = (4.0 * room / np.linalg.norm(room)).astype(np.float32)
    videos = room / 4.0 + (eps / 8) * rng.standard_normal((4, 32))
    videos = (videos / np.linalg.norm(videos, axis=1, keepdims=True)).astype(np.float32)
    exact = (videos.astype(np.float64) @ room.astype(np.float64)).astype(np.float32)
    assert (exact < 4.0).all() and (exact + eps >= 4.0).all()
    best = int(np.argmax(exact))
    approx = np.where(np.arange(4) == best, exact - eps, exact + 0.999 * eps).astype(np.float32)
    assert quantize(approx)[best] < quantize(approx).max()
    got, want = topk_with_levels(rng, videos, room, approx, eps, length=20)
    assert got == want
    assert got[1] == [float(exact[best])] * 20  # the 20 newest plays of the best video


def test_rows_that_are_not_plays_never_index_the_level_row():
    """A live row's emb_row is a room's row, which may lie far past the short-video level
    row: the walk must not read there (an unchecked read 4 GB past the table crashes)."""
    from ml.cross import gsu_scan

    rng = np.random.default_rng(3)
    videos = rng.standard_normal((5, 32)).astype(np.float32)
    room = rng.standard_normal(32).astype(np.float32)
    exact = (videos.astype(np.float64) @ room.astype(np.float64)).astype(np.float32)
    levels = np.concatenate([[0], quantize(exact)]).astype(np.uint16)
    action = np.array([SV_PLAY, LV["enter"], SV_PLAY, LV["exit"]], np.int8)
    emb = np.array([1, 2**31 - 1, 3, 2**31 - 2], np.int32)
    zeros8, author = np.zeros(4, np.int8), np.zeros(4, np.int64)
    refs = np.full((5, 1, 3), -1, np.int64)
    scores = np.zeros((1, 3), np.float32)
    one = np.array([0], np.int64)
    gsu_scan.window_refs(
        *_sources(action, zeros8, author, emb), gsu_scan.WindowBounds(one, np.array([4]), one, one),
        np.array([-1]), gsu_scan.TopkInputs(one, levels, videos, room[None, :], np.array([1e-5])),
        CODES, one, refs, scores,
    )  # fmt: skip
    best = sorted([0, 2], key=lambda i: exact[emb[i]], reverse=True)
    assert refs[1, 0].tolist() == [*best, -1]
    assert refs[4, 0].tolist() == [3, 1, -1]  # the live GSU still sees both live rows


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 65535), min_size=1, max_size=3000), st.data())
def test_kth_largest_is_the_sorted_kth(values, data):
    from ml.cross.topk import HIST_SIZE, kth_largest

    v = np.array(values, np.uint16)
    k = data.draw(st.integers(1, len(v)))
    hist = np.empty(HIST_SIZE, np.uint32)
    assert kth_largest(v, len(v), k, hist) == np.sort(v)[::-1][k - 1]
    clustered = (v % 7 + 40000).astype(np.uint16)  # runs of equal bins
    assert kth_largest(clustered, len(v), k, hist) == np.sort(clustered)[::-1][k - 1]


def test_blas_limit_overlapping_threads_restore_the_original(monkeypatch):
    """Two tables computed at once (per-shard tables on two threads) share one limit: the
    first one in sets it, the last one out restores it (nested save/restore pairs would
    restore early, or leave BLAS at one thread for the rest of the process)."""
    import threading

    from ml.cross import score_levels

    calls: list[str] = []

    class Limiter:
        def restore_original_limits(self) -> None:
            calls.append("restore")

    class Controller:
        def limit(self, limits, user_api):
            assert (limits, user_api) == (1, "blas")
            calls.append("limit")
            return Limiter()

    monkeypatch.setattr(score_levels, "_blas", Controller)
    inside, release = threading.Event(), threading.Event()

    def first() -> None:
        with score_levels._single_threaded_blas():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=first)
    t.start()
    assert inside.wait(5)
    with score_levels._single_threaded_blas():
        assert calls == ["limit"]
        release.set()
        t.join(5)
        assert calls == ["limit"]  # the first one out does not restore yet
    assert calls == ["limit", "restore"]
    with score_levels._single_threaded_blas():
        pass
    assert calls == ["limit", "restore", "limit", "restore"]
