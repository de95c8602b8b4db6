"""Ingestion against the simulator's ground truth: every injected bad line is found with
exactly its class, every re-delivery (also across hours) is dropped, nothing else is."""

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ml import schema as S
from ml.hours import HOUR_MS, landing_dir, parse_hour
from ml.ingest.landing_hour import IngestConfig, ingest_hours
from ml.io.store import Store
from ml.sim import SimConfig, simulate
from ml.sim.bad import PLANTED_REASONS

START = "2026-01-01-00:00"
HOURS = 3


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    cfg = SimConfig(start=START, hours=HOURS, users=1500, seed=3, bad_rate=0.01, dup_rate=0.01)
    simulate(cfg, str(root), progress=False)
    return Store(str(root))


def ingest_all(store: Store, domain: str, config: IngestConfig | None = None):
    config = config or IngestConfig()
    known_table = "rooms" if domain == S.LIVE else "short_videos"
    known = store.read_parquet(f"landing/catalog/{known_table}.parquet", ["item_id"]).column(0)
    results = ingest_hours(
        store, domain, parse_hour(START), HOURS, known_items=known, config=config
    )
    assert all(r.conserved() for r in results)
    return results


@pytest.mark.parametrize("domain", S.DOMAINS)
def test_quarantine_matches_the_injected_bad_lines_exactly(sim, domain):
    results = ingest_all(sim, domain)
    oracle = sim.read_parquet("oracle/bad_records.parquet").to_pandas()
    oracle = oracle[oracle.domain == domain]
    expected = sorted(zip(oracle.file, oracle.line_number, oracle.reason, strict=True))
    q = pa.concat_tables([r.quarantine for r in results]).to_pandas()
    bad = q[~q.reason.isin(S.DUPLICATE_REASONS)]
    got = sorted(zip(bad.source_file, bad.line_number, bad.reason, strict=True))
    assert len(expected) >= 26  # every class, at least twice
    assert got == expected
    assert set(bad.reason) == set(PLANTED_REASONS)


@pytest.mark.parametrize("domain", S.DOMAINS)
def test_every_redelivery_is_dropped_once_also_across_hours(sim, domain):
    results = ingest_all(sim, domain)
    dups = sim.read_parquet("oracle/duplicates.parquet").to_pandas()
    dups = dups[dups.domain == domain]
    q = pa.concat_tables([r.quarantine for r in results]).to_pandas()
    dropped = q[q.reason.isin(S.DUPLICATE_REASONS)]
    assert sorted(dropped.event_id) == sorted(dups.event_id)
    crossing = dups[dups.original_hour != dups.duplicate_hour]
    assert len(crossing) >= 1
    assert set(crossing.event_id) <= set(dropped.event_id[dropped.reason == "duplicate_prior_hour"])
    clean = pa.concat_tables([r.clean for r in results])
    assert pc.count_distinct(clean.column("event_id")).as_py() == clean.num_rows


def test_landing_hours_are_contiguous_and_catalog_ingests(sim):
    from ml.ingest.catalog import ingest_catalog

    cat = ingest_catalog(sim)
    assert cat.conserved() and cat.quarantine.num_rows == 0
    for i in range(HOURS):
        d = f"landing/live/{landing_dir(parse_hour(START) + i * HOUR_MS)}"
        assert sim.manifest(d) is not None


@pytest.mark.parametrize("domain", S.DOMAINS)
def test_every_hour_knows_its_items_in_the_catalog_of_that_hour(sim, domain):
    """Raw events of hour H are checked against catalog[H] (as of H's end): the simulator
    never refers to an item before it exists, so the quarantine is still exactly the
    planted bad lines, hour by hour."""
    from ml.ingest.catalog import ingest_catalog
    from ml.ingest.landing_hour import ingest_hour

    table = "rooms" if domain == S.LIVE else "short_videos"
    whole = ingest_all(sim, domain)
    prior, born_later = None, []
    for i, want in enumerate(whole):
        hour_ms = parse_hour(START) + i * HOUR_MS
        cat = ingest_catalog(sim, as_of_ms=hour_ms + HOUR_MS)
        assert cat.conserved()
        born_later.append(cat.not_yet[table])
        known = cat.tables[table].column("item_id").combine_chunks()
        got = ingest_hour(sim, domain, hour_ms, known_items=known, prior_event_ids=prior)
        prior = got.clean.column("event_id").combine_chunks()
        assert got.clean.equals(want.clean)
        assert got.quarantine.equals(want.quarantine)
    # the catalog grows: fewer items are still to come with each hour
    assert born_later == sorted(born_later, reverse=True)
    if domain == S.LIVE:
        assert born_later[0] > 0  # rooms start during the simulated hours


def test_a_catalog_past_the_export_is_not_ready(sim):
    from ml.ingest.catalog import ingest_catalog
    from ml.ingest.landing import LandingHourNotReadyError

    end = parse_hour(START) + HOURS * HOUR_MS
    assert sim.manifest("landing/catalog")["as_of_ms"] == end
    assert ingest_catalog(sim, as_of_ms=end).conserved()
    with pytest.raises(LandingHourNotReadyError, match=r"catalog export .* is as of"):
        ingest_catalog(sim, as_of_ms=end + HOUR_MS)


def test_corrupt_files_fail_or_are_salvaged(tmp_path):
    from ml.ingest.landing import CorruptFileError

    cfg = SimConfig(start=START, hours=HOURS, users=800, seed=4, corrupt_files=2)
    simulate(cfg, str(tmp_path), progress=False)
    store = Store(str(tmp_path))
    corrupt = store.read_parquet("oracle/corrupt_files.parquet").to_pylist()
    assert len(corrupt) == 2
    salvaged = {
        d: ingest_all(store, d, IngestConfig(corrupt_files="quarantine")) for d in S.DOMAINS
    }
    files = [
        row["source_file"]
        for results in salvaged.values()
        for r in results
        for row in r.quarantine.to_pylist()
        if row["reason"] == "corrupt_file"
    ]
    assert sorted(files) == sorted(c["file"] for c in corrupt)
    first = corrupt[0]
    domain = S.LIVE if "/live/" in first["file"] else S.SHORT_VIDEO
    with pytest.raises(CorruptFileError, match=first["file"].rsplit("/", 1)[-1]):
        ingest_all(store, domain)
