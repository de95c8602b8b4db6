"""Import the public KuaiLive-M3 dataset into the landing zone (DESIGN §4), so the same
ingestion, assets and checks run on it unchanged::

    python -m ml.importers.kuailive_m3 --src DIR --out LIVECROSS_HOME \\
        [--start YYYY-MM-DD-HH:00] [--hours N]

Mapping (source table -> landing; column names as in the published schema):

* live impression <- ``live_show`` (show_timestamp); page "feed" (no source context).
* live enter / exit <- ``live_interaction`` live_play_start / end_timestamp; exit carries
  watch_ms = play_duration; page from live_source_category (below).
* live gift / follow <- ``live_interaction`` send_gift_cnt / follow_author_cnt. They have no
  timestamp, so the n events of a session are placed evenly inside it:
  t_k = start + (k + 1) * (end - start) // (n + 1), k = 0..n-1 (integer ms). gift_value =
  send_gift_num / n for each gift; a session with send_gift_num > 0 but send_gift_cnt = 0
  gets one gift carrying them all. like_cnt / comment_cnt / share_cnt are NOT used (those
  events come from their own tables, with real times).
* live like <- ``live_like`` (author from the room); comment <- ``live_comment``
  (live_stream_id, comment_ts); share <- ``live_share`` (every row, is_share_success unused).
* short-video impression (enter_timestamp) and play (leave_timestamp, watch_ms = leave -
  enter, duration_ms = photo_meta.duration) <- ``photo_play``; like (like_status_type in
  LIKE_VALUES) and follow (is_follow_after_play = 1 and is_follow_before_play != 1) are
  placed at leave time. ``photo_interaction`` is a user x video DAY aggregate without
  timestamps: it cannot be placed in report hours without inventing times, and its plays
  are already photo_play rows, so it is not imported.
* page: the first keyword found in live_source_category / enter_play_type (follow, search,
  live_square, explore; see kuailive_events.PAGE_WORDS), else "feed".
* event_id = table prefix ("KL-show-", "KL-sess-", "KL-like-", "KL-cmnt-", "KL-shar-",
  "KL-play-") + 16 digits (row number x 100000 + the event's index in the row).
* report_time_ms = event_time_ms: the dataset has no report time, so nothing is reported
  late and no label is missing because of log delay (no false negatives from reporting);
  positives that happen late in a long watch still reach only the slow stream.
* catalog (kuailive_catalog): authors <- author_profile (quality from the fans_user_num bin
  rank, primary/secondary category = the author's most common first-level photo_tag
  categories, author_type from the primary category's name: game / talent keywords, else
  chat; hosts_live = is_live_author); short_videos <- photo_meta + photo_tag (category =
  index in landing/catalog/taxonomy.json, -1 if untagged) + photo_emb_128;
  publish_time_ms = the video's first photo_play enter time (an upper bound; null if never
  played); rooms <- live_room_meta (+ live_emb_64), category = the author's primary one.
  Embeddings: the contract's 32-d ``embedding`` is a fixed seeded random projection of the
  source vector, L2-normalised (kuailive_common.reduce_embedding); the source vector is kept
  in the extra column ``embedding_full`` and ``has_embedding`` is False (zero vector) for
  items without one.
* segments <- live_emb_128_ts re-bucketed to 30 s per room, time-weighted, visual = 3 x 10 s
  frames projected to 32-d (kuailive_segments); asr and comment are zero vectors: the
  dataset has no text features.

Bad source rows are rejected whole with one reason, counted per table in
``landing/_import_report.json`` and written to ``landing/_import_rejects/<table>.parquet``
(file, 1-based row number, reason, the row's used columns as JSON). Events (and segments)
outside --start/--hours are counted as outside_range, per event. Same input, same bytes;
a re-run replaces every hour it writes whole (hours outside the run's window are left).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from ml import schema as S
from ml.hours import HOUR_MS, InvalidHourError, landing_dir, parse_hour, partition_key
from ml.importers.kuailive_catalog import build_catalog, write_catalog
from ml.importers.kuailive_common import Context, TableStats, Window
from ml.importers.kuailive_events import EVENT_SCHEMA, event_pass, write_event_hour
from ml.importers.kuailive_segments import TABLE, segment_pass, write_content_hour
from ml.importers.kuailive_source import (
    NOT_IMPORTED,
    REQUIRED_TABLES,
    TABLES,
    MissingTableError,
    SourceError,
    check_columns,
    locate,
)
from ml.io.store import StorageError, Store

REPORT = "landing/_import_report.json"
REJECTS_DIR = "landing/_import_rejects"
MISSING_MEANS = {
    "user_id_set": "user ids are not checked",
    "live_show": "no live impressions",
    "live_interaction": "no live enter/exit/gift/follow events",
    "live_like": "no live likes",
    "live_comment": "no live comments",
    "live_share": "no live shares",
    "photo_play": "no short-video events; publish_time_ms is null",
    "photo_tag": "short-video categories are -1 and authors have no primary category",
    "photo_emb_128": "short-video embeddings are zero vectors (has_embedding false)",
    "live_emb_64": "room embeddings are zero vectors (has_embedding false)",
    TABLE: "no content segments (landing/content hours are empty)",
}


@dataclass
class ImportSummary:
    src: str
    out: str
    hours: list[str] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)
    catalog: dict[str, int] = field(default_factory=dict)
    segments: int = 0
    rejected: int = 0
    outside_range: int = 0
    warnings: list[str] = field(default_factory=list)
    bytes_written: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        span = f"{self.hours[0]}..{self.hours[-1]}" if self.hours else "none"
        return (
            f"kuailive_m3: {self.src} -> {self.out}: {len(self.hours)} h ({span}); events "
            + ", ".join(f"{d} {self.events.get(d, 0):,}" for d in S.DOMAINS)
            + f"; catalog {self.catalog.get('authors', 0):,} authors, "
            f"{self.catalog.get('short_videos', 0):,} videos, {self.catalog.get('rooms', 0):,} rooms; "
            f"{self.segments:,} segments; {self.rejected:,} rejected, "
            f"{self.outside_range:,} outside range; {len(self.warnings)} warnings "
            f"(see {REPORT}); {self.bytes_written / 1e6:.1f} MB in {self.seconds:.1f} s"
        )


def import_kuailive(
    src: str | os.PathLike,
    out: Store | str | os.PathLike,
    *,
    start: str | None = None,
    hours: int | None = None,
    batch_rows: int = 1_000_000,
    spill_mb: float = 128,
    max_lines_per_file: int = 1_000_000,
    tmp_dir: str | None = None,
    keep_full_embeddings: bool = True,
    progress: bool = True,
) -> ImportSummary:
    """Import KuaiLive-M3 from ``src`` into ``out``'s landing zone (see the module doc)."""
    t0 = time.perf_counter()
    src = os.path.abspath(os.fspath(src))
    if not os.path.isdir(src):
        raise SourceError(f"source directory {src} does not exist")
    store = out if isinstance(out, Store) else Store(os.fspath(out))
    if hours is not None and start is None:
        raise ValueError("hours needs start")
    start_ms = parse_hour(start) if start is not None else None
    if start_ms is None:
        window = Window()
    else:  # --start alone: from that hour to the end of the data
        end_ms = start_ms + hours * HOUR_MS if hours is not None else np.iinfo(np.int64).max
        window = Window(start_ms, end_ms)
    sources, stats, warnings = {}, {}, []
    for name in TABLES:
        found = locate(src, name)
        if found is None:
            if name in REQUIRED_TABLES:
                raise MissingTableError(
                    f"{src}: required table {name!r} not found "
                    f"(expected {name}.parquet, {name}.csv or a {name}/ directory of shards)"
                )
            stats[name] = TableStats(missing=True)
            warnings.append(f"optional table {name} not found: {MISSING_MEANS[name]}")
            continue
        check_columns(found)
        sources[name] = found
        stats[name] = TableStats(files=[found.rel(f) for f in found.files])
    for name, why in NOT_IMPORTED.items():
        found = locate(src, name)
        if found is not None:
            stats[name] = TableStats(
                files=[found.rel(f) for f in found.files], note=f"not imported: {why}"
            )
    store.check_reachable()
    local_tmp = tmp_dir or (None if store.is_s3 else store.root)
    tmp = tempfile.mkdtemp(prefix=".kuailive-import-", dir=local_tmp)
    summary = ImportSummary(src=src, out=store.root, warnings=warnings)
    ctx = Context(
        sources, stats, window, tmp, batch_rows, int(spill_mb * (1 << 20)), progress, warnings
    )
    try:
        summary.bytes_written = _run(
            ctx, store, summary, max_lines_per_file, keep_full_embeddings, start_ms, hours
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary.seconds = time.perf_counter() - t0
    return summary


def _run(
    ctx: Context, store: Store, summary: ImportSummary, max_lines, keep_full, start_ms, n_hours
) -> int:
    cat = build_catalog(ctx)
    seen_hours: set[int] = set()
    events = ctx.spill("events", EVENT_SCHEMA)
    event_pass(ctx, cat, events, seen_hours)
    events.flush()  # free the buffer while the segments are re-bucketed
    content = segment_pass(ctx, cat, seen_hours)
    for kind, table in (("videos", "photo_emb_128"), ("rooms", "live_emb_64")):
        missing = int(np.sum(~cat.has_emb[kind]))
        if ctx.has(table) and missing:
            ctx.warnings.append(
                f"{missing} {kind} have no {table} row: zero embedding, has_embedding false"
            )
    written = write_catalog(ctx, store, cat, keep_full)
    if n_hours is not None:
        hour_list = [start_ms + i * HOUR_MS for i in range(n_hours)]
    elif seen_hours:
        first = min(seen_hours) if start_ms is None else start_ms
        hour_list = list(range(first, max(seen_hours) + HOUR_MS, HOUR_MS))
    else:
        hour_list = []
    counts = dict.fromkeys(S.DOMAINS, 0)
    threads = max(1, min(4, os.cpu_count() or 1))
    with (
        ThreadPoolExecutor(threads) as pool,
        tqdm(
            total=len(hour_list),
            desc="kuailive hours",
            unit="h",
            file=sys.stderr,
            disable=not ctx.progress,
        ) as bar,
    ):
        for h in hour_list:
            for domain in S.DOMAINS:
                n, b = write_event_hour(store, events, domain, h, max_lines, pool)
                counts[domain] += n
                written += b
            written += write_content_hour(store, content, h)
            bar.update()
    events.close()
    if content is not None:
        summary.segments = sum(content.rows.values())
        content.close()
    written += ctx.publish_rejects(store, REJECTS_DIR)
    summary.hours = [landing_dir(h) for h in hour_list]
    summary.events = counts
    summary.catalog = {
        "authors": ctx.stats["author_profile"].out_rows,
        "short_videos": ctx.stats["photo_meta"].out_rows,
        "rooms": ctx.stats["live_room_meta"].out_rows,
    }
    summary.rejected = sum(sum(s.rejected.values()) for s in ctx.stats.values())
    summary.outside_range = sum(s.outside_range for s in ctx.stats.values())
    report = {
        "source": "kuailive_m3",
        "src": summary.src,
        "window": {
            "start": None if start_ms is None else partition_key(start_ms),
            "hours": n_hours,
        },
        "hours": summary.hours,
        "events": counts,
        "catalog": {**summary.catalog, "categories": len(cat.taxonomy)},
        "segments": summary.segments,
        "rejected": summary.rejected,
        "outside_range": summary.outside_range,
        "tables": {name: ctx.stats[name].to_dict() for name in sorted(ctx.stats)},
        "warnings": ctx.warnings,
    }
    body = json.dumps(report, indent=1, sort_keys=True, ensure_ascii=False).encode()
    return written + store.write_bytes(REPORT, body)


# ---- CLI ---------------------------------------------------------------------------------------
def _hour(text: str) -> str:
    try:
        parse_hour(text)
    except InvalidHourError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return text


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _directory(text: str) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ml.importers.kuailive_m3",
        description="Import the public KuaiLive-M3 dataset into LIVECROSS_HOME/landing "
        "(events per report hour, content segments, catalog).",
    )
    p.add_argument(
        "--src", required=True, type=_directory, help="directory holding the dataset's files"
    )
    p.add_argument(
        "--out",
        required=True,
        help="data root (LIVECROSS_HOME): a local directory or s3://bucket/prefix",
    )
    p.add_argument(
        "--start", type=_hour, help="first report hour to import, YYYY-MM-DD-HH:00 (UTC)"
    )
    p.add_argument(
        "--hours", type=_positive, help="number of hours from --start (default: to the end)"
    )
    p.add_argument(
        "--batch-rows", type=_positive, default=1_000_000, help="source rows read at once"
    )
    p.add_argument(
        "--spill-mb",
        type=_positive,
        default=128,
        help="MB buffered per spill before writing it to local disk",
    )
    p.add_argument("--max-lines-per-file", type=_positive, default=1_000_000)
    p.add_argument(
        "--tmp-dir",
        help="local directory for spill files (default: inside --out, or the system temp for S3)",
    )
    p.add_argument(
        "--no-full-embeddings",
        action="store_true",
        help="do not keep the source vectors (embedding_full)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.hours is not None and args.start is None:
        parser.error("--hours needs --start")
    try:
        summary = import_kuailive(
            args.src, args.out, start=args.start, hours=args.hours, batch_rows=args.batch_rows,
            spill_mb=args.spill_mb, max_lines_per_file=args.max_lines_per_file,
            tmp_dir=args.tmp_dir, keep_full_embeddings=not args.no_full_embeddings,
            progress=not args.quiet,
        )  # fmt: skip
    except (SourceError, StorageError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
