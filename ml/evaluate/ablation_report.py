"""The ablation's table, the paper's six claims checked against it, and its plots.

A claim "by more than the seed spread" compares the difference of two rows' means with
the larger of their standard deviations over seeds. The oracle row has no spread (it does
not train). A claim whose rows were not run says so instead of holding or failing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ml.evaluate import plots
from ml.evaluate.ablation import METRICS, ORACLE, VariantRun
from ml.evaluate.tables import markdown_table

CLAIM_COLUMNS = ("claim", "measured", "spread", "holds")


def _fmt(mean: float, sd: float, seeds: int) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.4f}" if seeds < 2 else f"{mean:.4f} ± {sd:.4f}"


def table_markdown(rows: Sequence[dict], metrics: Sequence[tuple[str, str]] = METRICS) -> str:
    """variant | every metric as mean ± sd (sd over seeds) | seeds."""
    cols = ["variant", *(h for _, h in metrics), "seeds"]
    out = [
        {"variant": r["variant"], "seeds": r["seeds"],
         **{h: _fmt(r[m], r[f"{m}_sd"], r["seeds"]) for m, h in metrics}}
        for r in rows
    ]  # fmt: skip
    return markdown_table(out, cols)


def _diff(rows: dict, a: str, b: str, metric: str) -> tuple[float, float]:
    """(mean of a − mean of b, the larger seed sd of the two)."""
    ra, rb = rows[a], rows[b]
    return ra[metric] - rb[metric], max(ra[f"{metric}_sd"], rb[f"{metric}_sd"])


def check_claims(summary: Sequence[dict]) -> list[dict]:
    """The issue's six claims, each measured on ``summary`` (``ablation.summarize``)."""
    rows = {r["variant"]: r for r in summary}

    def need(*names):
        return all(n in rows for n in names)

    def beats(claim, a, b, metric, label):
        if not need(a, b):
            return {"claim": claim, "measured": f"not run ({a}, {b})", "spread": "", "holds": None}
        d, sd = _diff(rows, a, b, metric)
        return {"claim": claim, "measured": f"{label}: {a} − {b} = {d:+.4f}",
                "spread": f"{sd:.4f}", "holds": bool(d > sd)}  # fmt: skip

    out = []
    c1 = "1. full click AUC within 0.02 of the oracle's"
    if need("full", ORACLE):
        d = rows[ORACLE]["click_auc"] - rows["full"]["click_auc"]
        out.append({"claim": c1, "measured": f"oracle − full = {d:+.4f}",
                    "spread": f"{rows['full']['click_auc_sd']:.4f}", "holds": bool(d <= 0.02)})  # fmt: skip
    else:
        out.append({"claim": c1, "measured": "not run (full, oracle)", "spread": "", "holds": None})
    out.append(beats("2. Cross lifts the low-live cohort's click GAUC", "full", "no_cross",
                     "low_click_gauc", "low-live GAUC"))  # fmt: skip
    out.append(beats("3. 30 s beat 5 min features on click AUC", "full", "stale_5m",
                     "click_auc", "click AUC"))  # fmt: skip
    c4 = "4. fast + slow PU: gift calibration closer to 1 than fast-only"
    if need("fast_slow", "fast_only"):
        fs, fo = rows["fast_slow"]["gift_calibration"], rows["fast_only"]["gift_calibration"]
        sd = max(rows["fast_slow"]["gift_calibration_sd"], rows["fast_only"]["gift_calibration_sd"])
        out.append({"claim": c4, "measured": f"|{fs:.3f} − 1| vs |{fo:.3f} − 1|",
                    "spread": f"{sd:.4f}", "holds": bool(abs(fs - 1) < abs(fo - 1))})  # fmt: skip
    else:
        out.append({"claim": c4, "measured": "not run (fast_slow, fast_only)", "spread": "",
                    "holds": None})  # fmt: skip
    c5 = "5. moment ≥ fast + slow on click AUC"
    if need("full", "fast_slow"):
        d, sd = _diff(rows, "full", "fast_slow", "click_auc")
        out.append({"claim": c5, "measured": f"click AUC: full − fast_slow = {d:+.4f}",
                    "spread": f"{sd:.4f}", "holds": bool(d >= 0)})  # fmt: skip
    else:
        out.append({"claim": c5, "measured": "not run (full, fast_slow)", "spread": "",
                    "holds": None})  # fmt: skip
    out.append(beats("6. full beats DeepCTR-Torch's PLE on click AUC", "full", "deepctr_ple",
                     "click_auc", "click AUC"))  # fmt: skip
    return out


def claims_markdown(claims: Sequence[dict]) -> str:
    shown = [{**c, "holds": {True: "yes", False: "no", None: "–"}[c["holds"]]} for c in claims]
    return markdown_table(shown, CLAIM_COLUMNS)


def summary_plot(summary: Sequence[dict]) -> bytes:
    """Grouped bars per variant: click AUC, click GAUC, low-live click GAUC (seed means)."""
    names = [r["variant"] for r in summary]
    series = {h: [r[m] for r in summary] for m, h in METRICS
              if m in ("click_auc", "click_gauc", "low_click_gauc")}  # fmt: skip
    return plots.bar_plot(names, series, title="Ablation (mean over seeds)", ylabel="AUC")


def hourly_click_auc(runs: Sequence[VariantRun]) -> tuple[list[str], dict[str, list[float]]]:
    """(hours, variant -> click AUC of each hour, the mean over seeds)."""
    by: dict[str, list[list[float]]] = {}
    hours: list[str] = []
    for r in runs:
        by.setdefault(r.variant, []).append([h["click_auc"] for h in r.hourly])
        hours = hours or [h["hour"] for h in r.hourly]
    return hours, {name: list(np.mean(np.array(v, np.float64), axis=0)) for name, v in by.items()}


def hourly_markdown(runs: Sequence[VariantRun]) -> str:
    """Click AUC by hour (mean over seeds): one row per variant, one column per hour."""
    hours, series = hourly_click_auc(runs)
    cols = ["variant", *(h[-5:] for h in hours)]
    rows = [{"variant": n, **{h[-5:]: f"{v:.3f}" for h, v in zip(hours, vs, strict=True)}}
            for n, vs in series.items()]  # fmt: skip
    return markdown_table(rows, cols)


def hourly_plot(runs: Sequence[VariantRun]) -> bytes:
    """Click AUC by hour per variant (mean over seeds), the oracle's as the ceiling."""
    hours, series = hourly_click_auc(runs)
    return plots.line_plot(hours, series, title="Click AUC by hour (progressive validation)",
                           xlabel="hour", ylabel="AUC")  # fmt: skip
