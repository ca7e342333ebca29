"""Drift statistics of one window vs independent computations (pandas, scipy, direct formulas)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from service.config import PolicySpec
from service.errors import InputError
from service.monitoring.profile import build_profile, categorical_profile, load_profile, numeric_profile
from service.monitoring.window import (
    CategoricalAccumulator,
    NumericAccumulator,
    WindowAccumulator,
    traffic_light,
)

POLICY = PolicySpec()
TOL = 1e-12


def _direct_decile_psi(ref: np.ndarray, cur: np.ndarray) -> float:
    """SPEC.md §3 written out with pandas: reference deciles, right-closed bins, 1e-4 floor."""
    r = ref[~np.isnan(ref)]
    c = cur[~np.isnan(cur)]
    edges = np.unique(np.quantile(r, np.arange(1, 10) / 10))
    bins = [-np.inf, *edges, np.inf]
    e = pd.cut(pd.Series(r), bins, right=True).value_counts(sort=False).to_numpy() / r.size
    a = pd.cut(pd.Series(c), bins, right=True).value_counts(sort=False).to_numpy() / c.size
    e, a = np.maximum(e, 1e-4), np.maximum(a, 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    ref_small = rng.normal(50, 10, 3000).round(0)  # ≤ 2001 distinct values: profile keeps the exact ECDF
    cur_small = rng.normal(53, 11, 4000).round(1)
    ref_big = rng.lognormal(10, 0.6, 40_000)  # continuous: quantile sketch
    cur_big = rng.lognormal(10.1, 0.6, 30_000)
    cur_small[::97] = np.nan
    return ref_small, cur_small, ref_big, cur_big


def _run(prof, cur, *, keep, chunks=3):
    acc = NumericAccumulator(prof, keep_values=keep)
    for part in np.array_split(cur, chunks):
        acc.update(part)
    return acc.result(POLICY)


@pytest.mark.parametrize("keep", [True, False])
def test_numeric_psi_ks_wasserstein_exact_reference(data, keep):
    ref, cur, _, _ = data
    prof = numeric_profile(ref)
    assert prof.sketch_exact
    r = _run(prof, cur, keep=keep)
    c = cur[~np.isnan(cur)]
    assert r.psi == pytest.approx(_direct_decile_psi(ref, cur), abs=TOL)
    ks = stats.ks_2samp(ref, c, method="asymp")
    assert r.ks == pytest.approx(
        ks.statistic, abs=TOL
    )  # KS is exact against an exact profile, streamed or not
    assert r.ks_p_value == pytest.approx(ks.pvalue, rel=1e-9, abs=1e-300)
    w1 = stats.wasserstein_distance(ref, c)
    if keep:
        assert r.wasserstein == pytest.approx(w1, rel=1e-12)
        assert r.method == "exact"
    else:  # binned: exact except where the CDFs cross inside an interval
        assert r.wasserstein == pytest.approx(w1, rel=2e-3)
        assert r.method == "binned"
    assert r.wasserstein_normed == pytest.approx(r.wasserstein / np.std(ref), rel=1e-12)
    assert r.missing_rate == pytest.approx(np.isnan(cur).mean(), abs=TOL)
    assert r.mean == pytest.approx(np.nanmean(cur), rel=1e-12)


@pytest.mark.parametrize("keep", [True, False])
def test_numeric_quantile_sketch_error_bounds(data, keep):
    _, _, ref, cur = data
    prof = numeric_profile(ref)
    assert not prof.sketch_exact and len(prof.sketch_values) == 1001
    r = _run(prof, cur, keep=keep)
    assert r.psi == pytest.approx(_direct_decile_psi(ref, cur), abs=TOL)  # PSI never uses the sketch
    ks = stats.ks_2samp(ref, cur).statistic
    assert abs(r.ks - ks) <= 1 / 1000 + 1e-12  # documented bound 1/(K-1)
    assert r.wasserstein == pytest.approx(stats.wasserstein_distance(ref, cur), rel=0.05)


@pytest.mark.parametrize("keep", [True, False])
def test_integer_weights_equal_repeated_rows(data, keep):
    """sample_weight = k counts a row k times: compare with the window whose rows are repeated."""
    ref, cur, _, _ = data
    prof = numeric_profile(ref)
    w = np.random.default_rng(7).integers(1, 4, cur.size).astype("float64")
    acc = NumericAccumulator(prof, keep_values=keep)
    for part, wp in zip(np.array_split(cur, 3), np.array_split(w, 3), strict=True):
        acc.update(part, wp)
    weighted = acc.result(POLICY)
    repeated = _run(prof, np.repeat(cur, w.astype(int)), keep=keep)
    for key in ("psi", "ks", "wasserstein", "mean", "missing_rate", "n"):
        assert getattr(weighted, key) == pytest.approx(getattr(repeated, key), rel=1e-9, abs=1e-12), key
    c = np.repeat(cur, w.astype(int))
    assert weighted.psi == pytest.approx(_direct_decile_psi(ref, c), abs=TOL)


def test_psi_floor_and_out_of_range_values_go_to_end_bins():
    ref = np.arange(1, 101, dtype=float)  # deciles 10.9, 20.8, ...
    cur = np.array([-1e9, 1e9, 50.0, 50.0])
    prof = numeric_profile(ref)
    acc = NumericAccumulator(prof)
    acc.update(cur)
    r = acc.result(POLICY)
    assert r.current_shares[0] == pytest.approx(0.25) and r.current_shares[-1] == pytest.approx(0.25)
    assert r.psi == pytest.approx(_direct_decile_psi(ref, cur), abs=TOL)
    assert r.traffic_light == "red"


def test_categorical_unseen_bin_js_chi2():
    rng = np.random.default_rng(3)
    ref = pd.Series(rng.choice(["a", "b", "c", "d"], 5000, p=[0.4, 0.3, 0.2, 0.1]))
    cur = pd.Series(rng.choice(["a", "b", "c", "d", "z", "y"], 3000, p=[0.3, 0.3, 0.2, 0.1, 0.06, 0.04]))
    cur[:10] = None
    prof = categorical_profile(ref)
    acc = CategoricalAccumulator(prof)
    acc.update(cur.iloc[:1000])
    acc.update(cur.iloc[1000:])
    r = acc.result(POLICY)
    e = ref.value_counts().reindex(["a", "b", "c", "d"]).to_numpy(dtype=float)
    obs = cur.dropna().map(lambda v: v if v in "abcd" else "__unseen__").value_counts()
    a = obs.reindex(["a", "b", "c", "d", "__unseen__"]).to_numpy(dtype=float)
    ep = np.maximum(np.append(e / e.sum(), 0.0), 1e-4)
    ap = np.maximum(a / a.sum(), 1e-4)
    assert r.psi == pytest.approx(float(np.sum((ap - ep) * np.log(ap / ep))), abs=TOL)
    assert r.js == pytest.approx(distance.jensenshannon(np.append(e, 0.0), a), abs=1e-12)
    exp_share = np.append(e / e.sum(), 1e-4)
    exp_share /= exp_share.sum()
    chi = stats.chisquare(a, exp_share * a.sum())
    assert r.chi2 == pytest.approx(chi.statistic, rel=1e-12)
    assert r.chi2_p_value == pytest.approx(chi.pvalue, rel=1e-9, abs=1e-300)
    assert set(r.new_categories) == {"z", "y"} and r.new_categories[0] == "z"
    assert r.unseen_share == pytest.approx(a[-1] / a.sum())
    assert r.missing_rate == pytest.approx(10 / 3000)


def test_categorical_chi2_without_unseen_matches_scipy():
    rng = np.random.default_rng(5)
    ref = pd.Series(rng.choice(list("pqrs"), 4000))
    cur = pd.Series(rng.choice(list("pqrs"), 2000, p=[0.3, 0.3, 0.2, 0.2]))
    acc = CategoricalAccumulator(categorical_profile(ref))
    acc.update(cur)
    r = acc.result(POLICY)
    e = ref.value_counts().reindex(list("pqrs")).to_numpy(float)
    o = cur.value_counts().reindex(list("pqrs")).to_numpy(float)
    chi = stats.chisquare(o, e / e.sum() * o.sum())
    assert r.chi2 == pytest.approx(chi.statistic, rel=1e-12) and r.chi2_df == 3
    assert r.chi2_p_value == pytest.approx(chi.pvalue, rel=1e-9)


def test_traffic_lights_follow_policy():
    pol = PolicySpec(psi_amber=0.05, psi_red=0.5)
    assert traffic_light(0.049, pol) == "green"
    assert traffic_light(0.05, pol) == "amber"
    assert traffic_light(0.5, pol) == "red"
    assert traffic_light(None, pol) is None


def test_fairness_window_air_ci_and_test():
    """AIR per group vs a pandas groupby; p-value vs scipy (z test / Fisher); alert needs both criteria."""
    rng = np.random.default_rng(11)
    n = 6000
    ref_frame = pd.DataFrame({"x": rng.normal(size=n)})
    ref_g = rng.choice([0, 1, 2], n)
    ref_adv = rng.random(n) < 0.2

    class PG:  # the attributes build_profile reads from ProtectedGroups
        def __init__(self, codes):
            self.codes, self.groups, self.reference = codes, ["ref", "g1", "g2"], "ref"

    prof = build_profile(ref_frame, ["x"], score=rng.random(n), adverse=ref_adv, protected={"grp": PG(ref_g)})
    m = 3000
    g = rng.choice([0, 1, 2], m, p=[0.5, 0.4, 0.1])
    adv = rng.random(m) < np.array([0.2, 0.45, 0.22])[g]
    acc = WindowAccumulator(prof)
    acc.update(pd.DataFrame({"x": rng.normal(size=m)}), score=rng.random(m), adverse=adv, codes={"grp": g})
    fair = acc.fairness(POLICY, n_boot=400, rng=np.random.default_rng(0))["grp"]
    df = pd.DataFrame({"g": g, "fav": ~adv})
    rate = df.groupby("g")["fav"].mean()
    for i, name in enumerate(["ref", "g1", "g2"]):
        gw = fair.groups[name]
        assert gw.air == pytest.approx(rate[i] / rate[0], rel=1e-12)
        assert gw.n == (g == i).sum()
    x1, n1 = int((~adv & (g == 1)).sum()), int((g == 1).sum())
    x0, n0 = int((~adv & (g == 0)).sum()), int((g == 0).sum())
    p = (x1 + x0) / (n1 + n0)
    z = (x1 / n1 - x0 / n0) / np.sqrt(p * (1 - p) * (1 / n1 + 1 / n0))
    g1 = fair.groups["g1"]
    assert g1.air_p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    assert g1.air_ci[0] < g1.air < g1.air_ci[1]
    assert g1.alert  # AIR ≈ 0.69 < 0.8 and p tiny
    assert not fair.groups["g2"].alert  # AIR ≈ 0.97
    ref_rate = pd.Series(~ref_adv).groupby(ref_g).mean()
    assert g1.reference_air == pytest.approx(ref_rate[1] / ref_rate[0], rel=1e-12)
    # shortfall: favorable decisions g1 lacks for AIR to reach 0.8, counted directly
    need = 0
    while (x1 + need) / n1 / (x0 / n0) < POLICY.air_min:
        need += 1
    assert g1.shortfall == need and fair.groups["g2"].shortfall == 0 and fair.groups["ref"].shortfall == 0
    assert fair.groups["ref"].air_ci == [1.0, 1.0]  # the reference group, as the fairness audit has it


def _pooled_z_p(x1: float, n1: float, x2: float, n2: float) -> float:
    p = (x1 + x2) / (n1 + n2)
    z = (x1 / n1 - x2 / n2) / np.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    return float(2 * stats.norm.sf(abs(z)))


def test_prediction_drift_vs_direct_computation():
    rng = np.random.default_rng(21)
    ref_score = rng.beta(2, 6, 8000)
    prof = build_profile(
        pd.DataFrame({"x": rng.normal(size=8000)}), ["x"], score=ref_score, adverse=ref_score >= 0.4
    )
    cur_score = rng.beta(2.4, 6, 5000)
    cur_adv = cur_score >= 0.4
    acc = WindowAccumulator(prof)
    for part in np.array_split(np.arange(5000), 4):
        acc.update(
            pd.DataFrame({"x": rng.normal(size=part.size)}), score=cur_score[part], adverse=cur_adv[part]
        )
    pred = acc.prediction()
    assert pred.mean_score == pytest.approx(cur_score.mean(), rel=1e-12)
    assert pred.reference_mean_score == pytest.approx(ref_score.mean(), rel=1e-12)
    assert pred.adverse_rate == pytest.approx(cur_adv.mean(), abs=1e-15)
    assert pred.reference_adverse_rate == pytest.approx((ref_score >= 0.4).mean(), abs=1e-15)
    assert pred.adverse_rate_difference == pytest.approx(cur_adv.mean() - (ref_score >= 0.4).mean())
    x_ref = (ref_score >= 0.4).sum()
    assert pred.adverse_rate_p_value == pytest.approx(_pooled_z_p(cur_adv.sum(), 5000, x_ref, 8000), rel=1e-9)
    drift = acc.drift(POLICY)
    assert drift.score.psi == pytest.approx(_direct_decile_psi(ref_score, cur_score), abs=TOL)


def test_missing_rate_jump_raises_an_alert_only_when_large_and_significant():
    from service.monitoring.window import window_alerts

    rng = np.random.default_rng(8)
    ref = rng.normal(size=10_000)
    ref[rng.random(10_000) < 0.05] = np.nan
    prof = build_profile(pd.DataFrame({"a": ref, "b": ref.copy()}), ["a", "b"])
    a = rng.normal(size=4000)
    a[rng.random(4000) < 0.15] = np.nan  # 5% -> ~15%: alert
    b = rng.normal(size=4000)
    b[rng.random(4000) < 0.06] = np.nan  # 5% -> ~6%: below missing_gap_max, no alert
    acc = WindowAccumulator(prof)
    acc.update(pd.DataFrame({"a": a, "b": b}))
    drift = acc.drift(POLICY)
    da = drift.features["a"]
    assert da.missing_rate == pytest.approx(
        np.isnan(a).mean()
    ) and da.reference_missing_rate == pytest.approx(np.isnan(ref).mean())
    assert da.missing_p_value == pytest.approx(
        _pooled_z_p(np.isnan(a).sum(), 4000, np.isnan(ref).sum(), 10_000), rel=1e-9
    )
    titles = [f.title for f in window_alerts(drift, {}, POLICY)]
    assert "Missing-rate increase in feature 'a'" in titles
    assert not any("'b'" in t and "Missing" in t for t in titles)
    assert drift.features["a"].psi == pytest.approx(_direct_decile_psi(ref, a), abs=TOL)  # NaNs in no bin


def test_trend_slope_and_persistent_air_shortfall():
    from service.monitoring.monitor import trend

    def win(air: float, score_psi: float) -> dict:
        return {
            "drift": {"score": {"psi": score_psi}},
            "fairness": {"attributes": {"age": {"groups": {"young": {"air": air}, "mid": {"air": 1.0}}}}},
        }

    airs = [0.95, 0.9, 0.78, 0.77, 0.74]
    hist = [win(a, 0.01 * i) for i, a in enumerate(airs[:-1])]
    out, findings = trend(hist, win(airs[-1], 0.2), POLICY, n=8)
    assert out["windows"] == 5 and out["air"]["age"]["young"] == airs
    assert out["score_psi"] == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.2])
    assert out["air_slope"]["age"]["young"] == pytest.approx(stats.linregress(range(5), airs).slope, rel=1e-9)
    assert out["air_slope"]["age"]["mid"] == pytest.approx(0.0, abs=1e-12)
    assert [f.title for f in findings] == ["Persistent adverse impact ratio shortfall for age=young"]
    assert findings[0].threshold == 0.8 and findings[0].threshold_source == "default"
    # only the last n windows count; two low windows out of three are not persistent
    out, findings = trend(hist[:3], win(0.9, 0.0), POLICY, n=3)
    assert out["windows"] == 3 and out["air"]["age"]["young"] == [0.9, 0.78, 0.9] and findings == []


def test_profile_is_sealed_and_tamper_evident():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=500), "b": rng.choice(["x", "y"], 500)})
    prof = build_profile(frame, ["a", "b"], score=rng.random(500), adverse=rng.random(500) < 0.3)
    raw = prof.model_dump_json().encode()
    again = load_profile(raw)
    assert again.sha256 == prof.sha256 and again.features["b"].kind == "categorical"
    tampered = raw.replace(b'"n_rows":500', b'"n_rows":501')
    with pytest.raises(InputError, match="sha256 does not match"):
        load_profile(tampered)
    with pytest.raises(InputError, match="not a reference profile"):
        load_profile(b"{}")
    with pytest.raises(InputError, match="feature 'zz' is not in the reference data"):
        build_profile(frame, ["zz"])


def test_profile_is_compact_for_one_million_rows():
    rng = np.random.default_rng(2)
    n = 1_000_000
    frame = pd.DataFrame({f"f{i}": rng.normal(size=n) for i in range(3)})
    prof = build_profile(frame, list(frame.columns))
    assert len(prof.model_dump_json()) < 3 * 1001 * 2 * 25 + 5000  # two 1001-point arrays per feature
