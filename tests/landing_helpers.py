"""Hand-built landing data for exact tests: tiny, every value chosen on purpose."""

from __future__ import annotations

import gzip
import json

from ml.hours import landing_dir, parse_hour
from ml.io.store import Store

H0 = parse_hour("2026-01-01-00:00")
ROOM = 1_000_000_001
VIDEO = 5
AUTHOR = 77


def event(
    eid: str, etype: str = "impression", t: int = 1_000, *, domain: str = "live", **kw
) -> dict:
    """A valid event at H0 + t ms (reported 200 ms later) unless overridden."""
    ev = {
        "event_id": eid,
        "event_type": etype,
        "user_id": 1,
        "item_id": ROOM if domain == "live" else VIDEO,
        "author_id": AUTHOR,
        "event_time_ms": H0 + t,
        "report_time_ms": H0 + t + 200,
        "page": "feed",
    }
    if etype in ("exit", "play"):
        ev["watch_ms"] = 30_000
    if domain == "short_video":
        ev["duration_ms"] = 55_000
    if etype == "gift":
        ev["gift_value"] = 10.0
    ev.update(kw)
    return ev


def line(obj) -> bytes:
    return obj if isinstance(obj, bytes) else json.dumps(obj).encode()


def write_landing(
    store: Store,
    domain: str,
    hour_ms: int,
    lines: list,
    name: str = "part-00000.jsonl.gz",
    *,
    listed: bool = True,
) -> str:
    """Write one landing file of ``lines`` and, with ``listed``, add it to the hour's sink
    manifest (``_SUCCESS``: bytes and line count per file), as the sink does."""
    rel = f"landing/{domain}/{landing_dir(hour_ms)}/{name}"
    body = b"".join(line(x) + b"\n" for x in lines)
    data = gzip.compress(body, mtime=0) if name.lower().endswith(".gz") else body
    store.write_bytes(rel, data)
    if listed:
        list_in_manifest(store, domain, hour_ms, name, len(data), len(lines))
    return rel


def list_in_manifest(store: Store, domain: str, hour_ms: int, name: str, size: int, lines: int):
    """Add (or replace) one file's entry in the hour's sink manifest."""
    marker = f"landing/{domain}/{landing_dir(hour_ms)}/_SUCCESS"
    man = json.loads(store.read_bytes(marker)) if store.exists(marker) else {
        "domain": domain, "hour": landing_dir(hour_ms), "files": {}, "lines": {}
    }  # fmt: skip
    man["files"][name], man["lines"][name] = size, lines
    store.write_bytes(marker, json.dumps(man, sort_keys=True).encode())


def write_catalog(store: Store, rooms=(ROOM,), videos=(VIDEO,), authors=(AUTHOR,)) -> None:
    """A minimal valid catalog: the given rooms and videos, all by the given authors."""
    import numpy as np
    import pyarrow as pa

    from ml import schema as S

    def emb(n: int) -> pa.Array:
        flat = pa.array(np.ones(n * S.EMBED_DIM, np.float32) / np.sqrt(S.EMBED_DIM))
        return pa.FixedSizeListArray.from_arrays(flat, S.EMBED_DIM)

    a = list(authors)
    store.write_parquet(
        "landing/catalog/authors.parquet",
        pa.table(
            {
                "author_id": a,
                "author_type": ["talent"] * len(a),
                "primary_category": [1] * len(a),
                "secondary_category": [-1] * len(a),
                "quality": [0.5] * len(a),
                "hosts_live": [True] * len(a),
            },
            schema=S.AUTHORS_SCHEMA,
        ),
    )
    v = list(videos)
    store.write_parquet(
        "landing/catalog/short_videos.parquet",
        pa.table(
            {
                "item_id": v,
                "author_id": [a[0]] * len(v),
                "category": [1] * len(v),
                "duration_ms": [55_000] * len(v),
                "publish_time_ms": [H0 - 86_400_000] * len(v),
                "embedding": emb(len(v)),
            },
            schema=S.SHORT_VIDEOS_SCHEMA,
        ),
    )
    r = list(rooms)
    store.write_parquet(
        "landing/catalog/rooms.parquet",
        pa.table(
            {
                "item_id": r,
                "author_id": [a[0]] * len(r),
                "category": [1] * len(r),
                "start_ms": [H0 - 600_000] * len(r),
                "end_ms": [H0 + 7_200_000] * len(r),
                "embedding": emb(len(r)),
            },
            schema=S.ROOMS_SCHEMA,
        ),
    )
