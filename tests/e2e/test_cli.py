"""A real `dagster asset materialize` run against a temporary DAGSTER_HOME instance."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ml.io.store import Store
from tests.landing_helpers import H0, event, write_catalog, write_landing

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")


def dagster_cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DAGSTER, *args, "-m", "assets.definitions"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_cli_materializes_partition_into_real_instance(tmp_path):
    home = Store(str(tmp_path / "home"))
    write_catalog(home)
    n_good = 200
    write_landing(
        home, "live", H0, [event(f"e{i}", t=i * 10) for i in range(n_good)] + [b"{broken"]
    )
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((ROOT / "infra" / "dagster.yaml").read_text())
    env = {**os.environ, "LIVECROSS_HOME": home.root, "DAGSTER_HOME": str(dagster_home)}

    # the catalog of the hour, then the hour's raw events (one run, in dependency order)
    r = dagster_cli(
        ["asset", "materialize", "--select", "content_catalog,raw_live_events",
         "--partition", "2026-01-01-00:00"],
        env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]

    clean = home.read_published("lake/raw_live_events/2026-01-01-00:00")
    assert clean.num_rows == n_good  # the broken line is quarantined
    with dg.DagsterInstance.from_config(str(dagster_home)) as inst:
        ev = inst.get_latest_materialization_event(dg.AssetKey("raw_live_events"))
        assert ev is not None and ev.asset_materialization.partition == "2026-01-01-00:00"
        assert ev.asset_materialization.metadata["quarantined"].value == 1
        checks = inst.event_log_storage.get_latest_asset_check_execution_by_key(
            [
                dg.AssetCheckKey(dg.AssetKey("raw_live_events"), n)
                for n in ("conservation", "quarantine_rate")
            ]
        )
        assert {k.name: v.status.value for k, v in checks.items()} == {
            "conservation": "SUCCEEDED",
            "quarantine_rate": "SUCCEEDED",
        }

    # A bad partition key is refused with a message naming it, before any work.
    r = dagster_cli(
        ["asset", "materialize", "--select", "raw_live_events", "--partition", "2026-01-01-00:30"],
        env,
    )
    assert r.returncode != 0
    assert "2026-01-01-00:30" in r.stderr + r.stdout
    # Dagster lets a key of the hourly shape through; the asset refuses it with the format
    assert "expected 'YYYY-MM-DD-HH:00'" in r.stderr + r.stdout
    # one of another shape gets the key it most likely meant
    r = dagster_cli(
        ["asset", "materialize", "--select", "raw_live_events", "--partition", "2026-01-01T00"],
        env,
    )
    assert r.returncode != 0 and "Did you mean --partition 2026-01-01-00:00?" in r.stderr
    assert "keys are YYYY-MM-DD-HH:00 (UTC), from 2026-01-01-00:00" in r.stderr
