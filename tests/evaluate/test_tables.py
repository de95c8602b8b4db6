"""ml.evaluate.tables on hand-built hours: the join, its counts and the hour's metrics."""

import numpy as np
import pyarrow as pa
import pytest
import sklearn.metrics as sk

from ml.evaluate import tables as T
from ml.schema import TASKS

RATES = dict(zip(TASKS, (0.3, 0.15, 0.1, 0.05, 0.04, 0.03), strict=True))


def _hour(seed=0, n=600, n_users=40):
    """Shuffled predictions and outcomes that overlap partly, plus oracle and cohorts."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"e{i:05d}" for i in range(n)])
    user = rng.integers(1, n_users + 1, n).astype(np.int64)
    room = rng.integers(100, 130, n).astype(np.int64)
    t0 = (1_700_000_000_000 + rng.integers(0, 3_600_000, n)).astype(np.int64)
    truth = rng.random(n).astype(np.float32) * 0.6
    labels = {t: (rng.random(n) < RATES[t] + truth * (t == "click")).astype(np.int8) for t in TASKS}
    probs = {t: np.clip(truth + rng.normal(0, 0.2, n), 0.01, 0.99) for t in TASKS}
    probs = {t: np.round(v, 2).astype(np.float32) for t, v in probs.items()}  # ties

    pred_rows = rng.permutation(np.flatnonzero(rng.random(n) < 0.9))
    predictions = pa.table(
        {
            "exposure_id": ids[pred_rows],
            "user_id": user[pred_rows],
            "room_id": room[pred_rows],
            "t0_ms": t0[pred_rows],
            **{f"p_{t}": probs[t][pred_rows] for t in TASKS},
            "score": np.prod([1 + probs[t][pred_rows] for t in TASKS], axis=0).astype(np.float32),
            "model_step": np.arange(len(pred_rows), dtype=np.int64),
        }
    )
    out_rows = rng.permutation(np.flatnonzero(rng.random(n) < 0.85))
    extra = 17  # outcomes of exposures never scored
    outcomes = pa.table(
        {
            "exposure_id": np.concatenate([ids[out_rows], [f"x{i}" for i in range(extra)]]),
            "user_id": np.concatenate([user[out_rows], np.ones(extra, np.int64)]),
            "room_id": np.concatenate([room[out_rows], np.ones(extra, np.int64)]),
            "t0_ms": np.concatenate([t0[out_rows], np.ones(extra, np.int64)]),
            **{
                f"y_{t}": np.concatenate([labels[t][out_rows], np.zeros(extra, np.int8)])
                for t in TASKS
            },
            "watch_ms": np.zeros(len(out_rows) + extra, np.int64),  # ignored
        }
    )
    oracle_rows = rng.permutation(np.flatnonzero(rng.random(n) < 0.7))
    oracle = pa.table(
        {
            "user_id": user[oracle_rows],
            "item_id": room[oracle_rows],
            "author_id": room[oracle_rows] * 3,  # ignored
            "event_time_ms": t0[oracle_rows],
            "p_enter": truth[oracle_rows],
        }
    )
    cohort_users = np.arange(1, n_users - 4)  # the last few users have no cohort
    cohorts = pa.table({"user_id": cohort_users, "low_live_cohort": cohort_users % 3 == 0})
    ref = {
        "ids": ids, "user": user, "labels": labels, "probs": probs, "truth": truth,
        "pred": set(pred_rows), "out": set(out_rows), "oracle": set(oracle_rows),
        "extra": extra, "low": {int(u): bool(u % 3 == 0) for u in cohort_users},
    }  # fmt: skip
    return predictions, outcomes, oracle, cohorts, ref


def _expected_rows(ref):
    """The exposures both sides hold, the plain Python way."""
    return sorted(ref["pred"] & ref["out"])


def test_join_pairs_and_counts():
    predictions, outcomes, oracle, cohorts, ref = _hour()
    res = T.join_predictions(predictions, outcomes, oracle, cohorts)
    both = _expected_rows(ref)
    tab = res.table
    assert res.n_joined == tab.num_rows == len(both)
    assert res.n_predictions_without_outcome == len(ref["pred"] - ref["out"])
    assert res.n_outcomes_without_prediction == len(ref["out"] - ref["pred"]) + ref["extra"]
    assert res.n_duplicate_predictions == res.n_duplicate_outcomes == res.n_key_mismatch == 0
    assert res.n_oracle_matched == len(set(both) & ref["oracle"])
    assert res.n_oracle_duplicates == 0

    # Every joined row carries its own exposure's labels and oracle value.
    row = {e: i for i, e in enumerate(ref["ids"])}
    idx = np.array([row[e] for e in tab.column("exposure_id").to_pylist()])
    assert sorted(idx.tolist()) == both
    for t in TASKS:
        np.testing.assert_array_equal(tab.column(f"y_{t}").to_numpy(), ref["labels"][t][idx])
        np.testing.assert_array_equal(tab.column(f"p_{t}").to_numpy(), ref["probs"][t][idx])
    q = tab.column("oracle_p_enter").to_pylist()
    for i, v in zip(idx, q, strict=True):
        assert (v is None) == (i not in ref["oracle"])
        if v is not None:
            assert v == pytest.approx(float(ref["truth"][i]))
    low = tab.column("low_live_cohort").to_pylist()
    assert low == [ref["low"].get(int(u)) for u in ref["user"][idx]]
    assert res.n_cohort_matched == sum(int(u) in ref["low"] for u in ref["user"][idx])
    # The prediction order is kept.
    pred_order = predictions.column("exposure_id").to_pylist()
    pos = {e: i for i, e in enumerate(pred_order)}
    assert np.all(np.diff([pos[e] for e in tab.column("exposure_id").to_pylist()]) > 0)
    assert set(res.counts()) >= {"n_joined", "n_oracle_matched"}
    assert "table" not in res.counts()


def test_join_duplicates_mismatches_and_no_extras():
    predictions = pa.table(
        {
            "exposure_id": ["a", "b", "a", "c", None],
            "user_id": pa.array([1, 2, 1, 3, 4], pa.int64()),
            "room_id": pa.array([10, 20, 10, 30, 40], pa.int64()),
            "t0_ms": pa.array([5, 6, 5, 7, 8], pa.int64()),
            "p_click": pa.array([0.1, 0.2, 0.9, 0.3, 0.4], pa.float32()),
        }
    )
    outcomes = pa.table(
        {
            "exposure_id": ["c", "b", "b", "d", None],
            "user_id": pa.array([3, 2, 2, 9, 4], pa.int64()),
            "room_id": pa.array([31, 20, 20, 9, 40], pa.int64()),  # c's room disagrees
            "t0_ms": pa.array([7, 6, 6, 9, 8], pa.int64()),
            "y_click": pa.array([1, 0, 1, 0, 1], pa.int8()),
        }
    )
    # The oracle repeats one key with two values: the first is kept, rows do not fan out.
    oracle = pa.table(
        {
            "user_id": pa.array([2, 2, 3], pa.int32()),
            "item_id": pa.array([20, 20, 30], pa.int32()),
            "event_time_ms": pa.array([6, 6, 7], pa.int64()),
            "p_enter": pa.array([0.25, 0.75, 0.5], pa.float64()),
        }
    )
    res = T.join_predictions(predictions, outcomes, oracle)
    assert res.table.column("exposure_id").to_pylist() == ["b", "c"]
    assert res.table.column("y_click").to_pylist() == [0, 1]  # b's first outcome
    assert res.table.column("p_click").to_pylist() == pytest.approx([0.2, 0.3])
    assert res.table.column("oracle_p_enter").to_pylist() == [0.25, 0.5]
    assert res.n_duplicate_predictions == 1 and res.n_duplicate_outcomes == 1
    # A null id pairs with nothing: it counts as unmatched on both sides.
    assert res.n_predictions_without_outcome == 2  # a, null
    assert res.n_outcomes_without_prediction == 2  # d, null
    assert res.n_key_mismatch == 1
    assert res.n_oracle_matched == 2 and res.n_oracle_duplicates == 1
    assert res.n_cohort_matched is None and "low_live_cohort" not in res.table.column_names


def test_join_empty_inputs():
    predictions, outcomes, oracle, cohorts, _ = _hour(n=50)
    res = T.join_predictions(predictions.slice(0, 0), outcomes, oracle.slice(0, 0), cohorts)
    assert res.n_joined == 0 and res.n_outcomes_without_prediction == outcomes.num_rows
    report = T.evaluate_hour(res)
    assert report["n"] == 0
    assert all(np.isnan(r["auc"]) for r in report["tasks"])
    assert report["oracle"]["n_matched"] == 0


def _sk_gauc(y, p, g):
    num = den = 0.0
    for u in np.unique(g):
        m = g == u
        if 0 < y[m].sum() < m.sum():
            num += m.sum() * sk.roc_auc_score(y[m], p[m])
            den += m.sum()
    return num / den


def test_evaluate_hour_matches_sklearn():
    predictions, outcomes, oracle, cohorts, _ = _hour(seed=1)
    res = T.join_predictions(predictions, outcomes, oracle, cohorts)
    report = T.evaluate_hour(res)
    tab = res.table
    users = tab.column("user_id").to_numpy()
    assert report["n"] == tab.num_rows and report["join"] == res.counts()
    assert [r["task"] for r in report["tasks"]] == list(TASKS)
    for r in report["tasks"]:
        y = tab.column(f"y_{r['task']}").to_numpy()
        p = tab.column(f"p_{r['task']}").to_numpy().astype(np.float64)
        assert r["n"] == len(y)
        assert r["positive_rate"] == pytest.approx(y.mean())
        assert r["auc"] == pytest.approx(sk.roc_auc_score(y, p), abs=1e-12)
        assert r["gauc"] == pytest.approx(_sk_gauc(y, p, users), abs=1e-12)
        want_ll = sk.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])
        assert r["logloss"] == pytest.approx(want_ll, rel=1e-9)
        assert r["calibration"] == pytest.approx(p.mean() / y.mean())

    y = tab.column("y_click").to_numpy()
    p = tab.column("p_click").to_numpy().astype(np.float64)
    q = tab.column("oracle_p_enter")
    m = q.is_valid().to_numpy(zero_copy_only=False)
    qv = q.fill_null(0).to_numpy().astype(np.float64)
    o = report["oracle"]
    assert o["n_matched"] == res.n_oracle_matched == m.sum()
    assert o["oracle_auc"] == pytest.approx(sk.roc_auc_score(y[m], qv[m]), abs=1e-12)
    assert o["model_auc"] == pytest.approx(sk.roc_auc_score(y[m], p[m]), abs=1e-12)
    assert o["oracle_gauc"] == pytest.approx(_sk_gauc(y[m], qv[m], users[m]), abs=1e-12)
    assert o["model_gauc"] == pytest.approx(_sk_gauc(y[m], p[m], users[m]), abs=1e-12)
    # The oracle sees the true click probability: it must beat a noisy model.
    assert o["oracle_auc"] > o["model_auc"]

    low = tab.column("low_live_cohort")
    known = low.is_valid().to_numpy(zero_copy_only=False)
    flag = low.fill_null(False).to_numpy(zero_copy_only=False)
    rows = {r["cohort"]: r for r in report["cohorts"]}
    for name, value in (("low_live", True), ("regular", False)):
        c = known & (flag == value)
        assert rows[name]["n"] == c.sum() > 0
        assert rows[name]["auc"] == pytest.approx(sk.roc_auc_score(y[c], p[c]), abs=1e-12)
        assert rows[name]["gauc"] == pytest.approx(_sk_gauc(y[c], p[c], users[c]), abs=1e-12)
    assert report["n_cohort_unknown"] == (~known).sum() > 0


def test_evaluate_hour_plain_table_null_labels_and_missing_tasks():
    tab = pa.table(
        {
            "exposure_id": ["a", "b", "c", "d"],
            "user_id": pa.array([1, 1, 2, 2], pa.int64()),
            "p_click": pa.array([0.9, 0.1, 0.8, 0.3], pa.float32()),
            "y_click": pa.array([1, 0, None, 1], pa.int8()),
            "p_gift": pa.array([0.1, 0.1, 0.1, 0.1], pa.float32()),
        }
    )
    report = T.evaluate_hour(tab)
    (click,) = report["tasks"]
    assert click["task"] == "click" and click["n"] == 3
    assert click["auc"] == pytest.approx(sk.roc_auc_score([1, 0, 1], [0.9, 0.1, 0.3]))
    assert click["gauc"] == 1.0  # only user 1 holds both classes
    assert report["missing_tasks"] == [t for t in TASKS if t != "click"]
    assert report["oracle"] is None and report["cohorts"] == [] and report["join"] is None


def test_calibration_bins_by_task():
    predictions, outcomes, _, _, _ = _hour(seed=2)
    res = T.join_predictions(predictions, outcomes)
    bins = T.calibration_bins_by_task(res, n_bins=5)
    assert list(bins) == list(TASKS)
    assert all(b.count.sum() == res.n_joined for b in bins.values())


def test_markdown_table():
    rows = [
        {"task": "click", "n": 1234, "auc": 0.712345, "ok": True, "note": "a|b"},
        {"task": "gift", "n": np.int64(7), "auc": float("nan"), "ok": None},
        {"task": "like", "n": 3, "auc": np.float32(123456.0)},
    ]
    md = T.markdown_table(rows, ["task", "n", "auc", "ok", "note"], headers={"auc": "AUC"})
    assert md.splitlines() == [
        "| task | n | AUC | ok | note |",
        "|---|---|---|---|---|",
        "| click | 1234 | 0.7123 | True | a\\|b |",
        "| gift | 7 | nan |  |  |",
        "| like | 3 | 1.235e+05 |  |  |",
    ]


def test_report_markdown():
    predictions, outcomes, oracle, cohorts, _ = _hour(seed=3, n=200)
    report = T.evaluate_hour(T.join_predictions(predictions, outcomes, oracle, cohorts))
    md = T.report_markdown(report)
    assert "| task | n |" in md and "oracle_auc" in md and "low_live" in md
