"""Label-stream throughput: raw events/s through live_exposures (features at two
freshness settings) + the moment, fast and slow streams for one emission hour.

value: (raw live + short-video events in the look-back window) / seconds for reading
that window's Parquet, building every exposure's features and all three streams, and
encoding the outputs to Parquet.
peer: DuckDB computing only the fast-stream labels (click, like, comment, follow, gift,
and long view from exits) for the same exposures from the same Parquet files, with an
ASOF join for attribution — what one would write in SQL instead; its events/s count the
raw events it reads (the live ones). Its labels are checked equal to ours. params also
give our own fast-labels-only time on the same input, the like-for-like comparison.

    python bench/labels.py [--users 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.hours import HOUR_MS, parse_hour  # noqa: E402
from ml.ingest.landing_hour import ingest_hours  # noqa: E402
from ml.io.store import Store, parquet_parts  # noqa: E402
from ml.moment.emission_hour import LOOKBACK_HOURS, label_hour  # noqa: E402
from ml.moment.features import SV_COLUMNS  # noqa: E402

START = "2026-01-01-00:00"
HOURS = LOOKBACK_HOURS + 1
TASK_EVENTS = {
    "click": "enter",
    "like": "like",
    "comment": "comment",
    "follow": "follow",
    "gift": "gift",
}


def prepare(tmp: Path, users: int) -> tuple[list[Path], list[Path]]:
    cmd = [sys.executable, "-m", "ml.sim", "--out", str(tmp / "home"), "--start", START,
           "--hours", str(HOURS), "--users", str(users), "--seed", "13", "--quiet"]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=sys.stderr)
    store = Store(str(tmp / "home"))
    live, sv = [], []
    for domain, out in (("live", live), ("short_video", sv)):
        for i, res in enumerate(ingest_hours(store, domain, parse_hour(START), HOURS)):
            path = tmp / f"{domain}-{i}.parquet"
            pq.write_table(res.clean, path, compression="zstd")
            out.append(path)
    return live, sv


def ours(live_files: list[Path], sv_files: list[Path], hour_ms: int):
    t0 = time.perf_counter()
    live = pa.concat_tables([pq.read_table(p) for p in live_files])
    sv = pa.concat_tables([pq.read_table(p, columns=SV_COLUMNS) for p in sv_files])
    res = label_hour(live, sv, hour_ms)
    nbytes = sum(
        len(b)
        for t in (res.exposures, res.moment, res.fast, res.slow)
        for b in parquet_parts(t).values()
    )
    return time.perf_counter() - t0, live.num_rows + sv.num_rows, res, nbytes


def ours_fast_only(live_files: list[Path], hour_ms: int) -> float:
    from ml.moment.emission_hour import in_scope
    from ml.moment.labels import fast_samples
    from ml.moment.sessions import build_timeline, dedup_events

    t0 = time.perf_counter()
    live = pa.concat_tables([pq.read_table(p) for p in live_files])
    tl = build_timeline(dedup_events(live))
    fast_samples(tl.filter(pa.array(in_scope(tl))), hour_ms, hour_ms + HOUR_MS)
    return time.perf_counter() - t0


def duckdb_fast(live_files: list[Path], hour_ms: int):
    files = ", ".join(f"'{p}'" for p in live_files)
    labels = ",\n".join(
        f"coalesce(bool_or(a.event_type = '{e}' AND a.report_time_ms <= i.t0 + 300000), false) AS y_{t}"
        for t, e in TASK_EVENTS.items()
    )
    sql = f"""
    WITH live AS (SELECT * FROM read_parquet([{files}])),
    imp AS (SELECT event_id AS exposure_id, user_id, item_id, event_time_ms AS t0,
                   report_time_ms AS r_imp FROM live WHERE event_type = 'impression'),
    ev AS (SELECT user_id, item_id, event_type, event_time_ms, report_time_ms, watch_ms
           FROM live WHERE event_type <> 'impression'),
    att AS (SELECT i.exposure_id, e.event_type, e.report_time_ms, e.watch_ms
            FROM ev e ASOF JOIN imp i
              ON e.user_id = i.user_id AND e.item_id = i.item_id AND e.event_time_ms >= i.t0
            WHERE e.event_time_ms - i.t0 <= 7200000)
    SELECT i.exposure_id, {labels},
      coalesce(bool_or(a.event_type = 'exit' AND a.watch_ms >= 60000
                       AND a.report_time_ms <= i.t0 + 300000), false) AS y_long_view_exit
    FROM imp i LEFT JOIN att a USING (exposure_id)
    WHERE greatest(i.t0 + 300000, i.r_imp) >= {hour_ms}
      AND greatest(i.t0 + 300000, i.r_imp) < {hour_ms + HOUR_MS}
    GROUP BY i.exposure_id ORDER BY i.exposure_id
    """
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count() or 2}")
    t0 = time.perf_counter()
    table = con.sql(sql).to_arrow_table()
    return time.perf_counter() - t0, table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=int(os.environ.get("BENCH_USERS", 200_000)))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    hour_ms = parse_hour(START) + LOOKBACK_HOURS * HOUR_MS
    with tempfile.TemporaryDirectory(prefix="lc-bench-labels-") as tmp:
        live_files, sv_files = prepare(Path(tmp), args.users)
        runs = [ours(live_files, sv_files, hour_ms) for _ in range(args.repeat)]
        t_ours, n_events, res, nbytes = min(runs, key=lambda r: r[0])
        peer = [duckdb_fast(live_files, hour_ms) for _ in range(args.repeat)]
        t_peer, peer_table = min(peer, key=lambda r: r[0])
        t_fast_only = min(ours_fast_only(live_files, hour_ms) for _ in range(args.repeat))
        n_live = sum(pq.read_metadata(p).num_rows for p in live_files)
    mine = res.fast.sort_by("exposure_id")
    assert mine.column("exposure_id").equals(peer_table.column("exposure_id").cast(pa.string()))
    for task in TASK_EVENTS:
        ours_y = mine.column(f"y_{task}").to_numpy().astype(bool)
        assert np.array_equal(
            ours_y, peer_table.column(f"y_{task}").to_numpy(zero_copy_only=False)
        ), task
    value, peer_value = n_events / t_ours, n_live / t_peer
    print(
        json.dumps(
            {
                "name": "labels",
                "value": round(value),
                "unit": "events/s",
                "peer": "duckdb_fast_labels_asof_join",
                "peer_value": round(peer_value),
                "ratio": round(value / peer_value, 3),
                "params": {
                    "users": args.users,
                    "window_hours": HOURS,
                    "raw_events": n_events,
                    "raw_live_events": n_live,
                    "seconds": round(t_ours, 3),
                    "duckdb_seconds": round(t_peer, 3),
                    "ours_fast_labels_only_seconds": round(t_fast_only, 3),
                    "exposures": res.exposures.num_rows,
                    "moment_samples": res.moment.num_rows,
                    "fast_samples": res.fast.num_rows,
                    "slow_samples": res.slow.num_rows,
                    "output_parquet_bytes": nbytes,
                    "fast_labels_equal_to_duckdb": True,
                    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                    "cpus": os.cpu_count(),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
