"""Simulator throughput: landing lines per second of ``simulate()`` on a multi-million-event
hour, against the floor of its output format — serialising the very same events to gzip
JSON Lines with pandas (``DataFrame.to_json(orient="records", lines=True)`` + gzip level 1).

    python bench/sim.py [--users 200000] [--hours 1] [--seed 0]
    (or SIM_BENCH_USERS / SIM_BENCH_HOURS / SIM_BENCH_SEED)

Prints one JSON line to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.json as pj

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml import schema as S
from ml.sim import SimConfig, simulate

_NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype()}


def read_back(root: Path) -> tuple[pd.DataFrame, int]:
    """Every landing event line of the run, typed, with nullable ints (null stays null),
    and the gzip bytes of the landing event files."""
    opts = pj.ParseOptions(explicit_schema=S.RAW_EVENT_SCHEMA)
    tables, size = [], 0
    for domain in S.DOMAINS:
        for p in sorted((root / "landing" / domain).glob("*/*.jsonl.gz")):
            raw = p.read_bytes()
            size += len(raw)
            data = gzip.decompress(raw)
            if data:
                tables.append(pj.read_json(io.BytesIO(data), parse_options=opts))
    return pa.concat_tables(tables).to_pandas(types_mapper=_NULLABLE.get), size


def pandas_floor(df: pd.DataFrame, part_lines: int) -> tuple[float, int]:
    """(seconds, gzip bytes) to write ``df`` as gzip JSON Lines in parts, pandas-style."""
    t0 = time.perf_counter()
    size = 0
    for lo in range(0, len(df), part_lines):
        text = df.iloc[lo : lo + part_lines].to_json(orient="records", lines=True)
        size += len(gzip.compress(text.encode(), compresslevel=1, mtime=0))
    return time.perf_counter() - t0, size


def main() -> None:
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=int(env("SIM_BENCH_USERS", "200000")))
    ap.add_argument("--hours", type=int, default=int(env("SIM_BENCH_HOURS", "1")))
    ap.add_argument("--seed", type=int, default=int(env("SIM_BENCH_SEED", "0")))
    args = ap.parse_args()
    cfg = SimConfig(users=args.users, hours=args.hours, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        print(f"simulating {args.hours} h x {args.users:,} users ...", file=sys.stderr)
        summary = simulate(cfg, tmp, progress=True)
        print(summary.line(), file=sys.stderr)
        df, landing_bytes = read_back(Path(tmp))
    print(f"pandas floor on {len(df):,} events ...", file=sys.stderr)
    peer_s, peer_bytes = pandas_floor(df, cfg.max_lines_per_file)
    value = summary.total_lines / summary.seconds
    peer = len(df) / peer_s
    print(
        json.dumps(
            {
                "name": "sim",
                "value": round(value, 1),
                "unit": "events/s",
                "peer": "jsonl_gzip_write_floor",
                "peer_value": round(peer, 1),
                "ratio": round(value / peer, 3),
                "params": {
                    "users": args.users,
                    "hours": args.hours,
                    "seed": args.seed,
                    "lines": summary.total_lines,
                    "events_read_back": len(df),
                    "sim_seconds": round(summary.seconds, 3),
                    "peer_seconds": round(peer_s, 3),
                    "landing_gzip_bytes": landing_bytes,
                    "peer_gzip_bytes": peer_bytes,
                    "bytes_written": summary.bytes_written,
                    "threads": cfg.n_threads,
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "note": "value includes generating the world and events, content, oracle and "
                    "catalog; the peer only serialises the same events (all 11 fields, nulls "
                    "written) and gzips them",
                },
            }
        )
    )


if __name__ == "__main__":
    main()
