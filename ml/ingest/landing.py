"""Reading the landing zone: what a Kafka → object-store hourly sink wrote.

Layout (DESIGN §4), per report hour ``YYYY-MM-DD-HH``::

    landing/live/<hour>/*.jsonl.gz         one JSON event per line
    landing/live/<hour>/_SUCCESS           the sink's manifest, written last
    landing/short_video/<hour>/...
    landing/content/<hour>/segments.parquet
    landing/catalog/{authors,short_videos,rooms}.parquet

The sink's manifest is the contract of an event hour: ``{"files": {name: bytes},
"lines": {name: lines}, ...}`` names every file the hour holds (any suffix, subfolders
included) and how many lines each has. An hour without it is still being written (not
ready); a listed file that is absent or shorter than its count is an incomplete hour; a
file it does not list is reported and not read.
"""

from __future__ import annotations

import json
import posixpath
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

try:  # Intel ISA-L inflates ~2.5x faster than zlib, with the same API; zlib is the fallback.
    from isal import isal_zlib as zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    import zlib

from ml.hours import landing_dir
from ml.io.store import StorageError, Store

SINK_MANIFEST = "_SUCCESS"
GZIP_MAGIC = b"\x1f\x8b"
_INFLATE_INPUT = 1 << 20  # compressed bytes per decompress call


class MissingLandingHourError(StorageError):
    """The landing zone has no directory (or no event file) for the requested hour."""


class LandingHourNotReadyError(StorageError):
    """The hour has files but no sink manifest yet: the sink is still writing it."""


class IncompleteLandingHourError(StorageError):
    """The sink's manifest lists what the hour does not hold (absent or short files)."""


class CorruptFileError(StorageError):
    """A landing file cannot be decoded (truncated or damaged gzip, bad Parquet)."""

    def __init__(self, path: str, reason: str, salvaged: bytes = b""):
        super().__init__(f"corrupt landing file {path}: {reason}")
        self.path = path
        self.reason = reason
        self.salvaged = salvaged  # the bytes decoded before the damage


@dataclass(frozen=True)
class LandingFile:
    rel_path: str  # relative to the data root, e.g. landing/live/2026-01-01-00/part-00000.jsonl.gz
    compressed_bytes: int
    data: bytes  # decompressed JSON Lines


def event_hour_dir(domain: str, hour_ms: int) -> str:
    return posixpath.join("landing", domain, landing_dir(hour_ms))


@dataclass(frozen=True)
class LandingManifest:
    """An event hour as its sink's manifest describes it, checked against the listing.

    Paths are relative to the data root. ``files`` are the listed files in the manifest's
    (sorted) order, ``lines`` their listed line counts; ``missing`` the listed files the
    hour does not hold, ``unlisted`` the files it holds that the manifest does not name.
    """

    hour_dir: str
    files: tuple[str, ...]
    lines: dict[str, int] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    unlisted: tuple[str, ...] = ()

    @property
    def present(self) -> list[str]:
        gone = set(self.missing)
        return [f for f in self.files if f not in gone]

    @property
    def lines_listed(self) -> int:
        return sum(self.lines.values())


def read_landing_manifest(store: Store, domain: str, hour_ms: int) -> LandingManifest:
    """The hour's sink manifest, checked against what the hour directory holds.

    Raises MissingLandingHourError when the hour has no files at all,
    LandingHourNotReadyError when it has files but no manifest (the sink is still writing),
    and IncompleteLandingHourError when the manifest cannot be read as the contract.
    """
    d = event_hour_dir(domain, hour_ms)
    held = _files_under(store, d)
    if not held:
        raise MissingLandingHourError(
            f"missing landing hour: no files under {store.url(d)} "
            f"(the {domain} sink has not delivered {landing_dir(hour_ms)} yet?)"
        )
    marker = posixpath.join(d, SINK_MANIFEST)
    if marker not in held:
        raise LandingHourNotReadyError(
            f"landing hour {store.url(d)} is not ready: {len(held)} file(s) but no "
            f"{SINK_MANIFEST} manifest (the {domain} sink writes it last, once the hour is "
            "complete); ingest it once the manifest is there"
        )
    try:
        body = json.loads(store.read_bytes(marker))
        names = sorted(body["files"])
        lines = {posixpath.join(d, n): int(body["lines"][n]) for n in names}
        if bad := [n for n in names if n.startswith("/") or ".." in n.split("/")]:
            raise ValueError(f"file names outside the hour directory: {bad}")
    except (ValueError, KeyError, TypeError) as e:
        raise IncompleteLandingHourError(
            f"the sink manifest {store.url(marker)} does not list files and their line "
            f"counts ({type(e).__name__}: {e})"
        ) from e
    files = tuple(posixpath.join(d, n) for n in names)
    held.discard(marker)
    return LandingManifest(
        hour_dir=d,
        files=files,
        lines=lines,
        missing=tuple(f for f in files if f not in held),
        unlisted=tuple(sorted(held - set(files))),
    )


def _files_under(store: Store, rel_dir: str) -> set[str]:
    """Every file under ``rel_dir``, subfolders included, as root-relative paths."""
    found = {posixpath.join(rel_dir, n) for n in store.list(rel_dir)}
    for sub in store.list_dirs(rel_dir):
        found |= _files_under(store, posixpath.join(rel_dir, sub))
    return found


def inflate(data: bytes, path: str, piece_bytes: int = 32 << 20) -> Iterator[bytes]:
    """Decompress a (possibly multi-member) gzip stream in pieces of about ``piece_bytes``
    that end on a line boundary (the last piece may lack its final newline).

    Raises CorruptFileError when the stream is damaged or truncated; its ``salvaged``
    holds the decoded bytes after the last piece yielded.
    """
    # The input is fed in small slices of a memoryview and the output collected in a
    # list joined once per piece: copying the unconsumed input or the growing output on
    # every call costs as much as a third of the inflate itself.
    view = memoryview(data)
    pos, parts, size = 0, [], 0  # parts: decoded bytes not yet yielded, size bytes in all
    while pos < len(view):
        d = zlib.decompressobj(wbits=31)
        while not d.eof:
            chunk = view[pos : pos + _INFLATE_INPUT]  # empty at the end: drains the window
            try:
                out = d.decompress(chunk, piece_bytes)
            except zlib.error as e:
                raise CorruptFileError(path, f"gzip stream damaged ({e})", b"".join(parts)) from e
            if not chunk and not out:
                raise CorruptFileError(
                    path, "gzip stream truncated (no end of stream)", b"".join(parts)
                )
            pos += len(chunk) - len(d.unconsumed_tail) - len(d.unused_data)
            if out:
                parts.append(out)
                size += len(out)
            if size >= piece_bytes and (cut := out.rfind(b"\n")) >= 0:
                parts[-1] = out[: cut + 1]
                yield b"".join(parts)
                parts = [out[cut + 1 :]]
                size = len(parts[0])
        if view[pos : pos + 1] == b"\x00" and not bytes(view[pos:]).strip(b"\x00"):
            break  # zero padding after the last member, as some sinks write
    if size:
        yield b"".join(parts)


def gunzip(data: bytes, path: str) -> bytes:
    """The whole decompressed stream; CorruptFileError (with what was decoded) if damaged."""
    out: list[bytes] = []
    try:
        for piece in inflate(data, path):
            out.append(piece)
    except CorruptFileError as e:
        raise CorruptFileError(path, e.reason, b"".join(out) + e.salvaged) from e
    return b"".join(out)


@dataclass(frozen=True)
class Piece:
    """A line-aligned piece of a decompressed landing file."""

    file_index: int
    rel_path: str
    compressed_bytes: int  # of the whole file
    data: bytes
    error: CorruptFileError | None = None  # set on the salvaged last piece of a corrupt file


def read_event_pieces(
    store: Store, paths: list[str], *, salvage_corrupt: bool = False, piece_bytes: int = 32 << 20
) -> Iterator[Piece]:
    """Pieces of the event files in order, inflated one piece ahead on a worker thread
    (ISA-L/zlib release the GIL) while the caller parses the current one."""
    q: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for fi, path in enumerate(paths):
                raw = store.read_bytes(path)
                if raw[:2] != GZIP_MAGIC:  # plain JSON Lines, whatever the file is called
                    _put(q, stop, Piece(fi, path, len(raw), raw))
                    continue
                sent = 0
                try:
                    for data in inflate(raw, store.url(path), piece_bytes):
                        if not _put(q, stop, Piece(fi, path, len(raw), data)):
                            return
                        sent += 1
                except CorruptFileError as e:
                    if not salvage_corrupt:
                        raise
                    _put(q, stop, Piece(fi, path, len(raw), e.salvaged, e))
                    sent += 1
                if not sent:  # an empty file is still a file: one empty piece
                    _put(q, stop, Piece(fi, path, len(raw), b""))
            _put(q, stop, None)
        except BaseException as e:  # handed to the consumer, raised there
            _put(q, stop, e)

    worker = threading.Thread(target=produce, name="landing-inflate", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=60)


def _put(q: queue.Queue, stop: threading.Event, item) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def read_event_files(
    store: Store, paths: list[str], *, salvage_corrupt: bool = False
) -> Iterator[tuple[LandingFile, CorruptFileError | None]]:
    """Whole decompressed files in path order (for recounts); see ``read_event_pieces``."""
    by_file: dict[int, list[Piece]] = {}
    for piece in read_event_pieces(store, paths, salvage_corrupt=salvage_corrupt):
        by_file.setdefault(piece.file_index, []).append(piece)
    for _, pieces in sorted(by_file.items()):
        data = b"".join(p.data for p in pieces)
        yield LandingFile(pieces[0].rel_path, pieces[0].compressed_bytes, data), pieces[-1].error
