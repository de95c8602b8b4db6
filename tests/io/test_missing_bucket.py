"""A missing bucket is named as one, at the start, not reported as a missing table."""

import dagster as dg
import pytest

from assets.ingestion import content_catalog
from ml.io.store import StorageUnreachableError
from resources.storage import LakeStorage, LandingZone


def test_a_missing_bucket_is_named_by_the_storage_resource(s3_env):
    with pytest.raises(StorageUnreachableError, match=r"bucket 'lc-no-such-bucket' does not exist"):
        LakeStorage(root="s3://lc-no-such-bucket/home").store()


def test_an_asset_on_a_missing_bucket_fails_naming_it(s3_env):
    storage = LakeStorage(root="s3://lc-no-such-bucket/home")
    result = dg.materialize(
        [content_catalog],
        partition_key="2026-01-01-00:00",
        resources={"storage": storage, "landing": LandingZone(storage=storage)},
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = str(failure.step_failure_data.error)
    assert "bucket 'lc-no-such-bucket' does not exist" in text
    assert "missing catalog table" not in text
