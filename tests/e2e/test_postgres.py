"""The Postgres-backed Dagster instance (infra/dagster-postgres.yaml) with a real CLI run.

Needs the Postgres server on 127.0.0.1:5432. Skipped where it is absent, except when
LIVECROSS_REQUIRE_POSTGRES=1 (CI sets it), where its absence is a failure."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ml.io.store import Store
from tests.landing_helpers import H0, event, write_catalog, write_landing

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PG = {"host": "127.0.0.1", "port": 5432, "user": os.environ.get("LIVECROSS_PG_USER", "postgres")}


def _connect(dbname: str):
    import psycopg2

    return psycopg2.connect(dbname=dbname, connect_timeout=3, **PG)


@pytest.fixture
def pg_database():
    try:
        admin = _connect("postgres")
    except Exception as e:
        if os.environ.get("LIVECROSS_REQUIRE_POSTGRES") == "1":
            pytest.fail(
                f"Postgres on 127.0.0.1:5432 is required here (LIVECROSS_REQUIRE_POSTGRES=1): {e}"
            )
        pytest.skip(f"no Postgres on 127.0.0.1:5432: {e}")
    admin.autocommit = True
    name = f"livecross_test_{os.getpid()}_{time.time_ns() % 10**9}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield name
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_cli_run_is_stored_in_postgres(tmp_path, pg_database):
    home = Store(str(tmp_path / "home"))
    write_catalog(home)
    n_events = 50
    write_landing(home, "live", H0, [event(f"e{i}", t=i) for i in range(n_events)])
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(
        (ROOT / "infra" / "dagster-postgres.yaml").read_text()
    )
    env = {
        **os.environ,
        "LIVECROSS_HOME": home.root,
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_PG_HOST": PG["host"],
        "DAGSTER_PG_PORT": str(PG["port"]),
        "DAGSTER_PG_USER": PG["user"],
        "DAGSTER_PG_PASSWORD": os.environ.get("LIVECROSS_PG_PASSWORD", ""),
        "DAGSTER_PG_DB": pg_database,
    }
    dagster = str(Path(sys.executable).parent / "dagster")
    args = ["--select", "content_catalog,raw_live_events", "--partition", "2026-01-01-00:00"]
    r = subprocess.run(
        [dagster, "asset", "materialize", *args, "-m", "assets.definitions"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert home.read_published("lake/raw_live_events/2026-01-01-00:00").num_rows == n_events
    with _connect(pg_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs ORDER BY create_timestamp")
        assert [s for (s,) in cur.fetchall()] == ["SUCCESS"]
        cur.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION'"
        )
        assert cur.fetchone()[0] == 1 + 4  # the catalog's check and the four raw-event checks
    assert not list(dagster_home.glob("**/*.db")), "nothing may fall back to SQLite"
