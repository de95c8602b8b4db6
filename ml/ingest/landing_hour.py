"""Raw-log ingestion of one landing hour: parse, type, validate, dedup, quarantine.

Every landing line ends up exactly once in one of three places — the clean table, the
duplicates, or quarantine with a reason — so counts in equal counts out (conservation).
Pure Python + pyarrow/numpy; the Dagster asset only calls ``ingest_hour`` and publishes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa

from ml import schema as S
from ml.hours import HOUR_MS, partition_key
from ml.ingest.dedup import deduplicate
from ml.ingest.dedup import repeated as repeated  # re-exported: sessions and tests use it
from ml.ingest.jsonl import count_lines, parse_json_lines
from ml.ingest.landing import (
    IncompleteLandingHourError,
    LandingManifest,
    read_event_files,
    read_event_pieces,
    read_landing_manifest,
)
from ml.ingest.validate import validate_events
from ml.io.store import Store


@dataclass(frozen=True)
class IngestConfig:
    # "fail": a corrupt, absent or short landing file fails the partition naming it.
    # "quarantine" (salvage): what is readable is ingested, the file gets a quarantine row
    # (corrupt_file | missing_file | short_file) and its unread lines are counted as lost.
    corrupt_files: Literal["fail", "quarantine"] = "fail"
    # Files are inflated and parsed in line-aligned pieces of about this size.
    piece_bytes: int = 32 << 20


@dataclass
class IngestResult:
    domain: str
    hour_ms: int
    clean: pa.Table
    quarantine: pa.Table  # one row per bad or duplicate line, plus one per damaged file
    lines_in: int  # the lines the sink's manifest lists for the hour
    lines_lost: int = 0  # listed lines that could not be read (salvage mode only)
    files: list[dict] = field(default_factory=list)
    unlisted_files: list[str] = field(default_factory=list)  # held, not in the manifest
    seconds: float = 0.0

    @property
    def reason_counts(self) -> dict[str, int]:
        reasons = self.quarantine.column("reason").to_pylist()
        return {r: reasons.count(r) for r in S.ALL_REASONS if r in reasons}

    @property
    def n_duplicates(self) -> int:
        return sum(v for k, v in self.reason_counts.items() if k in S.DUPLICATE_REASONS)

    @property
    def n_damaged_files(self) -> int:
        return sum(v for k, v in self.reason_counts.items() if k in S.FILE_REASONS)

    @property
    def n_quarantined(self) -> int:
        """Quarantined lines (file rows are not lines: their loss is ``lines_lost``)."""
        return self.quarantine.num_rows - self.n_duplicates - self.n_damaged_files

    def conserved(self) -> bool:
        """lines in = clean + duplicates + quarantined + lost."""
        out = self.clean.num_rows + self.n_duplicates + self.n_quarantined + self.lines_lost
        return self.lines_in == out

    def manifest(self) -> dict:
        counts = self.reason_counts
        types = self.clean.column("event_type").value_counts().to_pylist()
        return {
            "domain": self.domain,
            "partition": partition_key(self.hour_ms),
            "lines_in": self.lines_in,
            "clean": self.clean.num_rows,
            "duplicates": self.n_duplicates,
            "quarantined": self.n_quarantined,
            "lost": self.lines_lost,
            "damaged_files": self.n_damaged_files,
            "reasons": counts,
            "event_types": {
                d["values"]: d["counts"] for d in sorted(types, key=lambda d: d["values"])
            },
            "source_files": self.files,
            "unlisted_files": self.unlisted_files,
        }


def ingest_hour(
    store: Store,
    domain: str,
    hour_ms: int,
    *,
    known_items: pa.Array | None = None,
    prior_event_ids: pa.Array | None = None,
    config: IngestConfig = IngestConfig(),
) -> IngestResult:
    """Ingest landing hour ``hour_ms`` of ``domain``.

    known_items: item ids of the catalog (rooms for live, videos for short video); rows
        with other ids are quarantined as ``unknown_item``. None disables the check.
    prior_event_ids: event ids already ingested in the previous partition; re-deliveries
        of those are ``duplicate_prior_hour``.
    """
    if domain not in S.DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; expected one of {S.DOMAINS}")
    t0 = time.perf_counter()
    landing = read_landing_manifest(store, domain, hour_ms)
    salvage = config.corrupt_files == "quarantine"
    if landing.missing and not salvage:
        raise IncompleteLandingHourError(
            f"landing hour {store.url(landing.hour_dir)} is incomplete: its sink manifest "
            f"lists {', '.join(landing.missing)} "
            f"({sum(landing.lines[f] for f in landing.missing)} lines), absent"
        )
    q = _QuarantineBuilder(salvage)
    pieces, parsed_pieces, tables, row_piece, row_line = [], [], [], [], []
    file_stats: list[dict] = []
    errors: dict[str, str] = {}  # file -> why it could not be read whole
    line_base = 0  # lines of the current file before the current piece
    stream = read_event_pieces(
        store, landing.present, salvage_corrupt=salvage, piece_bytes=config.piece_bytes
    )
    for pi, piece in enumerate(stream):
        if not file_stats or file_stats[-1]["path"] != piece.rel_path:
            file_stats.append({"path": piece.rel_path, "bytes": piece.compressed_bytes, "lines": 0})
            line_base = 0
        parsed = parse_json_lines(piece.data, S.RAW_EVENT_SCHEMA)
        pieces.append(piece)
        parsed_pieces.append(parsed)
        tables.append(parsed.table)
        row_piece.append(np.full(parsed.table.num_rows, pi, np.int32))
        row_line.append(parsed.row_line + line_base)
        for line, reason, detail in parsed.bad:
            q.add(pi, line + line_base, reason, detail, None)
        line_base += parsed.n_lines
        file_stats[-1]["lines"] += parsed.n_lines
        if piece.error is not None:
            errors[piece.rel_path] = piece.error.reason
    lost = _account_for_listed_lines(store, landing, file_stats, errors, q)

    table = pa.concat_tables(tables) if tables else S.RAW_EVENT_SCHEMA.empty_table()
    rf = np.concatenate(row_piece) if row_piece else np.zeros(0, np.int32)
    rl = np.concatenate(row_line) if row_line else np.zeros(0, np.int64)

    codes = validate_events(table, domain, hour_ms, known_items)
    for i in np.flatnonzero(codes):
        reason = S.QUARANTINE_REASONS[codes[i] - 1]
        q.add(rf[i], rl[i], reason, _detail(reason, table, int(i), hour_ms), _eid(table, int(i)))

    valid = np.flatnonzero(codes == 0)
    keep, dups = deduplicate(table, valid, rf, rl, prior_event_ids, hour_ms)
    for i, reason, kept in dups:
        where = (
            "the previous partition"
            if kept < 0
            else f"line {rl[kept] + 1} of {pieces[rf[kept]].rel_path}"
        )
        q.add(rf[i], rl[i], reason, f"event_id already delivered in {where}", _eid(table, i))

    if len(keep) < table.num_rows:
        # Few rows go (duplicates, bad rows): the runs of kept rows as zero-copy slices,
        # instead of copying every column of the hour.
        brk = np.flatnonzero(np.diff(keep) != 1)
        first = np.concatenate((keep[:1], keep[brk + 1]))
        last = np.concatenate((keep[brk], keep[-1:]))
        clean = pa.concat_tables(
            [table.slice(a, b + 1 - a) for a, b in zip(first, last, strict=True)]
            or [table.schema.empty_table()]
        )
    else:
        clean = table
    rt = clean.column("report_time_ms").to_numpy()
    if len(rt) > 1 and np.any(rt[1:] < rt[:-1]):
        clean = clean.take(pa.array(np.argsort(rt, kind="stable")))
    return IngestResult(
        domain=domain,
        hour_ms=hour_ms,
        clean=clean,
        quarantine=q.build(pieces, parsed_pieces, line_bases(pieces, parsed_pieces)),
        lines_in=landing.lines_listed,
        lines_lost=lost,
        files=file_stats,
        unlisted_files=list(landing.unlisted),
        seconds=time.perf_counter() - t0,
    )


def ingest_hours(
    store: Store,
    domain: str,
    start_ms: int,
    hours: int,
    *,
    known_items: pa.Array | None = None,
    config: IngestConfig = IngestConfig(),
) -> list[IngestResult]:
    """Consecutive hours in order, each deduplicated against the one before — what the
    raw-events asset does over a backfill, for code and tests outside Dagster."""
    results: list[IngestResult] = []
    prior = None
    for i in range(hours):
        res = ingest_hour(
            store, domain, start_ms + i * HOUR_MS, known_items=known_items,
            prior_event_ids=prior, config=config,
        )  # fmt: skip
        prior = res.clean.column("event_id").combine_chunks()
        results.append(res)
    return results


def _account_for_listed_lines(
    store: Store, landing: LandingManifest, file_stats: list[dict], errors: dict, q
) -> int:
    """Each listed file's lines read against its listed count: a file row for every damaged
    file (salvage mode has let it through) and the number of listed lines lost.

    A file with more lines than listed changed after the sink finished the hour: that is
    no damage to salvage but a manifest that no longer describes the data, in either mode.
    """
    read = {f["path"]: f for f in file_stats}
    lost = 0
    for path in landing.files:
        listed = landing.lines[path]
        if path not in read:  # absent (salvage mode; the strict mode failed earlier)
            q.add_file(path, "missing_file", f"listed with {listed} lines, absent: all lost")
            file_stats.append({"path": path, "bytes": 0, "lines": 0, "lost": listed})
            lost += listed
            continue
        got = read[path]["lines"]
        if got > listed:
            raise IncompleteLandingHourError(
                f"{store.url(path)} holds {got} lines, its sink manifest lists {listed}: "
                "the file changed after the hour was marked complete"
            )
        if got == listed:
            continue
        if path in errors:
            q.add_file(
                path,
                "corrupt_file",
                f"{errors[path]}; {listed - got} of {listed} listed lines lost",
            )
        elif not q.salvage:
            raise IncompleteLandingHourError(
                f"{store.url(path)} is short: {got} lines, its sink manifest lists {listed}"
            )
        else:
            q.add_file(path, "short_file", f"{got} of {listed} listed lines: {listed - got} lost")
        read[path]["lost"] = listed - got
        lost += listed - got
    return lost


def _eid(table: pa.Table, i: int) -> str | None:
    return table.column("event_id")[i].as_py()


def _detail(reason: str, table: pa.Table, i: int, hour_ms: int) -> str:
    row = {c: table.column(c)[i].as_py() for c in table.column_names}
    if reason == "missing_id":
        return "missing: " + ", ".join(f for f in S.ID_FIELDS if row[f] in (None, ""))
    if reason == "unknown_event_type":
        return f"event_type {row['event_type']!r} is not a known event type"
    if reason == "missing_field":
        return f"{row['event_type']} event lacks " + ", ".join(
            f for f in ("watch_ms", "duration_ms", "gift_value") if row[f] is None
        )
    if reason == "report_time_outside_partition":
        return f"report_time_ms {row['report_time_ms']} outside [{hour_ms}, {hour_ms + HOUR_MS})"
    if reason in ("event_time_absurd", "event_after_report"):
        return f"event_time_ms {row['event_time_ms']} vs report_time_ms {row['report_time_ms']}"
    if reason in ("negative_value", "absurd_value"):
        return f"watch_ms={row['watch_ms']} duration_ms={row['duration_ms']} gift_value={row['gift_value']}"
    if reason == "unknown_page":
        return f"page {row['page']!r} is not one of {', '.join(S.PAGES)}"
    if reason == "unknown_item":
        return f"item_id {row['item_id']} not in the catalog"
    return reason


class _QuarantineBuilder:
    def __init__(self, salvage: bool) -> None:
        self.salvage = salvage
        self.rows: list[tuple[int, int, str, str, str | None]] = []
        self.file_rows: list[tuple[str, str, str]] = []

    def add(self, fi, line, reason: str, detail: str, event_id: str | None) -> None:
        self.rows.append((int(fi), int(line), reason, detail, event_id))

    def add_file(self, path: str, reason: str, detail: str) -> None:
        self.file_rows.append((path, reason, detail))

    def build(self, pieces, parsed_pieces, bases: list[int]) -> pa.Table:
        """Rows hold (piece, line in file); raw bytes come from the piece that has the line."""
        rows = sorted(self.rows, key=lambda r: (r[0], r[1]))
        raw = [parsed_pieces[r[0]].raw_line(pieces[r[0]].data, r[1] - bases[r[0]]) for r in rows]
        cols = {
            "source_file": [pieces[r[0]].rel_path for r in rows]
            + [p for p, _, _ in self.file_rows],
            "line_number": [r[1] + 1 for r in rows] + [0] * len(self.file_rows),
            "reason": [r[2] for r in rows] + [r for _, r, _ in self.file_rows],
            "detail": [r[3] for r in rows] + [d for _, _, d in self.file_rows],
            "event_id": [r[4] for r in rows] + [None] * len(self.file_rows),
            "raw_line": raw + [b""] * len(self.file_rows),
        }
        return pa.table(cols, schema=S.QUARANTINE_SCHEMA)


def line_bases(pieces, parsed_pieces) -> list[int]:
    """Per piece, the number of lines of its file in the pieces before it."""
    bases, prev_path, base = [], None, 0
    for piece, parsed in zip(pieces, parsed_pieces, strict=True):
        if piece.rel_path != prev_path:
            prev_path, base = piece.rel_path, 0
        bases.append(base)
        base += parsed.n_lines
    return bases


@dataclass(frozen=True)
class LandingRecount:
    listed: int  # lines the sink's manifest lists
    lost: int  # listed lines the files do not hold (absent files, short or corrupt files)


def recount_landing_lines(store: Store, domain: str, hour_ms: int) -> LandingRecount:
    """The hour's lines recounted from landing, independently of ingestion: the listed
    total, and how many of them the files (read with a corrupt file's readable prefix)
    do not hold: the conservation check's "lines in" and "lost"."""
    landing = read_landing_manifest(store, domain, hour_ms)
    held = {
        f.rel_path: count_lines(f.data)
        for f, _ in read_event_files(store, landing.present, salvage_corrupt=True)
    }
    lost = sum(max(n - held.get(path, 0), 0) for path, n in landing.lines.items())
    return LandingRecount(landing.lines_listed, lost)
