"""Drift numbers vs evidently 0.7.23 on the same data (the oracle named in issue 9).

Equal within 1e-6: the KS p-value, normed Wasserstein, Jensen–Shannon distance (categorical, also
with a category the reference never had), chi-square p-value and categorical PSI (also with an unseen
category). KS p-value convention: ours is always the asymptotic Smirnov p-value; scipy's ``ks_2samp``
default (which evidently calls) switches to the exact distribution when both samples have at most
10,000 rows, so the samples here are larger and both sides are asymptotic.

Numeric PSI, the exact convention difference: evidently bins on ``np.histogram_bin_edges(ref+cur,
"sturges")`` (equal width, left-closed [a,b)) where we use reference deciles, right-closed (SPEC.md
§3), so the values differ by design. Given evidently's edges as the profile's bins, our window
accumulator reproduces evidently's PSI (continuous data: no value falls on an edge). Empty bins: both
use 1e-4 when no other bin is below 1e-4 (evidently replaces exact zeros by 1e-4, or by the smallest
non-zero share / 1e6 when that is ≤ 1e-4; we floor every share below 1e-4 at 1e-4).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from service.audits._stats import bin_counts, psi
from service.config import PolicySpec
from service.monitoring.profile import build_profile, numeric_profile
from service.monitoring.window import NumericAccumulator, WindowAccumulator

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
            "cat2": rng.choice(list("pqr"), n, p=[0.5, 0.3, 0.2]),
        }
    )
    cur = pd.DataFrame(
        {
            "num": rng.normal(0.02, 1.02, m),
            "wide": rng.gamma(2.06, 3.0, m),
            "cat": rng.choice(list("abcde"), m, p=[0.26, 0.25, 0.22, 0.15, 0.12]),
            "cat2": rng.choice(list("pqrz"), m, p=[0.45, 0.3, 0.2, 0.05]),  # z: never in the reference
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
    dd = DataDefinition(numerical_columns=["num", "wide"], categorical_columns=["cat", "cat2"])
    metrics = [
        ValueDrift(column="num", method="ks"),
        ValueDrift(column="wide", method="ks"),
        ValueDrift(column="num", method="wasserstein"),
        ValueDrift(column="wide", method="wasserstein"),
        ValueDrift(column="num", method="psi"),
        ValueDrift(column="cat", method="jensenshannon"),
        ValueDrift(column="cat", method="chisquare"),
        ValueDrift(column="cat", method="psi"),
        ValueDrift(column="wide", method="psi"),
        ValueDrift(column="cat2", method="psi"),
        ValueDrift(column="cat2", method="jensenshannon"),
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


def test_categorical_with_unseen_category_matches_evidently(ours, evidently_values):
    """evidently gives the new category its own bin (reference share 0 -> 1e-4); ours is the unseen bin."""
    c = ours["cat2"]
    assert c.new_categories == ["z"] and c.unseen_share > 0.04
    assert c.psi == pytest.approx(evidently_values[("cat2", "psi")], abs=TOL)
    assert c.js == pytest.approx(evidently_values[("cat2", "jensenshannon")], abs=TOL)


def _sturges_edges(ref: pd.Series, cur: pd.Series) -> np.ndarray:
    """evidently's numeric PSI bins (legacy ``get_binned_data``), computed here with numpy."""
    return np.histogram_bin_edges(np.concatenate([ref.to_numpy(), cur.to_numpy()]), bins="sturges")


@pytest.mark.parametrize("col", ["num", "wide"])
def test_window_psi_on_evidently_bins_equals_evidently(frames, evidently_values, col):
    """Our profile + window accumulator, given evidently's bin edges, gives evidently's PSI."""
    ref, cur = frames
    edges = _sturges_edges(ref[col], cur[col])
    inner = edges[1:-1]  # all data lie in [edges[0], edges[-1]]: our open end bins hold the same rows
    x = ref[col].to_numpy(float)
    assert not np.isin(np.concatenate([x, cur[col].to_numpy(float)]), inner).any()  # no value on an edge
    prof = numeric_profile(x)
    prof.edges, prof.counts = inner.tolist(), bin_counts(x, inner).tolist()
    acc = NumericAccumulator(prof)
    for part in np.array_split(cur[col].to_numpy(float), 3):
        acc.update(part)
    got = acc.result(PolicySpec())
    evid = evidently_values[(col, "psi")]
    e, a = np.array(got.reference_shares), np.array(got.current_shares)
    if col == "num":  # no share below 1e-4 on either side: no floor involved, the numbers agree
        assert min(e.min(), a.min()) > 1e-4
        assert got.psi == pytest.approx(evid, abs=TOL)
    else:
        # a long right tail: empty reference bins next to single-row bins (1/12000 < 1e-4). The whole
        # difference is the zero convention: evidently's rule applied to OUR bin shares gives its number.
        assert (e == 0).any() and 0 < e[e > 0].min() <= 1e-4
        assert got.psi == pytest.approx(psi(e, a, floor=1e-4), abs=1e-12)  # ours: SPEC.md §3 floor
        assert abs(got.psi - evid) > 1e-3

        def evidently_fill(p: np.ndarray) -> np.ndarray:
            low = p[p > 0].min()
            return np.where(p == 0, low / 1e6 if low <= 1e-4 else 1e-4, p)

        ef, af = evidently_fill(e), evidently_fill(a)
        assert float(np.sum((ef - af) * np.log(ef / af))) == pytest.approx(evid, abs=TOL)


def test_numeric_psi_formula_on_evidently_bins(frames, ours, evidently_values):
    from evidently.legacy.calculations.stattests.utils import get_binned_data
    from evidently.legacy.core import ColumnType

    ref, cur = frames
    e, a = get_binned_data(ref["num"], cur["num"], ColumnType.Numerical, 30)
    assert (e > 1e-4).all() and (a > 1e-4).all()  # no floor involved: the formulas must agree exactly
    assert psi(e, a) == pytest.approx(evidently_values[("num", "psi")], abs=TOL)
    # and the convention difference is real: deciles (ours) vs Sturges equal-width bins (evidently)
    assert abs(ours["num"].psi - evidently_values[("num", "psi")]) > 1e-4
