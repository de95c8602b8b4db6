"""Studies: the Moment & Cross ablation as one asset (``ablation``), its job
(``ablation_study``) and its command (``python -m assets.studies``, ``make ablation``).

A study owns a data root of its own under ``<data root>/studies/<study id>/``: the
simulator writes the hours there, the real hourly data assets (with their checks) are
materialized there once, hour by hour, with their outcomes; then every variant × seed is
trained and evaluated over the same hours (``ml.evaluate.ablation``). A second run with
the same world (users, hours, simulator seed, start) reuses the data layer and only
trains. The asset publishes its table under ``lake/ablation/`` of the main root and shows
it, the six claims and two plots as metadata.
"""

import json
import platform
import time
from dataclasses import dataclass

import dagster as dg
import pyarrow as pa
from pydantic import Field

from assets.metadata import MODEL_OWNERS, asset_tags, png
from assets.partitions import START_KEY
from ml.evaluate.ablation import METRICS, AblationConfig, run_ablation, summarize
from ml.evaluate.ablation_report import (
    check_claims,
    claims_markdown,
    hourly_markdown,
    hourly_plot,
    summary_plot,
    table_markdown,
)
from ml.hours import HOUR_MS, parse_hour, partition_key
from ml.io.lake import ABLATION
from ml.io.store import parquet_bytes
from ml.moment.emission_hour import OUTCOME_LOOKAHEAD_HOURS
from ml.sim import SimConfig, simulate
from ml.train.variants import SEEDS, VARIANTS
from resources.device import Device
from resources.storage import LakeStorage, LandingZone

STUDY_MARKER = "study.json"


@dataclass(frozen=True)
class StudyWorld:
    """The simulated world a study trains on (its data layer depends on nothing else)."""

    users: int
    hours: int  # trained hours; the simulator writes OUTCOME_LOOKAHEAD_HOURS more
    sim_seed: int
    start: str = START_KEY

    @property
    def study_id(self) -> str:
        return f"u{self.users}-h{self.hours}-seed{self.sim_seed}-{self.start.replace(':', '')}"


def build_data_layer(storage: LakeStorage, world: StudyWorld, log=lambda _: None) -> bool:
    """Simulate ``world`` into ``storage``'s root and materialize every hourly data asset
    (checks included) of each hour, and live_outcomes of the trained hours, through
    Dagster. Skipped when the root's marker says this world is already there; -> whether
    it was built now."""
    # The graph's own definitions, imported on use: this module is part of them.
    from assets.definitions import HOURLY_ASSET_NAMES, defs

    store = storage.store()
    marker = {"world": world.__dict__, "assets": sorted(HOURLY_ASSET_NAMES)}
    if store.exists(STUDY_MARKER):
        built = json.loads(store.read_bytes(STUDY_MARKER))
        if built == marker:
            log(f"data layer of {world.study_id} already built: reused")
            return False
        if built.get("world", built) != world.__dict__:
            raise ValueError(f"{store.url(STUDY_MARKER)} holds another world: use a fresh root")
        # the same world, built by a graph with other data assets: build it again (the
        # simulator and every asset are deterministic, and each partition is replaced whole)
        log(f"data layer of {world.study_id} was built with other assets: rebuilding")
        store.delete(STUDY_MARKER)
    total = world.hours + OUTCOME_LOOKAHEAD_HOURS
    simulate(SimConfig(start=world.start, hours=total, users=world.users, seed=world.sim_seed),
             store, progress=False)  # fmt: skip
    resources = {"storage": storage, "landing": LandingZone(storage=storage),
                 "device": Device(kind="cpu")}  # fmt: skip
    start_ms = parse_hour(world.start)
    jobs = [(HOURLY_ASSET_NAMES, total), (["live_outcomes"], world.hours)]
    for names, hours in jobs:
        for i in range(hours):
            key = partition_key(start_ms + i * HOUR_MS)
            result = dg.materialize(
                [*defs.assets, *defs.asset_checks],
                selection=dg.AssetSelection.assets(*names),
                partition_key=key,
                resources=resources,
                # the study's own run logs its progress; the nested runs only their warnings
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                raise_on_error=False,
            )
            if not result.success:
                raise dg.Failure(f"the study's data layer failed at {key} ({', '.join(names)})")
            log(f"data layer {key}: {', '.join(names) if len(names) < 3 else 'hourly assets'}")
    store.write_bytes(STUDY_MARKER, json.dumps(marker).encode())
    return True


class AblationStudyConfig(dg.Config):
    """Size of the study (the default: about 18 minutes on 2 cores)."""

    users: int = Field(default=10_000, description="simulated users (~0.5 exposures each an hour)")
    hours: int = Field(default=16, description="trained hours")
    warmup_hours: int = Field(default=4, description="trained first, not evaluated")
    seeds: list[int] = Field(default=list(SEEDS), description="training seeds of each variant")
    variants: list[str] = Field(default=list(VARIANTS), description="of ml.train.variants")
    sim_seed: int = Field(default=7, description="the simulated world's seed")


@dataclass
class PreparedStudy:
    """A study's world with its data layer in place, and the figures every study reports."""

    world: StudyWorld
    store: object  # the study root's Store
    built: bool
    t0: float
    data_seconds: float

    def about(self, cfg, device: str, **extra) -> dict:
        return {
            **extra, "world": self.world.__dict__, "study_root": self.store.root,
            "config": cfg.__dict__, "device": device, "machine": platform.node(),
            "python": platform.python_version(),
            "seconds": round(time.perf_counter() - self.t0, 1),
            "data_layer_seconds": round(self.data_seconds, 1),
            "data_layer": "built" if self.built else "reused",
        }  # fmt: skip


def prepare_study(context, storage: LakeStorage, users: int, hours: int, sim_seed: int):
    """The study world of these sizes under ``storage``'s root, its data layer built once."""
    t0 = time.perf_counter()
    world = StudyWorld(users, hours, sim_seed)
    sub = study_storage(storage, world)
    built = build_data_layer(sub, world, log=context.log.info)
    return PreparedStudy(world, sub.store(), built, t0, time.perf_counter() - t0)


def study_storage(storage: LakeStorage, world: StudyWorld) -> LakeStorage:
    """The storage resource of the study's own root (the main root's credentials)."""
    fields = {k: getattr(storage, k) for k in LakeStorage.model_fields if k != "root"}
    return LakeStorage(root=f"{storage.root.rstrip('/')}/studies/{world.study_id}", **fields)


@dg.asset(
    name=ABLATION,
    group_name="studies",
    kinds={"pytorch"},
    owners=MODEL_OWNERS,
    tags=asset_tags("evaluate", "evaluation"),
    description="The Moment & Cross ablation on a simulated world of its own: every "
    "variant × seed trained hour by hour with progressive validation on the same hours, "
    "evaluated after a warm-up; mean and spread over seeds, the oracle as the ceiling, "
    "DeepCTR-Torch's PLE as the external baseline, and the paper's six claims checked.",
)
def ablation(
    context: dg.AssetExecutionContext,
    config: AblationStudyConfig,
    storage: LakeStorage,
    device: Device,
) -> dg.MaterializeResult:
    cfg = AblationConfig(
        hours=config.hours, warmup_hours=config.warmup_hours,
        seeds=tuple(config.seeds), variants=tuple(config.variants),
    )  # fmt: skip
    study = prepare_study(context, storage, config.users, config.hours, config.sim_seed)
    store, world = study.store, study.world
    runs = run_ablation(store, store, parse_hour(world.start), cfg, device.torch_device(),
                        log=context.log.info)  # fmt: skip
    summary = summarize(runs)
    claims = check_claims(summary)
    table, claims_md = table_markdown(summary), claims_markdown(claims)
    hourly_md = hourly_markdown(runs)
    runs_table = pa.Table.from_pylist(
        [{"variant": r.variant, "seed": r.seed, "samples": r.samples,
          "n": int(r.metrics["n"]),
          "n_low_live": int(r.metrics["n_low_live"]),
          **{m: r.metrics.get(m) for m, _ in METRICS}} for r in runs]
    )  # fmt: skip
    about = study.about(
        cfg, str(device.torch_device()),
        evaluated=f"{int(summary[0]['n'])} exposures per run after {cfg.warmup_hours} warm-up "
        f"hours ({int(summary[0]['n_low_live'])} of the low-live cohort)",
    )  # fmt: skip
    lake = storage.store()
    lake.publish(
        f"lake/{ABLATION}",
        {
            "runs.parquet": parquet_bytes(runs_table),
            "ablation.md": "\n".join(
                [table, claims_md, "Click AUC by hour (mean over seeds):\n", hourly_md]
            ).encode(),
        },
        {**about, "summary": summary, "claims": claims},
    )
    return dg.MaterializeResult(
        metadata={
            "table": dg.MetadataValue.md(table),
            "claims": dg.MetadataValue.md(claims_md),
            "click_auc_by_hour_table": dg.MetadataValue.md(hourly_md),
            "summary_plot": png(summary_plot(summary)),
            "click_auc_by_hour": png(hourly_plot(runs)),
            "study_root": store.root,
            "exposures_evaluated": int(summary[0]["n"]),
            **{
                k: v
                for k, v in about.items()
                if k in ("seconds", "data_layer_seconds", "data_layer", "device")
            },
        }
    )


ablation_study_job = dg.define_asset_job(
    "ablation_study",
    selection=dg.AssetSelection.assets(ABLATION),
    description="The Moment & Cross ablation (its size in the run config): the data layer "
    "of its world once, then every variant × seed trained and evaluated.",
)
