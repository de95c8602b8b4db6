"""An hour is ready when the sinks say so: both event sinks' manifests, the segment
features and a catalog export covering the hour; otherwise the reason names what is
missing (the landing-readiness sensor skips with it)."""

import json

from ml.content.segments import landing_segments_path
from ml.hours import HOUR_MS
from ml.ingest.readiness import not_ready_reason
from ml.io.store import Store
from tests.landing_helpers import H0, event, write_catalog, write_landing


def test_each_missing_piece_is_named_until_the_hour_is_ready(tmp_path):
    store = Store(str(tmp_path / "home"))
    write_catalog(store)
    store.write_bytes("landing/catalog/_SUCCESS", json.dumps({"as_of_ms": H0}).encode())

    write_landing(store, "live", H0, [event("a", t=1)], listed=False)  # a file, no marker
    assert "live" in not_ready_reason(store, H0) and "_SUCCESS" in not_ready_reason(store, H0)
    write_landing(store, "live", H0, [event("a", t=1)])
    assert "short_video" in not_ready_reason(store, H0)
    write_landing(store, "short_video", H0, [])
    assert landing_segments_path(H0) in not_ready_reason(store, H0)
    store.write_bytes(landing_segments_path(H0), b"segments")
    assert "catalog export" in not_ready_reason(store, H0)  # as of H0: not the hour's end
    store.write_bytes("landing/catalog/_SUCCESS", json.dumps({"as_of_ms": H0 + HOUR_MS}).encode())
    assert not_ready_reason(store, H0) is None
    assert not_ready_reason(store, H0 + HOUR_MS) is not None  # the next hour has not landed
