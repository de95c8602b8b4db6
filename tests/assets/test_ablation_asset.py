"""The ablation as a Dagster asset and as its command, on a real (tiny) simulated world:
the data layer is built once under the study's own root through the real hourly assets,
every variant × seed and the oracle land in the table and the lake, the metadata holds
the table, the claims and two PNGs, the same seeds give the same bytes, and the command
runs the same job on the instance and writes the results doc between its markers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets.ablation import BEGIN, END
from assets.definitions import HOURLY_ASSET_NAMES
from assets.studies import STUDY_MARKER, StudyWorld, build_data_layer, study_storage
from ml.io.store import Store
from tests.dagster_helpers import ASSETS, CHECKS, resources

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"users": 300, "hours": 2, "warmup_hours": 1, "seeds": [0, 1],
          "variants": ["full", "no_cross", "deepctr_ple"], "sim_seed": 5}  # fmt: skip


def materialize(root: str):
    return dg.materialize(
        [*ASSETS, *CHECKS],
        selection=dg.AssetSelection.assets("ablation"),
        resources=resources(root),
        run_config={"ops": {"ablation": {"config": CONFIG}}},
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ablation") / "home")
    first = materialize(root)
    runs_bytes = Store(root).read_bytes("lake/ablation/runs.parquet")
    second = materialize(root)
    return root, first, second, runs_bytes


def test_the_table_holds_every_variant_and_seed_and_the_oracle(study):
    root, first, _, _ = study
    assert first.success
    lake = Store(root)
    runs = pq.read_table(lake.url("lake/ablation/runs.parquet")).to_pylist()
    assert [(r["variant"], r["seed"]) for r in runs] == [
        ("full", 0), ("full", 1), ("no_cross", 0), ("no_cross", 1),
        ("deepctr_ple", 0), ("deepctr_ple", 1), ("oracle", 0),
    ]  # fmt: skip
    man = lake.manifest("lake/ablation")
    assert man["world"] == {"users": 300, "hours": 2, "sim_seed": 5, "start": "2026-01-01-00:00"}
    assert [r["variant"] for r in man["summary"]] == ["full", "no_cross", "deepctr_ple", "oracle"]
    assert len(man["claims"]) == 6
    meta = first.asset_materializations_for_node("ablation")[0].metadata
    for name in ("full", "no_cross", "deepctr_ple", "oracle"):
        assert f"| {name} |" in meta["table"].value
    assert meta["claims"].value.count("\n| ") == 6
    for plot in ("summary_plot", "click_auc_by_hour"):
        assert meta[plot].value.startswith("![plot](data:image/png;base64,iVBOR")


def test_the_data_layer_is_built_once_under_the_studys_own_root(study):
    root = study[0]
    world = StudyWorld(300, 2, 5)
    sub = Store(f"{root}/studies/{world.study_id}")
    marker = json.loads(sub.read_bytes(STUDY_MARKER))
    assert marker == {"world": world.__dict__, "assets": sorted(HOURLY_ASSET_NAMES)}
    # the real hourly assets, 3 look-ahead hours beyond the trained ones; outcomes of those
    assert len(sub.list_dirs("lake/raw_live_events")) == 5
    assert len(sub.list_dirs("lake/live_outcomes")) == 2
    assert not Store(root).exists("lake/raw_live_events")  # the main lake is left alone
    metas = [r.asset_materializations_for_node("ablation")[0].metadata for r in study[1:3]]
    assert [m["data_layer"].value for m in metas] == ["built", "reused"]


def test_same_seeds_give_the_same_bytes(study):
    root, _, second, runs_bytes = study
    assert second.success
    assert Store(root).read_bytes("lake/ablation/runs.parquet") == runs_bytes


def test_a_root_holding_another_world_is_refused_and_an_old_graphs_is_rebuilt(study):
    root = study[0]
    world = StudyWorld(300, 2, 5)
    storage = study_storage(resources(root)["storage"], world)
    with pytest.raises(ValueError, match="holds another world"):
        build_data_layer(storage, StudyWorld(300, 2, 6))
    sub = storage.store()
    good = sub.read_bytes(STUDY_MARKER)
    windows = sub.manifest("lake/segment_windows/2026-01-01-01:00")
    old_graph = {"world": world.__dict__, "assets": ["raw_live_events"]}
    sub.write_bytes(STUDY_MARKER, json.dumps(old_graph).encode())
    assert build_data_layer(storage, world) is True  # rebuilt, to the same bytes
    assert sub.read_bytes(STUDY_MARKER) == good
    assert sub.manifest("lake/segment_windows/2026-01-01-01:00") == windows


def test_the_command_runs_the_job_on_the_instance_and_writes_the_results_doc(study, tmp_path):
    root = study[0]
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "infra" / "dagster.yaml").read_text())
    doc = tmp_path / "RESULTS.md"
    doc.write_text(f"# Results\n\nreading before\n\n{BEGIN}\nold table\n{END}\n\nreading after\n")
    env = {**os.environ, "LIVECROSS_HOME": root, "DAGSTER_HOME": str(home)}
    args = ["--users", "300", "--hours", "2", "--warmup", "1", "--seeds", "0",
            "--variants", "full", "--sim-seed", "5", "--results", str(doc)]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "assets.ablation", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| full |" in proc.stdout and "| oracle |" in proc.stdout
    text = doc.read_text()
    assert "old table" not in text and "reading before" in text and "reading after" in text
    assert "Command: `python -m assets.ablation --users 300 --hours 2" in text
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert [(r.job_name, r.status) for r in runs] == [
            ("ablation_study", dg.DagsterRunStatus.SUCCESS)
        ]


def test_the_content_tables_run_through_the_same_command(tmp_path):
    root, home = str(tmp_path / "home"), tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "infra" / "dagster.yaml").read_text())
    doc = tmp_path / "RESULTS.md"
    env = {**os.environ, "LIVECROSS_HOME": root, "DAGSTER_HOME": str(home)}
    args = ["--study", "content", "--users", "600", "--hours", "3", "--warmup", "1",
            "--seeds", "0", "--rows", "id_wdl,perceiver,no_visual", "--sim-seed", "4",
            "--results", str(doc)]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "assets.ablation", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = doc.read_text()
    assert "<!-- content_study:begin -->" in text and "**Table 3 (modalities)**" in text
    runs = pq.read_table(Store(root).url("lake/content_study/runs.parquet")).to_pylist()
    assert [(r["row"], r["seed"]) for r in runs] == [
        ("id_wdl", 0),
        ("perceiver", 0),
        ("no_visual", 0),
    ]
    assert all(r["windows"] > 0 for r in runs)
    man = Store(root).manifest("lake/content_study")
    assert len(man["claims"]) == 3 and man["data_layer"] == "built"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert [(r.job_name, r.status) for r in instance.get_runs()] == [
            ("content_tables", dg.DagsterRunStatus.SUCCESS)
        ]
