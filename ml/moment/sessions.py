"""Live exposures and what followed them: the per-exposure timeline every label stream,
outcome and feature builds on.

An exposure is a live ``impression`` of room r to user u at t0 (its event time). The
follow-up events of (u, r) — enter, exit, like, comment, follow, gift, share — belong to
the latest impression of the same (u, r) at or before their event time, if they happen
within ``ATTRIBUTION_MS`` of it. For each task we keep the time its first positive was
*reported*: a sample emitted at T knows a positive only if it was reported by T.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml import schema as S

TASKS = S.TASKS
# Which event type makes each task positive (long_view is derived, see below).
TASK_EVENT = {
    "click": "enter",
    "like": "like",
    "comment": "comment",
    "follow": "follow",
    "gift": "gift",
}
LONG_VIEW_MS = S.LONG_VIEW_MS
ATTRIBUTION_MS = 2 * 3_600_000  # events later than this after the impression are not its own
NEVER = np.iinfo(np.int64).max  # "no positive reported"

TIMELINE_SCHEMA = pa.schema(
    [
        ("exposure_id", pa.string()),
        ("user_id", pa.int64()),
        ("room_id", pa.int64()),
        ("author_id", pa.int64()),
        ("page", pa.string()),
        ("t0_ms", pa.int64()),  # impression event time
        ("impression_report_ms", pa.int64()),
        ("enter_ms", pa.int64()),  # first attributed enter, event time (NEVER if none)
        ("exit_report_ms", pa.int64()),  # first attributed exit, report time (NEVER if none)
        ("watch_ms", pa.int64()),  # of that exit (0 if none)
        *[(f"first_{t}_report_ms", pa.int64()) for t in TASKS],
        *[(f"first_{t}_event_ms", pa.int64()) for t in TASKS],
    ]
)


def dedup_events(events: pa.Table) -> pa.Table:
    """Union of raw partitions: keep each event_id once (earliest report), so a
    re-delivery that slipped past raw ingestion never counts twice."""
    if events.num_rows == 0:
        return events
    from ml.ingest.landing_hour import repeated  # hash-based: sorting every id is the slow part

    rep = repeated(events.column("event_id"))
    if not rep.any():
        return events
    clean = events.filter(pa.array(~rep))
    events = events.filter(pa.array(rep))
    order = pc.sort_indices(events, [("event_id", "ascending"), ("report_time_ms", "ascending")])
    ids = events.column("event_id").take(order)
    first = np.ones(len(ids), bool)
    if len(ids) > 1:
        first[1:] = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1)).to_numpy(
            zero_copy_only=False
        )
    keep = np.sort(order.to_numpy()[first])
    return pa.concat_tables([clean, events.take(pa.array(keep))])


def build_timeline(events: pa.Table) -> pa.Table:
    """One row per impression in ``events`` (raw live events, deduplicated), with the
    first-positive report/event times of every task (NEVER when none)."""
    et = S.event_type_codes(events.column("event_type"))
    code = S.TYPE_CODE
    u = events.column("user_id").to_numpy()
    r = events.column("item_id").to_numpy()
    t_ev = events.column("event_time_ms").to_numpy()
    t_rep = events.column("report_time_ms").to_numpy()
    imp = np.flatnonzero(et == code["impression"])
    # One int64 per (user, room), from dense ranks so any id range fits.
    _, u_code = np.unique(u, return_inverse=True)
    r_uniq, r_code = np.unique(r, return_inverse=True)
    pair = u_code.astype(np.int64) * len(r_uniq) + r_code
    # Impressions sorted by (pair, t0) so follow-ups find theirs by binary search.
    imp_pair = pair[imp]
    # Ties (same pair, same t0) go to the earlier row: input order is deterministic.
    order = np.lexsort((imp, t_ev[imp], imp_pair))
    imp, imp_pair = imp[order], imp_pair[order]
    n = len(imp)
    t0 = t_ev[imp]

    other = np.flatnonzero(et != code["impression"])
    o_pair = pair[other]
    # Rank of each follow-up among impressions: last impression with (pair, t0) <= (pair, t).
    pos = _last_le(imp_pair, t0, o_pair, t_ev[other])
    ok = pos >= 0
    ok[ok] &= (imp_pair[pos[ok]] == o_pair[ok]) & (t_ev[other][ok] - t0[pos[ok]] <= ATTRIBUTION_MS)
    att, exp_of = other[ok], pos[ok]
    att_type = et[att]

    first_rep = {t: np.full(n, NEVER, np.int64) for t in TASKS}
    first_ev = {t: np.full(n, NEVER, np.int64) for t in TASKS}
    for task, etype in TASK_EVENT.items():
        sel = att_type == code[etype]
        np.minimum.at(first_rep[task], exp_of[sel], t_rep[att[sel]])
        np.minimum.at(first_ev[task], exp_of[sel], t_ev[att[sel]])
    enter_ms = first_ev["click"]

    exit_sel = att_type == code["exit"]
    exit_ev = np.full(n, NEVER, np.int64)
    np.minimum.at(exit_ev, exp_of[exit_sel], t_ev[att[exit_sel]])
    # The first exit (by event time) gives the watch and its report time.
    is_first_exit = exit_sel.copy()
    is_first_exit[exit_sel] = t_ev[att[exit_sel]] == exit_ev[exp_of[exit_sel]]
    exit_report = np.full(n, NEVER, np.int64)
    watch = np.zeros(n, np.int64)
    w_col = pc.fill_null(events.column("watch_ms"), 0).to_numpy()
    np.minimum.at(exit_report, exp_of[is_first_exit], t_rep[att[is_first_exit]])
    np.maximum.at(watch, exp_of[is_first_exit], w_col[att[is_first_exit]])

    # long_view: proof the user stayed LONG_VIEW_MS after entering — an exit reporting
    # such a watch, or any in-room event that late. Known at that event's report time.
    entered = enter_ms[exp_of] != NEVER
    late_enough = entered & (t_ev[att] >= enter_ms[exp_of] + LONG_VIEW_MS)
    long_exit = exit_sel & (w_col[att] >= LONG_VIEW_MS)
    lv = (late_enough & (att_type != code["enter"])) | long_exit
    # An in-room event proves a long view only together with the enter: known when both are.
    lv_rep = np.where(long_exit, t_rep[att], np.maximum(t_rep[att], first_rep["click"][exp_of]))
    np.minimum.at(first_rep["long_view"], exp_of[lv], lv_rep[lv])
    np.minimum.at(first_ev["long_view"], exp_of[lv], t_ev[att[lv]])

    # Output order: by impression report time, then input order (no string sort needed).
    out = np.lexsort((imp, t_rep[imp]))
    rows = pa.array(imp[out])
    cols = {
        "exposure_id": events.column("event_id").take(rows),
        "user_id": u[imp][out],
        "room_id": r[imp][out],
        "author_id": events.column("author_id").to_numpy()[imp][out],
        "page": events.column("page").take(rows),
        "t0_ms": t0[out],
        "impression_report_ms": t_rep[imp][out],
        "enter_ms": enter_ms[out],
        "exit_report_ms": exit_report[out],
        "watch_ms": watch[out],
    }
    cols.update({f"first_{t}_report_ms": first_rep[t][out] for t in TASKS})
    cols.update({f"first_{t}_event_ms": first_ev[t][out] for t in TASKS})
    return pa.table(cols, schema=TIMELINE_SCHEMA)


def _last_le(
    keys: np.ndarray, times: np.ndarray, q_keys: np.ndarray, q_times: np.ndarray
) -> np.ndarray:
    """Index of the last (key, time) <= (q_key, q_time) in arrays sorted by (key, time);
    -1 if none. Keys are dense non-negative codes, so (key, time) packs into one int64."""
    if len(keys) == 0:
        return np.full(len(q_keys), -1, np.int64)
    base = min(times.min(initial=NEVER), q_times.min(initial=NEVER))
    span = int(max(times.max(initial=0), q_times.max(initial=0)) - base) + 1
    top = int(max(keys.max(initial=0), q_keys.max(initial=0))) + 1
    if top * span >= 2**62:
        raise OverflowError("time span too large to pack; split the window")
    packed = keys.astype(np.int64) * span + (times - base)
    q_packed = q_keys.astype(np.int64) * span + (q_times - base)
    return np.searchsorted(packed, q_packed, side="right") - 1
