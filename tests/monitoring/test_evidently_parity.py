"""Drift numbers vs evidently 0.7.23 on the same data (the oracle named in issue 9).

Equal within 1e-6: the KS p-value, normed Wasserstein, Jensen–Shannon distance (categorical),
chi-square p-value and categorical PSI. KS p-value convention: ours is always the asymptotic Smirnov
p-value; scipy's ``ks_2samp`` default (which evidently calls) switches to the exact distribution when
both samples have at most 10,000 rows, so the samples here are larger and both sides are asymptotic.
Numeric PSI: evidently bins on ``np.histogram_bin_edges(ref+cur, "sturges")`` (equal width) where we
use reference deciles (SPEC.md §3), so the values differ by design; we check that our PSI formula
applied to evidently's own bins gives evidently's number.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from service.audits._stats import psi
from service.config import PolicySpec
from service.monitoring.profile import build_profile
from service.monitoring.window import WindowAccumulator

TOL = 1e-6


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(2026)
    n, m = 12_000, 11_000
    ref = pd.DataFrame(
        {
            "num": rng.normal(0, 1, n),
            "wide": rng.gamma(2.0, 3.0, n),
            "cat": rng.choice(list("abcde"), n, p=[0.3, 0.25, 0.2, 0.15, 0.1]),
        }
    )
    cur = pd.DataFrame(
        {
            "num": rng.normal(0.02, 1.02, m),
            "wide": rng.gamma(2.06, 3.0, m),
            "cat": rng.choice(list("abcde"), m, p=[0.26, 0.25, 0.22, 0.15, 0.12]),
        }
    )
    return ref, cur


@pytest.fixture(scope="module")
def ours(frames):
    ref, cur = frames
    prof = build_profile(ref, list(ref.columns), exact_max_unique=10**9)
    acc = WindowAccumulator(prof, keep_values=True)
    acc.update(cur)
    return acc.drift(PolicySpec()).features


@pytest.fixture(scope="module")
def evidently_values(frames):
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    ref, cur = frames
    dd = DataDefinition(numerical_columns=["num", "wide"], categorical_columns=["cat"])
    metrics = [
        ValueDrift(column="num", method="ks"),
        ValueDrift(column="wide", method="ks"),
        ValueDrift(column="num", method="wasserstein"),
        ValueDrift(column="wide", method="wasserstein"),
        ValueDrift(column="num", method="psi"),
        ValueDrift(column="cat", method="jensenshannon"),
        ValueDrift(column="cat", method="chisquare"),
        ValueDrift(column="cat", method="psi"),
    ]
    snap = Report(metrics).run(
        current_data=Dataset.from_pandas(cur, data_definition=dd),
        reference_data=Dataset.from_pandas(ref, data_definition=dd),
    )
    return {(m["config"]["column"], m["config"]["method"]): m["value"] for m in snap.dict()["metrics"]}


@pytest.mark.parametrize("col", ["num", "wide"])
def test_ks_p_value_matches_evidently(ours, evidently_values, col):
    assert ours[col].ks_p_value == pytest.approx(evidently_values[(col, "ks")], abs=TOL)
    assert 1e-6 < ours[col].ks_p_value < 0.5  # a regime where the comparison means something


@pytest.mark.parametrize("col", ["num", "wide"])
def test_normed_wasserstein_matches_evidently(ours, evidently_values, col):
    assert ours[col].wasserstein_normed == pytest.approx(evidently_values[(col, "wasserstein")], abs=TOL)


def test_categorical_js_chi2_psi_match_evidently(ours, evidently_values):
    c = ours["cat"]
    assert c.new_categories == []  # evidently has no unseen bin; with one unseen category the bins coincide
    assert c.js == pytest.approx(evidently_values[("cat", "jensenshannon")], abs=TOL)
    assert c.chi2_p_value == pytest.approx(evidently_values[("cat", "chisquare")], abs=TOL)
    assert c.psi == pytest.approx(evidently_values[("cat", "psi")], abs=TOL)


def test_numeric_psi_formula_on_evidently_bins(frames, ours, evidently_values):
    from evidently.legacy.calculations.stattests.utils import get_binned_data
    from evidently.legacy.core import ColumnType

    ref, cur = frames
    e, a = get_binned_data(ref["num"], cur["num"], ColumnType.Numerical, 30)
    assert (e > 1e-4).all() and (a > 1e-4).all()  # no floor involved: the formulas must agree exactly
    assert psi(e, a) == pytest.approx(evidently_values[("num", "psi")], abs=TOL)
    # and the convention difference is real: deciles (ours) vs Sturges equal-width bins (evidently)
    assert abs(ours["num"].psi - evidently_values[("num", "psi")]) > 1e-4
