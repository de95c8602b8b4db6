"""The Store on a local directory and on a real S3 API (moto server), and its errors."""

import pyarrow as pa
import pytest

from ml.io.lake import checked_key, partition_dir
from ml.io.store import (
    StorageError,
    StorageUnreachableError,
    Store,
    UnpublishedPartitionError,
    parquet_bytes,
    s3_storage_options,
)
from tests.conftest import free_port


def roundtrip(store: Store) -> None:
    t = pa.table({"a": [1, 2, 3], "b": ["x", "y", None]})
    rel = "lake/thing/2026-01-01-00:00"
    with pytest.raises(UnpublishedPartitionError):
        store.read_published(rel)
    store.write_bytes(f"{rel}/junk.parquet", b"stale")
    store.publish(rel, {"part-00000.parquet": parquet_bytes(t)}, {"n": 3})
    assert store.list(rel) == ["_SUCCESS", "part-00000.parquet"]  # the stale file is gone
    assert store.read_published(rel).equals(t)
    assert store.manifest(rel)["n"] == 3
    assert store.manifest(rel)["files"] == {
        "part-00000.parquet": store.size(f"{rel}/part-00000.parquet")
    }
    assert store.list_dirs("lake/thing") == ["2026-01-01-00:00"]


def test_local_roundtrip(tmp_path):
    roundtrip(Store(str(tmp_path / "h")))


def test_s3_roundtrip(s3_env):
    store = Store(f"s3://{s3_env}/home")
    store.check_reachable()
    roundtrip(store)
    assert store.url("lake") == f"s3://{s3_env}/home/lake"


def test_local_write_is_atomic_no_temp_left(tmp_path):
    store = Store(str(tmp_path))
    store.write_bytes("a/b.bin", b"1" * 1000)
    store.write_bytes("a/b.bin", b"2")
    assert store.read_bytes("a/b.bin") == b"2"
    assert store.list("a") == ["b.bin"]


def test_unreachable_s3_is_one_clear_error(monkeypatch):
    port = free_port()  # nothing listens there
    opts = s3_storage_options(endpoint_url=f"http://127.0.0.1:{port}", key="k", secret="s")
    opts["config_kwargs"]["retries"] = {"max_attempts": 1}
    store = Store("s3://lc-nowhere/home", opts)
    with pytest.raises(
        StorageUnreachableError, match=r"data root 's3://lc-nowhere/home' is unreachable"
    ):
        store.check_reachable()
    with pytest.raises(StorageUnreachableError, match="unreachable"):
        store.read_bytes("landing/catalog/rooms.parquet")


def test_bad_roots_and_keys():
    with pytest.raises(StorageError, match="bucket name"):
        Store("s3://ab/x")
    with pytest.raises(StorageError, match="unsupported"):
        Store("gs://bucket/x")
    with pytest.raises(StorageError, match="escapes"):
        Store("/tmp").read_bytes("../etc/passwd")
    for bad in (
        "2026-01-01-00:30",
        "../../etc",
        "2026-01-01T00:00",
        "2026-02-30-00:00",
        "2026-01-01-00",
    ):
        with pytest.raises(ValueError):
            checked_key(bad)
    with pytest.raises(ValueError):
        partition_dir("Bad-Name", "2026-01-01-00:00")
    assert (
        partition_dir("raw_live_events", "2026-01-01-05:00")
        == "lake/raw_live_events/2026-01-01-05:00"
    )


def test_corrupt_parquet_is_named(tmp_path):
    store = Store(str(tmp_path))
    store.write_bytes("x/t.parquet", b"PAR1 definitely not parquet")
    with pytest.raises(StorageError, match=r"corrupt Parquet file .*x/t.parquet"):
        store.read_parquet("x/t.parquet")
