"""Is a landing hour ready to ingest? The sink's completion markers, not the wall clock.

An hour is ready when both event sinks have written their ``_SUCCESS`` manifest for it,
its segment features have landed, and the catalog export is at least as new as the hour's
end. Anything less is a reason naming what is missing.
"""

from __future__ import annotations

import posixpath

from ml import schema as S
from ml.content.segments import landing_segments_path
from ml.hours import HOUR_MS
from ml.ingest.catalog import check_export_covers
from ml.ingest.landing import SINK_MANIFEST, event_hour_dir
from ml.io.store import StorageError, Store


def not_ready_reason(landing: Store, hour_ms: int) -> str | None:
    """None when hour ``hour_ms`` can be ingested; otherwise what it is waiting for."""
    for domain in (S.LIVE, S.SHORT_VIDEO):
        marker = posixpath.join(event_hour_dir(domain, hour_ms), SINK_MANIFEST)
        if not landing.exists(marker):
            return f"no {landing.url(marker)} yet (the {domain} sink writes it last)"
    segments = landing_segments_path(hour_ms)
    if not landing.exists(segments):
        return f"no {landing.url(segments)} yet"
    try:
        check_export_covers(landing, hour_ms + HOUR_MS)
    except StorageError as e:
        return str(e)
    return None
