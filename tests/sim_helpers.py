"""Simulated hours, ingested: what the ml-level tests against the simulator start from."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from ml import schema as S
from ml.cross.catalog_view import CatalogView
from ml.hours import parse_hour
from ml.ingest.landing_hour import ingest_hours
from ml.io.store import Store
from ml.sim import SimConfig, simulate

H0 = parse_hour("2026-01-01-00:00")


@dataclass
class SimHours:
    store: Store
    catalog: CatalogView
    live: list[pa.Table]  # clean raw events per hour, H0 first
    sv: list[pa.Table]


def simulated_hours(root, hours: int, users: int, seed: int, known_items: bool = False) -> SimHours:
    """Simulate ``hours`` hours into ``root`` and ingest both domains hour after hour
    (checked against the catalog's rooms / videos when ``known_items``)."""
    simulate(SimConfig(hours=hours, users=users, seed=seed), str(root), progress=False)
    store = Store(str(root))
    sv_cat = store.read_parquet("landing/catalog/short_videos.parquet")
    rooms = store.read_parquet("landing/catalog/rooms.parquet")
    known = {S.LIVE: rooms.column("item_id"), S.SHORT_VIDEO: sv_cat.column("item_id")}
    clean = {
        d: [
            r.clean
            for r in ingest_hours(
                store, d, H0, hours, known_items=known[d] if known_items else None
            )
        ]
        for d in (S.LIVE, S.SHORT_VIDEO)
    }
    return SimHours(
        store, CatalogView.from_tables(sv_cat, rooms), clean[S.LIVE], clean[S.SHORT_VIDEO]
    )
