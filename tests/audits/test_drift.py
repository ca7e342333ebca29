"""The ``drift`` audit section on the Taiwan shift scenario (fixtures/taiwan_shift) vs scipy/pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from service.audits import drift
from service.audits.context import NotApplicable

SHIFT_SPEC = Path(__file__).resolve().parents[2] / "fixtures" / "taiwan_shift" / "audit.yaml"


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    bins = [-np.inf, *edges, np.inf]
    e = pd.cut(pd.Series(ref), bins).value_counts(sort=False).to_numpy() / ref.size
    a = pd.cut(pd.Series(cur), bins).value_counts(sort=False).to_numpy() / cur.size
    e, a = np.maximum(e, 1e-4), np.maximum(a, 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


@pytest.fixture(scope="module")
def shift_ctx():
    from service.config import load_spec
    from service.inputs.prepare import prepare

    return prepare(load_spec(SHIFT_SPEC)).context


@pytest.fixture(scope="module")
def section(shift_ctx):
    return drift.run(shift_ctx)


@pytest.mark.parametrize("feature", ["LIMIT_BAL", "PAY_0", "BILL_AMT1", "AGE"])
def test_feature_drift_matches_scipy(shift_ctx, section, feature):
    ref = shift_ctx.dev.frame[feature].to_numpy(float)
    cur = shift_ctx.oot.frame[feature].to_numpy(float)
    d = section.section.features[feature]
    assert d.psi == pytest.approx(_psi(ref, cur), abs=1e-12)
    ks = stats.ks_2samp(ref, cur, method="asymp")
    assert d.ks == pytest.approx(ks.statistic, abs=1e-12)
    assert d.ks_p_value == pytest.approx(ks.pvalue, rel=1e-9, abs=1e-300)
    assert d.wasserstein == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-12)


def test_score_psi_and_prediction_drift(shift_ctx, section):
    sec = section.section
    assert sec.score.psi == pytest.approx(_psi(shift_ctx.dev.score, shift_ctx.oot.score), abs=1e-12)
    assert sec.prediction.adverse_rate == pytest.approx(shift_ctx.oot.adverse.mean(), abs=1e-12)
    assert sec.prediction.reference_adverse_rate == pytest.approx(shift_ctx.dev.adverse.mean(), abs=1e-12)
    assert sec.n_reference == 15000 and sec.n_current == 5000


def test_planted_shift_is_found(section):
    """build.py raised PAY_0 for 30% of window-3 rows: PSI must flag it (amber or red)."""
    sec = section.section
    assert sec.features["PAY_0"].traffic_light in ("amber", "red")
    assert sec.features["PAY_0"].psi > sec.features["PAY_2"].psi  # PAY_2 was not touched
    titles = [f.title for f in section.findings]
    assert any("PAY_0" in t for t in titles)
    for f in section.findings:
        assert f.threshold_source in ("default", "policy") and f.section == "drift"


def test_fairness_drift_air_matches_groupby(shift_ctx, section):
    groups = section.section.fairness["attributes"]["age"]["groups"]
    oot = shift_ctx.oot
    lab = oot.protected["age"].labels()
    fav = pd.Series(~oot.adverse).groupby(lab).mean()
    assert groups["18-25"]["air"] == pytest.approx(fav["18-25"] / fav["25-40"], rel=1e-12)
    assert groups["18-25"]["share"] == pytest.approx((lab == "18-25").mean(), rel=1e-12)


def test_not_run_without_out_of_time_sample(german_ctx):
    with pytest.raises(NotApplicable, match="no out-of-time sample"):
        drift.run(german_ctx)
