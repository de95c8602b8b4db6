"""Reading look-back windows of published hourly partitions (shared by the asset modules)."""

import dagster as dg
import pyarrow as pa

from assets.partitions import START_MS
from ml import schema as S
from ml.hours import HOUR_MS, partition_key
from ml.io.lake import partition_dir
from ml.io.store import Store


def window_keys(hour_ms: int, before: int, after: int = 0) -> list[str]:
    """Partition keys H - before .. H + after that exist (none before LIVECROSS_START)."""
    hours = [hour_ms + i * HOUR_MS for i in range(-before, after + 1)]
    return [partition_key(h) for h in hours if h >= START_MS]


def read_window(
    lake: Store, asset: str, keys: list[str], columns: list[str] | None = None
) -> pa.Table:
    tables = []
    for key in keys:
        rel = partition_dir(asset, key)
        if lake.manifest(rel) is None:
            raise dg.Failure(
                f"{asset} {key} is not materialized ({lake.url(rel)}); this asset reads "
                f"{asset} {keys[0]} .. {keys[-1]}: materialize (backfill) those first"
            )
        tables.append(lake.read_published(rel, columns=columns, schema=S.CLEAN_EVENT_SCHEMA))
    if tables:
        return pa.concat_tables(tables)
    schema = S.CLEAN_EVENT_SCHEMA
    return (
        pa.schema([schema.field(c) for c in columns]).empty_table()
        if columns
        else schema.empty_table()
    )
