"""ContentCTR's tables as one asset (``content_study``) and its job (``content_tables``):
the paper's Tables 1, 3 and 4 on a simulated world of its own, built and reused exactly
as the ablation's (``assets.studies``), then every row × seed trained hour by hour on the
same ``segment_windows`` (``ml.evaluate.content_study``). Its command is
``python -m assets.ablation --study content`` (``make content-tables``)."""

import dagster as dg
import pyarrow as pa
from pydantic import Field

from assets.metadata import MODEL_OWNERS, asset_tags, png
from assets.studies import prepare_study
from ml.evaluate import plots
from ml.evaluate.ablation import summarize
from ml.evaluate.ablation_report import claims_markdown, table_markdown
from ml.evaluate.content_study import (
    ALL_ROWS,
    CONTENT_METRICS,
    TABLES,
    ContentStudyConfig,
    check_content_claims,
    run_content_study,
)
from ml.hours import parse_hour
from ml.io.lake import CONTENT_STUDY
from ml.io.store import parquet_bytes
from resources.device import Device
from resources.storage import LakeStorage


class ContentStudyRunConfig(dg.Config):
    """Size of the content study."""

    users: int = Field(default=10_000, description="simulated users")
    hours: int = Field(default=16, description="trained hours")
    warmup_hours: int = Field(default=4, description="trained first, not evaluated")
    seeds: list[int] = Field(default=[0, 1, 2], description="training seeds of each row")
    rows: list[str] = Field(default=list(ALL_ROWS), description="of ml.evaluate.content_study")
    sim_seed: int = Field(default=7, description="the simulated world's seed")


def tables_markdown(summary: list[dict]) -> str:
    """The paper's three tables, each with the rows it holds that were run."""
    by = {r["variant"]: r for r in summary}
    parts = []
    for title, names in TABLES.items():
        rows = [by[n] for n in names if n in by]
        if rows:
            parts += [f"**{title}**\n", table_markdown(rows, CONTENT_METRICS)]
    return "\n".join(parts)


@dg.asset(
    name=CONTENT_STUDY,
    group_name="studies",
    kinds={"pytorch"},
    owners=MODEL_OWNERS,
    tags=asset_tags("evaluate", "evaluation"),
    description="ContentCTR's tables on a simulated world of its own: DeepCTR-Torch's ID "
    "baselines, the six feature fusions, the modality ablations and the loss variants, "
    "each × seed trained hour by hour on the same segment windows (scored before training "
    "on them), Kendall tau and the rest pooled after a warm-up; the paper's three claims.",
)
def content_study(
    context: dg.AssetExecutionContext,
    config: ContentStudyRunConfig,
    storage: LakeStorage,
    device: Device,
) -> dg.MaterializeResult:
    cfg = ContentStudyConfig(
        hours=config.hours, warmup_hours=config.warmup_hours,
        seeds=tuple(config.seeds), rows=tuple(config.rows),
    )  # fmt: skip
    study = prepare_study(context, storage, config.users, config.hours, config.sim_seed)
    store, world = study.store, study.world
    runs = run_content_study(store, parse_hour(world.start), cfg, str(device.torch_device()),
                             log=context.log.info)  # fmt: skip
    summary = summarize(runs, CONTENT_METRICS)
    claims = check_content_claims(summary)
    tables, claims_md = tables_markdown(summary), claims_markdown(claims)
    runs_table = pa.Table.from_pylist(
        [{"row": r.variant, "seed": r.seed, "windows": int(r.metrics["n"]),
          **{m: r.metrics[m] for m, _ in CONTENT_METRICS}} for r in runs]
    )  # fmt: skip
    about = study.about(
        cfg, str(device.torch_device()),
        evaluated=f"{int(summary[0]['n'])} windows per run after {cfg.warmup_hours} warm-up hours",
    )  # fmt: skip
    storage.store().publish(
        f"lake/{CONTENT_STUDY}",
        {"runs.parquet": parquet_bytes(runs_table),
         f"{CONTENT_STUDY}.md": (tables + "\n" + claims_md).encode()},
        {**about, "summary": summary, "claims": claims},
    )  # fmt: skip
    names = [r["variant"] for r in summary]
    return dg.MaterializeResult(
        metadata={
            "tables": dg.MetadataValue.md(tables),
            "claims": dg.MetadataValue.md(claims_md),
            "tau_plot": png(plots.bar_plot(names, {"Kendall tau": [r["tau"] for r in summary]},
                                           title="Kendall tau (mean over seeds)", ylabel="tau")),
            "study_root": store.root,
            **{k: about[k] for k in ("seconds", "data_layer_seconds", "data_layer", "device")},
        }
    )  # fmt: skip


content_tables_job = dg.define_asset_job(
    "content_tables",
    selection=dg.AssetSelection.assets(CONTENT_STUDY),
    description="ContentCTR's Tables 1, 3 and 4 (the size in the run config): the data "
    "layer of its world once, then every row × seed trained and evaluated.",
)
