"""Performance section vs scikit-learn / scipy computed independently here, and HL by its formula."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from service.audits import performance
from service.audits._stats import hosmer_lemeshow


def _sample(n: int, seed: int, *, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.3, n)
    p = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + 1.2 * y - 0.8)))
    if ties:
        p = np.round(p, 2)  # many tied scores, as with a points scorecard
    return y, p


def _weighted_ks(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> float:
    """Largest gap between the weighted ECDFs of events and non-events, evaluated at every score."""
    grid = np.unique(s)
    pos = np.array([w[(y == 1) & (s <= g)].sum() for g in grid]) / w[y == 1].sum()
    neg = np.array([w[(y == 0) & (s <= g)].sum() for g in grid]) / w[y == 0].sum()
    return float(np.abs(pos - neg).max())


@pytest.mark.parametrize("ties", [False, True])
def test_discrimination_and_loss_match_sklearn_and_scipy(ties):
    y, p = _sample(4000, 1, ties=ties)
    m = performance.score_metrics(y, p, p, n_boot=0, rng=np.random.default_rng(0))
    assert m["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["gini"] == pytest.approx(2 * roc_auc_score(y, p) - 1, abs=1e-12)
    assert m["ks"] == pytest.approx(stats.ks_2samp(p[y == 1], p[y == 0]).statistic, abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y, p), abs=1e-12)


def test_more_distinct_scores_than_table_cells_still_exact():
    """Above the 4,000-cell table the point estimates must still be the exact row-level values."""
    y, p = _sample(20_000, 2)
    assert np.unique(p).size > 4000
    m = performance.score_metrics(y, p, None, n_boot=50, rng=np.random.default_rng(0))
    assert m["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["ks"] == pytest.approx(stats.ks_2samp(p[y == 1], p[y == 0]).statistic, abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert "brier" not in m  # not a probability → no loss metrics


def test_sample_weights_respected():
    y, p = _sample(3000, 3, ties=True)
    w = np.random.default_rng(9).uniform(0.2, 3.0, y.size)
    m = performance.score_metrics(y, p, p, sample_weight=w, n_boot=0, rng=np.random.default_rng(0))
    assert m["auc"] == pytest.approx(roc_auc_score(y, p, sample_weight=w), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p, sample_weight=w), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p, sample_weight=w), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y, p, sample_weight=w), abs=1e-12)
    assert m["ks"] == pytest.approx(_weighted_ks(y, p, w), abs=1e-12)


def test_count_bootstrap_ci_agrees_with_row_bootstrap():
    """The count bootstrap is the row bootstrap computed on cells: the two CIs must agree."""
    y, p = _sample(3000, 4, ties=True)
    m = performance.score_metrics(y, p, p, n_boot=2000, rng=np.random.default_rng(1))
    rng = np.random.default_rng(2)
    aucs, briers = [], []
    for _ in range(1000):
        i = rng.integers(0, y.size, y.size)
        aucs.append(roc_auc_score(y[i], p[i]))
        briers.append(brier_score_loss(y[i], p[i]))
    lo, hi = np.percentile(aucs, [2.5, 97.5])
    assert m["auc_ci"][0] == pytest.approx(lo, abs=0.006)
    assert m["auc_ci"][1] == pytest.approx(hi, abs=0.006)
    blo, bhi = np.percentile(briers, [2.5, 97.5])
    assert m["brier_ci"][0] == pytest.approx(blo, abs=0.002)
    assert m["brier_ci"][1] == pytest.approx(bhi, abs=0.002)
    assert m["auc_ci"][0] < m["auc"] < m["auc_ci"][1]


def test_hosmer_lemeshow_matches_direct_formula():
    rng = np.random.default_rng(5)
    p = 1 / (1 + np.exp(-rng.normal(-1, 1, 5000)))
    y = rng.binomial(1, p)  # calibrated by construction
    hl = hosmer_lemeshow(y, p, groups=10)
    order = np.argsort(p, kind="mergesort")
    stat = 0.0
    for idx in np.array_split(order, 10):
        n_k, o_k, e_k = idx.size, y[idx].sum(), p[idx].sum()
        stat += (o_k - e_k) ** 2 / (e_k * (1 - e_k / n_k))
    assert hl["statistic"] == pytest.approx(stat, rel=1e-10)
    assert hl["df"] == 8
    assert hl["p_value"] == pytest.approx(stats.chi2.sf(stat, 8), rel=1e-10)
    # a well-specified model is not rejected; a miscalibrated one is
    assert hl["p_value"] > 0.001
    bad = hosmer_lemeshow(y, np.clip(p * 1.6, 0, 0.999), groups=10)
    assert bad["p_value"] < 1e-6


def test_section_on_german_fixture(german_ctx):
    out = performance.run(german_ctx)
    sec = out.section
    dev = sec.splits["dev"]
    split = next(iter(german_ctx.splits()))
    assert dev.n == split.n == 1000
    assert dev.auc == pytest.approx(roc_auc_score(split.y, split.risk), abs=1e-12)
    assert dev.events == split.y.sum() == 300  # 300 bad credits in Statlog German credit
    assert dev.calibration is not None
    assert dev.calibration.observed_rate == pytest.approx(split.y.mean())
    assert dev.calibration.mean_predicted == pytest.approx(split.prob.mean())
    assert sum(b.n for b in dev.calibration.deciles) == 1000
    assert dev.adverse_rate == pytest.approx(split.adverse.mean())
