"""The Dagster UI in a real browser (Debian's Chromium driven by Playwright): after one hour
of raw events is materialized through the CLI, the asset graph, an asset page with its
metadata and column schema, its checks and the run that made it show what a user needs.
Screenshots are saved as test artifacts ($LIVECROSS_TEST_ARTIFACTS, else tmp_path)."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from ml.sim import SimConfig, simulate
from tests.conftest import ROOT
from tests.e2e.dev_server import dagster_dev

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
KEY = "2026-01-01-00:00"
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
# Headless in a container: no sandbox, no GPU, nothing fetched from the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ASSETS = ["raw_live_events", "raw_short_video_events"]
TIMEOUT_MS = 30_000


def materialize(env: dict) -> None:
    """The catalog and the raw tables of hour KEY, through `dagster asset materialize`."""
    r = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "--select",
         ",".join(["content_catalog", *ASSETS]), "--partition", KEY, "-m", "assets.definitions"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A `dagster dev` over one materialized hour: (base URL, DAGSTER_HOME)."""
    tmp = tmp_path_factory.mktemp("ui_browser")
    home = tmp / "home"
    simulate(SimConfig(hours=1, users=300, seed=9, bad_rate=0.01), str(home), progress=False)
    dagster_home = tmp / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((ROOT / "infra" / "dagster.yaml").read_text())
    env = {**os.environ, "LIVECROSS_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    # Explicit, so a .env in the checkout (the dagster CLI reads it) cannot move the start.
    env["LIVECROSS_START"] = KEY
    materialize(env)
    with dagster_dev(env, tmp / "dev.log") as port:
        yield f"http://127.0.0.1:{port}", dagster_home


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    out = Path(os.environ.get("LIVECROSS_TEST_ARTIFACTS") or tmp_path_factory.mktemp("screens"))
    out = out / "screenshots" if "LIVECROSS_TEST_ARTIFACTS" not in os.environ else out
    out.mkdir(parents=True, exist_ok=True)
    print(f"\nUI screenshots: {out}")
    return out


@pytest.fixture(scope="module")
def page(ui):
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: the browser test needs Debian's Chromium "
        "(apt-get install -y chromium; `make browser` installs it)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        context.set_default_timeout(TIMEOUT_MS)
        yield context.new_page()
        context.close()
        browser.close()


def dismiss_welcome(page) -> None:
    """A fresh instance greets its first visitor with a newsletter dialog: skip it."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=3_000)
    except PlaywrightTimeout:
        return
    skip.click()


def open_page(page, url: str, shot: Path, *texts: str, click: str | None = None) -> None:
    """Open ``url`` (and click the text ``click``), wait until every text in ``texts`` is
    visible, save a screenshot."""
    page.goto(url, wait_until="domcontentloaded")
    try:
        dismiss_welcome(page)
        if click:
            page.get_by_text(click, exact=True).first.click()
        for text in texts:
            page.get_by_text(text, exact=False).first.wait_for(state="visible")
    finally:
        page.screenshot(path=str(shot), full_page=True)


def latest_run_id(dagster_home: Path, asset: str) -> str:
    with dg.DagsterInstance.from_config(str(dagster_home)) as inst:
        ev = inst.get_latest_materialization_event(dg.AssetKey(asset))
        assert ev is not None, f"{asset} was not materialized"
        return ev.run_id


def test_asset_graph_shows_the_pipeline(ui, page, artifacts):
    base, _ = ui
    # the whole graph: one box per stage group
    open_page(
        page, f"{base}/asset-groups", artifacts / "01_asset_graph.png",
        "ingestion", "moment", "cross", "content", "models",
    )  # fmt: skip
    # a group opened: its assets, their stages' next steps
    open_page(
        page, f"{base}/locations/livecross/asset-groups/ingestion", artifacts / "01b_ingestion.png",
        "content_catalog", "raw_live_events", "raw_short_video_events",
    )  # fmt: skip


def test_asset_page_shows_metadata_columns_owners_and_tags(ui, page, artifacts):
    base, _ = ui
    open_page(
        page, f"{base}/assets/raw_live_events", artifacts / "02_asset_overview.png",
        "Live-room events", "ranking-data", "stage: ingest", "event_time_ms",
    )  # fmt: skip
    open_page(
        page, f"{base}/assets/raw_live_events?view=events", artifacts / "03_asset_events.png",
        "quarantine_rate", "speed/events_per_s", "quarantine_reasons",
    )  # fmt: skip


def test_check_page_shows_the_checks_and_their_outcome(ui, page, artifacts):
    base, _ = ui
    open_page(
        page, f"{base}/assets/raw_live_events?view=checks", artifacts / "04_asset_checks.png",
        "conservation", "Share of the hour's lines", "Succeeded", click="quarantine_rate",
    )  # fmt: skip


def test_run_page_shows_the_run_and_its_steps(ui, page, artifacts):
    base, dagster_home = ui
    run_id = latest_run_id(dagster_home, "raw_live_events")
    open_page(
        page, f"{base}/runs/{run_id}", artifacts / "05_run.png",
        run_id[:8], "Success", f"partition: {KEY}", "3 assets", "RUN_SUCCESS",
    )  # fmt: skip
    # the event log, filtered to one step: its start and success are listed
    page.get_by_placeholder("Filter…").or_(page.get_by_placeholder("Filter...")).first.fill(
        "raw_live_events"
    )
    page.get_by_text('Finished execution of step "raw_live_events"').first.wait_for()
    page.screenshot(path=str(artifacts / "06_run_filtered.png"), full_page=True)
