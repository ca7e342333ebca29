"""Imbalance section: event rate, ratio, events per variable, per-group events, low-default warnings,
minority-class metrics at the threshold.

Independent references: pandas on the data file, sklearn (recall/precision/balanced accuracy/F1,
average_precision_score) with the decision recomputed from the score column, aif360 num_positives,
and a naive row bootstrap for the CIs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
)

from service.audits import imbalance
from service.config import load_spec
from service.inputs.prepare import prepare
from tests.conftest import FIXTURES, GERMAN_SPEC, run_cli

EXACT = 1e-12


def synthetic(tmp_path: Path, *, n=3000, rate=0.2, seed=5, weight=False, oot=False, **extra) -> Path:
    rng = np.random.default_rng(seed)

    def frame(n: int, rate: float) -> pd.DataFrame:
        y = (rng.random(n) < rate).astype(int)
        grp = rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.35, 0.05])
        p = np.clip(rate + 0.3 * (y - rate) + rng.normal(0, 0.12, n), 0.001, 0.999).round(3)  # ties
        return pd.DataFrame(
            {
                "grp": grp,
                "x1": rng.normal(size=n),
                "x2": rng.normal(size=n),
                "p": p,
                "y": y,
                "w": rng.uniform(0.2, 3, n),
            }
        )

    frame(n, rate).to_csv(tmp_path / "data.csv", index=False)
    spec = {
        "model_name": "synthetic",
        "dataset": "data.csv",
        "target": "y",
        "score": {"column": "p", "threshold": max(rate, 0.02)},
        "features": ["x1", "x2"],
        "protected": [{"name": "grp", "column": "grp", "reference": "a"}],
        "bootstrap": 400,
        **extra,
    }
    if weight:
        spec["weight_column"] = "w"
    if oot:
        frame(n // 2, rate * 1.5).to_csv(tmp_path / "oot.csv", index=False)
        spec["oot_dataset"] = "oot.csv"
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return tmp_path / "audit.yaml"


def run(path: Path):
    out = imbalance.run(prepare(load_spec(path)).context)
    return out.section, out.findings


# --------------------------------------------------------------------------- German credit


def test_german_rates_and_events_per_variable():
    sec, findings = run(GERMAN_SPEC)
    raw = pd.read_csv(FIXTURES / "german_credit" / "german_credit.csv")
    ev = raw["label_bad"].sum()
    assert sec.events == ev == 300 and sec.n == 1000
    assert sec.event_rate == pytest.approx(ev / len(raw), abs=EXACT)
    assert sec.imbalance_ratio == pytest.approx((len(raw) - ev) / ev, abs=EXACT)
    assert sec.n_features == 18 and sec.events_per_variable == pytest.approx(300 / 18, abs=EXACT)
    by = raw.groupby("sex")["label_bad"].agg(["size", "sum"])
    for g in ("male", "female"):
        assert (
            sec.per_group["sex"][g].n == by.loc[g, "size"]
            and sec.per_group["sex"][g].events == by.loc[g, "sum"]
        )
    # A202 (not a foreign worker, "domestic") has 37 applicants and 4 bad outcomes: below 20 events
    dom = raw[raw["foreign_worker"] == "A202"]
    assert sec.per_group["foreign_worker"]["domestic"].events == dom["label_bad"].sum() == 4
    assert sec.per_group["foreign_worker"]["domestic"].low_default
    assert not sec.low_default_portfolio  # overall 300 events, 30%
    f = next(f for f in findings if f.title == "Few events in some groups")
    assert f.value == 4 and f.threshold == 20 and f.threshold_source == "default"


def test_german_group_events_match_aif360():
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import BinaryLabelDatasetMetric

    sec, _ = run(GERMAN_SPEC)
    raw = pd.read_csv(FIXTURES / "german_credit" / "german_credit.csv")
    df = pd.DataFrame({"male": (raw["sex"] == "male").astype(float), "y": raw["label_bad"].astype(float)})
    ds = BinaryLabelDataset(df=df, label_names=["y"], protected_attribute_names=["male"])
    m = BinaryLabelDatasetMetric(ds, unprivileged_groups=[{"male": 0}], privileged_groups=[{"male": 1}])
    assert sec.per_group["sex"]["male"].events == m.num_positives(privileged=True)
    assert sec.per_group["sex"]["female"].events == m.num_positives(privileged=False)


# --------------------------------------------------------------------------- minority-class metrics


@pytest.mark.parametrize("weight", [False, True])
def test_threshold_metrics_match_sklearn(tmp_path, weight):
    sec, _ = run(synthetic(tmp_path, weight=weight))
    raw = pd.read_csv(tmp_path / "data.csv")
    y, pred = raw["y"].to_numpy(), (raw["p"] >= 0.2).to_numpy()  # adverse when score >= threshold
    w = raw["w"].to_numpy() if weight else None
    d = sec.splits["dev"]
    assert d.recall == pytest.approx(recall_score(y, pred, sample_weight=w), abs=EXACT)
    assert d.precision == pytest.approx(precision_score(y, pred, sample_weight=w), abs=EXACT)
    assert d.balanced_accuracy == pytest.approx(balanced_accuracy_score(y, pred, sample_weight=w), abs=EXACT)
    assert d.f1 == pytest.approx(f1_score(y, pred, sample_weight=w), abs=EXACT)
    assert d.pr_auc == pytest.approx(average_precision_score(y, raw["p"], sample_weight=w), abs=1e-10)
    wt = np.ones(len(y)) if w is None else w
    assert d.event_rate == pytest.approx((wt * y).sum() / wt.sum(), abs=EXACT) == d.pr_auc_baseline
    assert d.confusion["tp"] == pytest.approx((wt * (y == 1) * pred).sum(), abs=1e-9)


def test_cis_match_naive_row_bootstrap(tmp_path):
    sec, _ = run(synthetic(tmp_path))
    raw = pd.read_csv(tmp_path / "data.csv")
    y, p = raw["y"].to_numpy(), raw["p"].to_numpy()
    pred = p >= 0.2
    rng = np.random.default_rng(0)
    rec, ap = [], []
    for _ in range(400):
        i = rng.integers(0, len(y), len(y))
        rec.append(recall_score(y[i], pred[i]))
        ap.append(average_precision_score(y[i], p[i]))
    d = sec.splits["dev"]
    lo, hi = np.percentile(rec, [2.5, 97.5])
    assert d.recall_ci[0] == pytest.approx(lo, abs=0.012) and d.recall_ci[1] == pytest.approx(hi, abs=0.012)
    lo, hi = np.percentile(ap, [2.5, 97.5])
    assert d.pr_auc_ci[0] == pytest.approx(lo, abs=0.012) and d.pr_auc_ci[1] == pytest.approx(hi, abs=0.012)
    assert d.recall_ci[0] < d.recall < d.recall_ci[1]


def test_oot_split_gets_its_own_metrics(tmp_path):
    sec, _ = run(synthetic(tmp_path, oot=True))
    raw = pd.read_csv(tmp_path / "oot.csv")
    assert set(sec.splits) == {"dev", "oot"}
    o = sec.splits["oot"]
    assert o.n == len(raw) and o.event_rate == pytest.approx(raw["y"].mean(), abs=EXACT)
    assert o.recall == pytest.approx(recall_score(raw["y"], raw["p"] >= 0.2), abs=EXACT)
    assert sec.n == 3000  # the headline figures are on the development sample


# --------------------------------------------------------------------------- warnings and mitigation


def test_low_default_portfolio(tmp_path):
    sec, findings = run(synthetic(tmp_path, n=2000, rate=0.03))
    raw = pd.read_csv(tmp_path / "data.csv")
    assert sec.events == raw["y"].sum() and sec.event_rate < 0.05
    assert sec.low_default_portfolio and any("event rate" in r for r in sec.low_default_reasons)
    f = next(f for f in findings if f.title == "Low-default portfolio")
    assert f.metric == "event_rate" and f.threshold == 0.05 and f.threshold_source == "default"


def test_few_events_overall_uses_policy_threshold(tmp_path):
    sec, findings = run(synthetic(tmp_path, n=400, rate=0.04, policy={"low_default_events": 30}))
    assert sec.events < 30
    f = next(f for f in findings if f.title == "Low-default portfolio")
    assert f.metric == "events" and f.threshold == 30 and f.threshold_source == "policy"
    epv = next(f for f in findings if f.title == "Few events per variable")
    assert (
        epv.value == pytest.approx(sec.events / 2)
        and epv.threshold == 10
        and epv.threshold_source == "default"
    )


def test_mitigation_is_recorded_not_verified(tmp_path):
    sec, findings = run(synthetic(tmp_path, imbalance={"mitigation": "class weights 1:4 in training"}))
    assert sec.mitigation == "class weights 1:4 in training"
    assert "not verified" in sec.mitigation_note
    f = next(f for f in findings if f.title == "Class-imbalance mitigation documented")
    assert f.severity == "info" and "class weights" in f.detail
    sec, findings = run(synthetic(tmp_path))
    assert sec.mitigation is None and not any("mitigation" in f.title for f in findings)


# --------------------------------------------------------------------------- bad inputs


def test_unknown_imbalance_key_exit_2(tmp_path):
    path = synthetic(tmp_path, imbalance={"mitigaton": "smote"})
    r = run_cli("audit", str(path), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "mitigaton" in r.stderr and "Traceback" not in r.stderr


def test_one_class_target_exit_2(tmp_path):
    path = synthetic(tmp_path)
    raw = pd.read_csv(tmp_path / "data.csv")
    raw["y"] = 0
    raw.to_csv(tmp_path / "data.csv", index=False)
    r = run_cli("audit", str(path), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "event_value" in r.stderr and "never occurs" in r.stderr
