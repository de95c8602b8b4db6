"""A silent or absent S3 endpoint fails every Store call within its deadline, naming the
endpoint: real sockets on 127.0.0.1, real s3fs/aiobotocore, nothing mocked."""

import socket
import threading
import time

import pyarrow as pa
import pytest

from ml.io.store import (
    DEFAULT_TIMEOUT_S,
    TIMEOUT_ENV,
    StorageError,
    StorageUnreachableError,
    Store,
    parquet_bytes,
    s3_storage_options,
    storage_timeout_s,
)
from resources.storage import LakeStorage
from tests.conftest import free_port

DEADLINE_S = 2.0
# Proves "no hang" (the bug: 20+ minutes for one exists()); not a performance threshold.
BOUND_S = DEADLINE_S * 3 + 5
REL = "lake/thing/2026-01-01-00:00"


class SilentEndpoint:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)  # held open, never read from nor written to

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent():
    endpoint = SilentEndpoint()
    yield endpoint
    endpoint.close()


def s3_store(endpoint_url: str, timeout_s: float | None = DEADLINE_S) -> Store:
    opts = s3_storage_options(
        endpoint_url=endpoint_url, key="k", secret="s", region="us-east-1", timeout_s=timeout_s
    )
    return Store("s3://lc-silent/home", opts, timeout_s=timeout_s)


OPS = {
    "exists": lambda s: s.exists(f"{REL}/_SUCCESS"),
    "list": lambda s: s.list(REL),
    "list_dirs": lambda s: s.list_dirs("lake/thing"),
    "read_bytes": lambda s: s.read_bytes(f"{REL}/part-00000.parquet"),
    "write_bytes": lambda s: s.write_bytes(f"{REL}/part-00000.parquet", b"x" * 1000),
    "size": lambda s: s.size(f"{REL}/part-00000.parquet"),
    "delete": lambda s: s.delete(REL),
    "manifest": lambda s: s.manifest(REL),
    "read_parquet": lambda s: s.read_parquet(f"{REL}/part-00000.parquet"),
    "publish": lambda s: s.publish(
        REL, {"part-00000.parquet": parquet_bytes(pa.table({"a": [1]}))}, {"n": 1}
    ),
    "check_reachable": lambda s: s.check_reachable(),
}


def failure(op, store: Store) -> tuple[str, float]:
    t0 = time.monotonic()
    with pytest.raises(StorageUnreachableError) as err:
        op(store)
    return str(err.value), time.monotonic() - t0


@pytest.mark.parametrize("name", sorted(OPS))
def test_silent_endpoint_fails_within_the_deadline(silent, name):
    message, elapsed = failure(OPS[name], s3_store(silent.url))
    assert elapsed < BOUND_S, f"{name} took {elapsed:.1f} s: {message}"
    assert f"S3 endpoint {silent.url} did not answer within 2 s" in message
    assert "s3://lc-silent/home" in message and TIMEOUT_ENV in message
    assert silent.held, "the request never reached the silent endpoint"


def test_deadline_from_the_environment(silent, monkeypatch):
    monkeypatch.setenv(TIMEOUT_ENV, "1.5")
    store = s3_store(silent.url, timeout_s=None)
    assert store.timeout_s == 1.5 and store.child("lake").timeout_s == 1.5
    message, elapsed = failure(lambda s: s.exists(REL), store)
    assert elapsed < BOUND_S
    assert f"S3 endpoint {silent.url} did not answer within 1.5 s while trying to check" in message


def test_deadline_from_the_storage_resource(silent):
    storage = LakeStorage(
        root="s3://lc-silent/home",
        s3_endpoint_url=silent.url,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        aws_region="us-east-1",
        storage_timeout_s=DEADLINE_S,
    )
    # The resource lists the bucket as it hands out a store: the silent endpoint is named
    # there, within the resource's deadline, before any asset code runs.
    message, elapsed = failure(lambda s: storage.store(), None)
    assert elapsed < BOUND_S
    assert f"S3 endpoint {silent.url} did not answer within 2 s" in message
    assert "list bucket 'lc-silent'" in message


@pytest.mark.parametrize("name", ["exists", "list", "read_bytes", "write_bytes"])
def test_refused_connection_is_one_clear_error(name):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    message, elapsed = failure(OPS[name], s3_store(url))
    assert elapsed < BOUND_S, f"{name} took {elapsed:.1f} s: {message}"
    assert url in message and "s3://lc-silent/home" in message


def test_refused_connection_names_the_cause_before_the_default_deadline(monkeypatch):
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    url = f"http://127.0.0.1:{free_port()}"
    message, elapsed = failure(OPS["exists"], s3_store(url, timeout_s=None))
    assert elapsed < DEFAULT_TIMEOUT_S  # botocore's 3 attempts give up first
    assert f"unreachable (S3 endpoint {url}) while trying to check" in message
    assert "Could not connect to the endpoint URL" in message


def test_timeout_setting(monkeypatch):
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert storage_timeout_s() == DEFAULT_TIMEOUT_S == 30
    assert storage_timeout_s(2.5) == 2.5
    opts = s3_storage_options(endpoint_url="http://127.0.0.1:1", timeout_s=3)
    assert opts["config_kwargs"]["read_timeout"] == 1.0  # 3 attempts fit in the deadline
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(StorageError, match="positive number of seconds"):
            storage_timeout_s(bad)


def test_bad_timeout_in_the_environment(monkeypatch):
    monkeypatch.setenv(TIMEOUT_ENV, "soon")
    with pytest.raises(StorageError, match=f"{TIMEOUT_ENV}='soon' is not a number"):
        Store("s3://lc-silent/home")
