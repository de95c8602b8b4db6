"""Raw-event ingestion throughput for one multi-million-event simulated hour.

value: landing lines/s through ``ingest_hour`` (inflate, parse, type, validate, dedup
within and across hours, quarantine) plus the Parquet serialization of the result.
peer: the floor — bare ``pyarrow.json.read_json`` of the same gzip files (no checks).
params also report the same ingestion on a dirty copy (--bad-rate) where the bad-line
isolation path runs, and peak RSS.

    python bench/ingest.py [--users 200000] [--bad-rate 0.001] [--repeat 3]
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

import pyarrow as pa
import pyarrow.json as pj

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.hours import HOUR_MS, parse_hour  # noqa: E402
from ml.ingest.landing import event_hour_dir  # noqa: E402
from ml.ingest.landing_hour import ingest_hour  # noqa: E402
from ml.io.store import Store, parquet_bytes, parquet_parts  # noqa: E402

START = "2026-01-01-00:00"


def simulate(out: Path, users: int, bad_rate: float, hours: int) -> None:
    cmd = [sys.executable, "-m", "ml.sim", "--out", str(out), "--start", START,
           "--hours", str(hours), "--users", str(users), "--seed", "11",
           "--bad-rate", str(bad_rate)]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=sys.stderr)


def ingest_once(store: Store, hour_ms: int, known, prior) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    res = ingest_hour(store, "short_video", hour_ms, known_items=known, prior_event_ids=prior)
    nbytes = sum(map(len, parquet_parts(res.clean).values())) + len(parquet_bytes(res.quarantine))
    assert res.conserved()
    return time.perf_counter() - t0, res.lines_in, nbytes


def floor_once(store: Store, hour_ms: int) -> tuple[float, int]:
    d = event_hour_dir("short_video", hour_ms)
    paths = [store.url(f"{d}/{n}") for n in store.list(d, suffix=".jsonl.gz")]
    t0 = time.perf_counter()
    rows = sum(pj.read_json(pa.input_stream(p, compression="gzip")).num_rows for p in paths)
    return time.perf_counter() - t0, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=int(os.environ.get("BENCH_USERS", 200_000)))
    ap.add_argument("--bad-rate", type=float, default=0.001)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    # The second simulated hour is measured: it has a previous hour to dedup against.
    hour_ms = parse_hour(START) + HOUR_MS
    with tempfile.TemporaryDirectory(prefix="lc-bench-") as tmp:
        clean_root, dirty_root = Path(tmp) / "clean", Path(tmp) / "dirty"
        simulate(clean_root, args.users, 0.0, 2)
        simulate(dirty_root, args.users, args.bad_rate, 2)
        results = {}
        for name, root in (("clean", clean_root), ("dirty", dirty_root)):
            store = Store(str(root))
            known = store.read_parquet("landing/catalog/short_videos.parquet", ["item_id"]).column(
                0
            )
            prev = ingest_hour(store, "short_video", hour_ms - HOUR_MS, known_items=known)
            prior = prev.clean.column("event_id").combine_chunks()
            best = min(ingest_once(store, hour_ms, known, prior) for _ in range(args.repeat))
            results[name] = best
        floor = min(floor_once(Store(str(clean_root)), hour_ms) for _ in range(args.repeat))
    t, lines, nbytes = results["clean"]
    td, lines_d, _ = results["dirty"]
    value, peer = lines / t, floor[1] / floor[0]
    print(
        json.dumps(
            {
                "name": "ingest",
                "value": round(value),
                "unit": "events/s",
                "peer": "pyarrow_json_read_floor",
                "peer_value": round(peer),
                "ratio": round(value / peer, 3),
                "params": {
                    "domain": "short_video",
                    "users": args.users,
                    "events": lines,
                    "seconds": round(t, 3),
                    "floor_seconds": round(floor[0], 3),
                    "slowdown_vs_floor": round(t / floor[0], 3),
                    "parquet_bytes": nbytes,
                    "dirty_bad_rate": args.bad_rate,
                    "dirty_events_per_s": round(lines_d / td),
                    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                    "cpus": os.cpu_count(),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
