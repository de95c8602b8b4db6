"""Verdicts of blocking checks kept beside the partition, bound to its version."""

import pytest

from ml.io.gates import FailedGateError, failed_verdicts, gate_dir, record_verdict, require_gates
from ml.io.store import Store

REL = "lake/raw_live_events/2026-01-01-02:00"
WHAT = "raw_live_events 2026-01-01-02:00"


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return Store(str(tmp_path / "home"))
    bucket = request.getfixturevalue("s3_env")
    return Store(f"s3://{bucket}/home")


def publish(store: Store, rows: int) -> dict:
    store.publish(REL, {"part-0.parquet": b"x" * rows}, {"rows": rows})
    return store.manifest(REL)


def test_a_failed_verdict_refuses_that_version_naming_partition_and_check(store):
    man = publish(store, 10)
    record_verdict(store, REL, "quarantine_rate", False, "quarantine_rate=0.5 > 0.05")
    record_verdict(store, REL, "conservation", True)
    assert [v["check"] for v in failed_verdicts(store, REL, man)] == ["quarantine_rate"]
    with pytest.raises(FailedGateError) as e:
        require_gates(store, REL, man, WHAT)
    assert WHAT in str(e.value) and "'quarantine_rate'" in str(e.value)
    assert "quarantine_rate=0.5 > 0.05" in str(e.value) and "re-materialized" in str(e.value)


def test_a_new_version_is_judged_by_its_own_checks(store):
    publish(store, 10)
    record_verdict(store, REL, "quarantine_rate", False, "bad")
    fixed = publish(store, 12)  # re-materialized from fixed inputs: another manifest
    require_gates(store, REL, fixed, WHAT)  # the old verdict no longer applies
    record_verdict(store, REL, "quarantine_rate", True)
    require_gates(store, REL, fixed, WHAT)
    record_verdict(store, REL, "quarantine_rate", False, "bad again")
    with pytest.raises(FailedGateError):
        require_gates(store, REL, fixed, WHAT)


def test_no_verdict_is_readable(store):
    require_gates(store, REL, publish(store, 3), WHAT)


def test_gates_live_beside_the_lake_and_only_for_lake_partitions():
    assert gate_dir(REL) == "lake/_gates/raw_live_events/2026-01-01-02:00"
    for bad in ("landing/live/x", "lake", "lake/_gates/raw_live_events/x"):
        with pytest.raises(ValueError, match="not a lake partition"):
            gate_dir(bad)
