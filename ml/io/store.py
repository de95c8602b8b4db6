"""One data root, local or S3, with atomic writes and published partitions.

The root is a local directory or an ``s3://bucket/prefix`` URL; everything goes through
fsspec so the same code serves both. Two rules make readers safe without locks:

* every object is written whole: a local temp file + ``os.replace``, or one S3 PUT
  (never ``mv``, which is copy + delete on S3);
* a partition directory is *published* by a ``_SUCCESS`` manifest written last, which
  lists the files that belong to it. Readers read only the listed files of a published
  partition, so a half-written or stale file is never seen.

Each S3 Store call has one deadline, retries included (``storage_timeout_s``): past it the
call is cancelled and ``StorageUnreachableError`` names the endpoint.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.asyn import sync
from fsspec.exceptions import FSTimeoutError

SUCCESS = "_SUCCESS"
DEFAULT_HOME = "./.livecross"
TIMEOUT_ENV = "LIVECROSS_STORAGE_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 30.0
_WRITE_ALLOWANCE_BPS = 1 << 20  # a write's deadline grows by 1 s per MiB sent
# s3fs retries around botocore's own (3 attempts): 5 x 3 x read_timeout was ~40 min.
_S3FS_RETRIES = 2


class StorageError(RuntimeError):
    """A problem with the data root itself (missing object, bad layout)."""


class StorageUnreachableError(StorageError):
    """The data root cannot be reached at all (endpoint down, bad credentials)."""


class UnpublishedPartitionError(StorageError):
    """A reader asked for a partition that has no ``_SUCCESS`` manifest."""


_UNREACHABLE_MARKERS = (
    "EndpointConnectionError",
    "ConnectTimeout",
    "ConnectionRefused",
    "Cannot connect",
    "Could not connect",
    "NoCredentials",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
    "AccessDenied",
    "ServerDisconnected",
    "ReadTimeout",
)


def storage_timeout_s(value: float | None = None) -> float:
    """Deadline of one Store call on S3, in seconds (writes get 1 s more per MiB): ``value``,
    else ``$LIVECROSS_STORAGE_TIMEOUT_S``, else 30 s."""
    if value is None:
        raw = os.environ.get(TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_TIMEOUT_S
        try:
            value = float(raw)
        except ValueError:
            raise StorageError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise StorageError(f"storage timeout must be a positive number of seconds, not {value!r}")
    return float(value)


def s3_storage_options(
    endpoint_url: str | None = None,
    key: str | None = None,
    secret: str | None = None,
    region: str | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """s3fs options from explicit values, falling back to the standard ``AWS_*`` variables.
    botocore's 3 attempts fit in the deadline ``timeout_s``; the Store enforces it anyway."""
    timeout = storage_timeout_s(timeout_s)
    endpoint_url = (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    opts: dict[str, Any] = {
        # A fresh instance per Store: tests and multi-endpoint setups must not share one.
        "skip_instance_cache": True,
        # Listings are re-read on every call: a partition can be republished by another process.
        "use_listings_cache": False,
        "config_kwargs": {
            "connect_timeout": min(5.0, timeout / 3),
            "read_timeout": max(1.0, timeout / 3),
            "retries": {"max_attempts": 3, "mode": "standard"},
        },
    }
    client_kwargs: dict[str, Any] = {}
    if endpoint_url:
        client_kwargs["endpoint_url"] = endpoint_url
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        client_kwargs["region_name"] = region
    if client_kwargs:
        opts["client_kwargs"] = client_kwargs
    if key:
        opts["key"] = key
    if secret:
        opts["secret"] = secret
    return opts


class Store:
    """A data root (``LIVECROSS_HOME``): local directory or ``s3://bucket/prefix``.

    All paths given to methods are relative to the root and use ``/``.
    """

    def __init__(
        self,
        root: str,
        storage_options: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ):
        root = str(root).rstrip("/")
        self.timeout_s = storage_timeout_s(timeout_s)
        self.is_s3 = root.startswith("s3://")
        if self.is_s3:
            bucket = root[len("s3://") :].split("/", 1)[0]
            if len(bucket) < 3:
                raise StorageError(f"invalid S3 root {root!r}: bucket name must be >= 3 characters")
            opts = storage_options or s3_storage_options(timeout_s=self.timeout_s)
            self.fs = fsspec.filesystem("s3", **opts)
            self.fs.retries = _S3FS_RETRIES  # a class attribute in s3fs, not an option
            self._base = root[len("s3://") :]
        elif "://" in root:
            raise StorageError(
                f"unsupported data root {root!r}: use a local path or s3://bucket/prefix"
            )
        else:
            self._base = os.path.abspath(root)
            self.fs = fsspec.filesystem("file")
        self.root = root if self.is_s3 else self._base

    @classmethod
    def from_env(cls) -> Store:
        return cls(os.environ.get("LIVECROSS_HOME", DEFAULT_HOME))

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    # ---- paths -------------------------------------------------------------------------
    def _full(self, rel: str) -> str:
        rel = rel.strip("/")
        if ".." in rel.split("/"):
            raise StorageError(f"path {rel!r} escapes the data root")
        return posixpath.join(self._base, rel) if rel else self._base

    def url(self, rel: str = "") -> str:
        full = self._full(rel)
        return f"s3://{full}" if self.is_s3 else full

    def child(self, rel: str) -> Store:
        """A Store rooted at a sub-directory, sharing this one's filesystem."""
        sub = Store.__new__(Store)
        sub.is_s3, sub.fs, sub._base = self.is_s3, self.fs, self._full(rel)
        sub.timeout_s = self.timeout_s
        sub.root = f"s3://{sub._base}" if self.is_s3 else sub._base
        return sub

    def endpoint(self) -> str:
        """The S3 endpoint URL this Store talks to (for error messages)."""
        fs = self.fs
        url = getattr(fs, "endpoint_url", None) or (fs.client_kwargs or {}).get("endpoint_url")
        client = getattr(fs, "_s3", None)
        url = url or getattr(getattr(client, "meta", None), "endpoint_url", None)
        return url or "https://s3.amazonaws.com (default)"

    @contextlib.contextmanager
    def _guard(self, what: str, nbytes: int = 0) -> Iterator[_Call]:
        call = _Call(self, what, self.timeout_s + nbytes / _WRITE_ALLOWANCE_BPS)
        try:
            yield call
        except StorageError:
            raise
        except FileNotFoundError as e:
            raise StorageError(f"{what}: not found in data root {self.root!r}") from e
        except Exception as e:
            text = f"{type(e).__name__}: {e}"
            if isinstance(e, (ConnectionError, TimeoutError, PermissionError, OSError)) or any(
                m in text for m in _UNREACHABLE_MARKERS
            ):
                at = f" (S3 endpoint {self.endpoint()})" if self.is_s3 else ""
                raise StorageUnreachableError(
                    f"data root {self.root!r} is unreachable{at} while trying to {what}: {text}"
                ) from e
            raise

    def check_reachable(self) -> None:
        """Fail with a clear error now rather than deep inside a computation: on S3 the
        bucket is listed, so a missing bucket is named as such, not as a missing file."""
        bucket = self._base.split("/", 1)[0]
        what = f"list bucket {bucket!r}" if self.is_s3 else "create the data root"
        with self._guard(what) as call:
            if self.is_s3:
                try:
                    call("ls", bucket, detail=False)
                except FileNotFoundError:
                    raise StorageUnreachableError(
                        f"bucket {bucket!r} does not exist at S3 endpoint {self.endpoint()} "
                        f"(data root {self.root!r}): create it, or point LIVECROSS_HOME elsewhere"
                    ) from None
            else:
                os.makedirs(self._base, exist_ok=True)

    # ---- plain objects -----------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        with self._guard(f"check {rel!r}") as call:
            return call("exists", self._full(rel))

    def list(self, rel_dir: str, suffix: str | None = None) -> list[str]:
        """File names (not paths) directly under ``rel_dir``, sorted; [] if it does not exist."""
        full = self._full(rel_dir)
        with self._guard(f"list {rel_dir!r}") as call:
            if not call("exists", full):
                return []
            entries = _items(call("ls", full, detail=True))
            names = [
                posixpath.basename(p.rstrip("/")) for p, i in entries if i.get("type") == "file"
            ]
        return sorted(n for n in names if suffix is None or n.endswith(suffix))

    def list_dirs(self, rel_dir: str) -> list[str]:
        full = self._full(rel_dir)
        with self._guard(f"list {rel_dir!r}") as call:
            if not call("exists", full):
                return []
            entries = _items(call("ls", full, detail=True))
        return sorted(
            posixpath.basename(p.rstrip("/")) for p, i in entries if i.get("type") == "directory"
        )

    def read_bytes(self, rel: str) -> bytes:
        with self._guard(f"read {rel!r}") as call:
            return call("cat_file", self._full(rel))

    def size(self, rel: str) -> int:
        with self._guard(f"stat {rel!r}") as call:
            return int(call("size", self._full(rel)))

    def write_bytes(self, rel: str, data: bytes) -> int:
        """Write one object whole (readers never see a partial object)."""
        full = self._full(rel)
        with self._guard(f"write {rel!r}", nbytes=len(data)) as call:
            if self.is_s3:
                call("pipe_file", full, data)  # one PUT
            else:
                d = os.path.dirname(full)
                os.makedirs(d, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                    os.chmod(tmp, 0o644)  # mkstemp makes 0600; published data is readable
                    os.replace(tmp, full)
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                    raise
        return len(data)

    def delete(self, rel: str) -> None:
        full = self._full(rel)
        with self._guard(f"delete {rel!r}") as call:
            if call("exists", full):
                call("rm", full, recursive=True)

    # ---- tables ------------------------------------------------------------------------
    def write_parquet(self, rel: str, table: pa.Table) -> int:
        return self.write_bytes(rel, parquet_bytes(table))

    def read_parquet(self, rel: str, columns: list[str] | None = None) -> pa.Table:
        data = self.read_bytes(rel)
        try:
            return pq.read_table(io.BytesIO(data), columns=columns)
        except (pa.ArrowInvalid, OSError) as e:
            raise StorageError(f"corrupt Parquet file {self.url(rel)}: {e}") from e

    # ---- published partitions ----------------------------------------------------------
    def publish(self, rel_dir: str, files: dict[str, bytes], manifest: dict[str, Any]) -> int:
        """Replace the partition at ``rel_dir`` whole: unpublish, wipe, write, publish last.

        Returns the number of bytes written (data files, not the manifest).
        """
        self.delete(posixpath.join(rel_dir, SUCCESS))
        self.delete(rel_dir)
        written = 0
        for name in sorted(files):
            written += self.write_bytes(posixpath.join(rel_dir, name), files[name])
        body = dict(manifest)
        body["files"] = {name: len(files[name]) for name in sorted(files)}
        self.write_bytes(
            posixpath.join(rel_dir, SUCCESS),
            json.dumps(body, sort_keys=True, indent=1).encode(),
        )
        return written

    def manifest(self, rel_dir: str) -> dict[str, Any] | None:
        """The partition's manifest, or None if it is not published."""
        rel = posixpath.join(rel_dir, SUCCESS)
        if not self.exists(rel):
            return None
        return json.loads(self.read_bytes(rel))

    def read_published(
        self, rel_dir: str, columns: list[str] | None = None, schema: pa.Schema | None = None
    ) -> pa.Table:
        """Concatenate the Parquet files listed in a published partition's manifest."""
        man = self.manifest(rel_dir)
        if man is None:
            raise UnpublishedPartitionError(f"{self.url(rel_dir)} is not published (no {SUCCESS})")
        tables = [
            self.read_parquet(posixpath.join(rel_dir, name), columns=columns)
            for name in man["files"]
            if name.endswith(".parquet")
        ]
        if not tables:
            if schema is None:
                raise StorageError(
                    f"{self.url(rel_dir)} holds no Parquet file and no schema was given"
                )
            if columns is not None:
                schema = pa.schema([schema.field(c) for c in columns])
            return schema.empty_table()
        return pa.concat_tables(tables)


class _Call:
    """Runs filesystem methods for one Store call, all of them within one deadline."""

    def __init__(self, store: Store, what: str, budget_s: float):
        self.store, self.what, self.budget_s = store, what, budget_s
        self.deadline = time.monotonic() + budget_s

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        fs = self.store.fs
        if not self.store.is_s3:
            return getattr(fs, method)(*args, **kwargs)
        left = self.deadline - time.monotonic()
        try:
            if left <= 0:
                raise FSTimeoutError
            # The coroutine itself, run with a timeout: at the deadline it is cancelled
            # (and the waiting here stops) whatever the retry loops inside would still do.
            return sync(fs.loop, getattr(fs, f"_{method}"), *args, timeout=left, **kwargs)
        except FSTimeoutError as e:
            if time.monotonic() < self.deadline - 0.05:
                raise  # a timeout of the library's own, well before ours
            raise StorageUnreachableError(
                f"S3 endpoint {self.store.endpoint()} did not answer within"
                f" {round(self.budget_s, 1):g} s while trying to {self.what}"
                f" (data root {self.store.root!r}; deadline: {TIMEOUT_ENV})"
            ) from e


def _items(listing: list) -> list[tuple[str, dict]]:
    return [(i["name"], i) for i in listing]


def parquet_bytes(table: pa.Table) -> bytes:
    """Serialize deterministically: same table and library versions, same bytes."""
    buf = io.BytesIO()
    pq.write_table(
        table,
        buf,
        compression="zstd",
        row_group_size=1 << 20,
        write_statistics=True,
        use_dictionary=_dictionary_columns(table.schema),
        column_encoding=_delta_columns(table.schema) or None,
    )
    return buf.getvalue()


def parquet_parts(
    table: pa.Table, rows_per_part: int = 1 << 20, threads: int = 2, prefix: str = "part"
) -> dict[str, bytes]:
    """Split a table into ``part-NNNNN.parquet`` files of at most ``rows_per_part`` rows,
    encoded in parallel (the Parquet encoder is single-threaded per file). The split
    depends only on the row count, so the bytes stay deterministic. Always >= 1 part."""
    n_parts = max(1, -(-table.num_rows // rows_per_part))
    slices = [table.slice(i * rows_per_part, rows_per_part) for i in range(n_parts)]
    if n_parts == 1 or threads <= 1:
        blobs = [parquet_bytes(t) for t in slices]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            blobs = list(pool.map(parquet_bytes, slices))
    return {f"{prefix}-{i:05d}.parquet": b for i, b in enumerate(blobs)}


def _delta_columns(schema: pa.Schema) -> dict[str, str]:
    # Integers (ids, times, durations) as deltas: zstd then has far less to chew on —
    # about 2x faster to write and to read than plain + zstd, and ~15% smaller.
    return {
        f.name: "DELTA_BINARY_PACKED"
        for f in schema
        if f.type in (pa.int32(), pa.int64()) and "." not in f.name
    }


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    # Dictionary-encode only strings that repeat (types, pages, reasons); trying it on
    # unique ids costs time and falls back anyway.
    return [
        f.name
        for f in schema
        if (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
        and not f.name.endswith("_id")
        and f.name not in ("detail", "raw_line", "source_file")
    ]
