"""Fairness audit vs independent computations: fairlearn MetricFrame, AIF360, scipy, direct formulas.

Tolerances: ``EXACT`` for quantities computed from the same counts by another library (floating
point only); CI checks compare the bootstrap interval with an analytic interval and allow for the
Monte-Carlo error of 1,000 replicates.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path

import aif360.sklearn.metrics as aif
import fairlearn.metrics as fl_metrics
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import precision_score, roc_auc_score

from service.audits import fairness
from service.audits.context import AuditContext, ProtectedGroups, Split
from service.config import parse_spec
from service.errors import InputError
from service.inputs.prepare import prepare
from tests.conftest import GERMAN_SPEC, run_cli

EXACT = 1e-10
MC_REL = 0.15  # bootstrap half-width vs analytic half-width, relative, for 1,000 replicates


@pytest.fixture(scope="module")
def german_out(german_ctx):
    return fairness.run(german_ctx)


@pytest.fixture(scope="module")
def taiwan_out(taiwan_ctx):
    return fairness.run(taiwan_ctx)


def _labels(split: Split, name: str) -> pd.Series:
    return pd.Series(split.protected[name].labels(), name=name)


def _metric_frame(split: Split, sensitive, *, sample_weight=None):
    y = split.y.astype(int)
    yp = split.adverse.astype(int)
    params = None
    if sample_weight is not None:
        params = {k: {"sample_weight": sample_weight} for k in ("sel", "tpr", "fpr", "fnr", "prec", "n")}
    mf = fl_metrics.MetricFrame(
        metrics={
            "sel": fl_metrics.selection_rate,
            "tpr": fl_metrics.true_positive_rate,
            "fpr": fl_metrics.false_positive_rate,
            "fnr": fl_metrics.false_negative_rate,
            "prec": lambda yt, yp_, sample_weight=None: precision_score(
                yt, yp_, zero_division=np.nan, sample_weight=sample_weight
            ),
            "n": fl_metrics.count,
        },
        y_true=y,
        y_pred=yp,
        sensitive_features=sensitive,
        sample_params=params,
    )
    auc = fl_metrics.MetricFrame(
        metrics=roc_auc_score, y_true=y, y_pred=split.risk, sensitive_features=sensitive
    )
    return mf.by_group, auc.by_group


def _check_group_against_fairlearn(gf, row, auc):
    assert gf.n == row["n"]
    assert gf.adverse_rate == pytest.approx(row["sel"], abs=EXACT)
    assert gf.favorable_rate == pytest.approx(1 - row["sel"], abs=EXACT)
    assert gf.true_positive_rate == pytest.approx(row["tpr"], abs=EXACT)
    assert gf.false_positive_rate == pytest.approx(row["fpr"], abs=EXACT)
    assert gf.false_negative_rate == pytest.approx(row["fnr"], abs=EXACT)
    assert gf.precision == pytest.approx(row["prec"], abs=EXACT)
    assert gf.auc == pytest.approx(auc, abs=EXACT)


@pytest.mark.parametrize("ctx_name", ["german_ctx", "taiwan_ctx"])
def test_every_attribute_metric_matches_fairlearn(ctx_name, request):
    ctx: AuditContext = request.getfixturevalue(ctx_name)
    out = fairness.run(ctx)
    sec = out.section
    checked = 0
    for name in ctx.dev.protected:
        by_group, auc = _metric_frame(ctx.dev, _labels(ctx.dev, name))
        block = sec.attributes[name]
        assert set(block.groups) == set(by_group.index)
        for g, gf in block.groups.items():
            if gf.suppressed:
                assert gf.n < ctx.spec.policy.min_group_size and gf.air is None
                continue
            _check_group_against_fairlearn(gf, by_group.loc[g], auc.loc[g])
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("ctx_name", ["german_ctx", "taiwan_ctx"])
def test_intersections_match_fairlearn_multiindex(ctx_name, request):
    ctx: AuditContext = request.getfixturevalue(ctx_name)
    sec = fairness.run(ctx).section
    names = list(ctx.dev.protected)
    frame = pd.concat([_labels(ctx.dev, n) for n in names], axis=1)
    by_group, auc = _metric_frame(ctx.dev, frame)
    by_group = by_group[by_group["n"] > 0]  # fairlearn lists every combination, empty ones too
    inter = sec.intersections
    assert inter is not None and inter.attributes == names
    natural = "|".join(f"{n}={ctx.dev.protected[n].reference}" for n in names)
    natural_n = by_group.loc[tuple(ctx.dev.protected[n].reference for n in names), "n"]
    if natural_n >= ctx.spec.policy.min_group_size:
        assert inter.reference == natural and inter.reference_note is None
    else:  # German credit: 28 domestic men aged 26-75 -> the largest cell is the reference
        largest = by_group["n"].idxmax()
        assert inter.reference == "|".join(f"{n}={v}" for n, v in zip(names, largest, strict=True))
        assert f"({natural}) has n = {natural_n:g} < policy.min_group_size" in inter.reference_note
        assert inter.groups[natural].suppressed
    # every non-empty fairlearn cell is a key, and nothing else
    keys = {"|".join(f"{n}={v}" for n, v in zip(names, idx, strict=True)) for idx in by_group.index}
    assert set(inter.groups) == keys
    live = 0
    for idx, row in by_group.iterrows():
        key = "|".join(f"{n}={v}" for n, v in zip(names, idx, strict=True))
        gf = inter.groups[key]
        if row["n"] < ctx.spec.policy.min_group_size:
            assert gf.suppressed and gf.n == row["n"] and gf.adverse_rate is None and gf.auc is None
            assert "min_group_size" in gf.suppressed_reason
            continue
        assert not gf.suppressed
        _check_group_against_fairlearn(gf, row, auc.loc[idx])
        live += 1
    assert live >= 4


@pytest.mark.parametrize("ctx_name", ["german_ctx", "taiwan_ctx"])
def test_summary_matches_fairlearn_disparity_functions(ctx_name, request):
    ctx: AuditContext = request.getfixturevalue(ctx_name)
    sec = fairness.run(ctx).section
    y = ctx.dev.y.astype(int)
    adv = ctx.dev.adverse.astype(int)
    compared = 0
    for name in ctx.dev.protected:
        block = sec.attributes[name]
        live = block.summary.groups_compared
        lab = _labels(ctx.dev, name)
        keep = lab.isin(live).to_numpy()
        s = lab[keep]
        dpr = fl_metrics.demographic_parity_ratio(y[keep], 1 - adv[keep], sensitive_features=s)
        dpd = fl_metrics.demographic_parity_difference(y[keep], 1 - adv[keep], sensitive_features=s)
        eod = fl_metrics.equalized_odds_difference(y[keep], adv[keep], sensitive_features=s)
        eor = fl_metrics.equalized_odds_ratio(y[keep], adv[keep], sensitive_features=s)
        assert block.summary.demographic_parity_ratio == pytest.approx(dpr, abs=EXACT)
        assert block.summary.demographic_parity_difference == pytest.approx(dpd, abs=EXACT)
        assert block.summary.equalized_odds_difference == pytest.approx(eod, abs=EXACT)
        assert block.summary.equalized_odds_ratio == pytest.approx(eor, abs=EXACT)
        compared += 1
    assert compared == len(ctx.dev.protected)


def test_air_and_spd_match_aif360(german_out, german_ctx):
    sec = german_out.section
    y = german_ctx.dev.y.astype(int)
    fav = (~german_ctx.dev.adverse).astype(int)
    for name in german_ctx.dev.protected:
        block = sec.attributes[name]
        lab = _labels(german_ctx.dev, name)
        for g, gf in block.groups.items():
            if g == block.reference:
                assert gf.air == 1.0 and gf.air_ci == [1.0, 1.0]
                continue
            keep = lab.isin([g, block.reference]).to_numpy()
            idx = pd.Index(lab[keep].to_numpy(), name=name)
            yt = pd.Series(y[keep], index=idx)
            yp = pd.Series(fav[keep], index=idx)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dir_ = aif.disparate_impact_ratio(
                    yt, yp, prot_attr=name, priv_group=block.reference, pos_label=1
                )
                spd = aif.statistical_parity_difference(
                    yt, yp, prot_attr=name, priv_group=block.reference, pos_label=1
                )
            assert gf.air == pytest.approx(dir_, abs=EXACT)
            assert gf.differences["favorable_rate"] == pytest.approx(spd, abs=EXACT)


def test_tests_smd_calibration_and_shortfall_by_direct_formulas(taiwan_out, taiwan_ctx):
    """p-values vs scipy, SMD vs numpy, calibration vs pandas, shortfall vs its definition."""
    sec = taiwan_out.section
    sp = taiwan_ctx.dev
    air_min = taiwan_ctx.spec.policy.air_min
    name = "age"
    block = sec.attributes[name]
    lab = _labels(sp, name).to_numpy()
    ref = block.reference
    r_mask = lab == ref
    checked = 0
    for g, gf in block.groups.items():
        if g == ref or gf.suppressed:
            continue
        g_mask = lab == g
        # AIR test: the two-proportion z (all expected cells >= 5 here), by the textbook formula
        x1, n1 = (~sp.adverse[g_mask]).sum(), g_mask.sum()
        x2, n2 = (~sp.adverse[r_mask]).sum(), r_mask.sum()
        assert gf.air_test == "two_proportion_z"
        pbar = (x1 + x2) / (n1 + n2)
        z = (x1 / n1 - x2 / n2) / math.sqrt(pbar * (1 - pbar) * (1 / n1 + 1 / n2))
        assert gf.air_p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
        # SMD: pooled SD (REGULATORY.md b.3) and its t test = scipy's equal-variance t test
        a, b = sp.risk[g_mask], sp.risk[r_mask]
        pooled = math.sqrt(
            ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
        )
        assert gf.smd == pytest.approx((a.mean() - b.mean()) / pooled, abs=1e-9)
        assert gf.smd_p_value == pytest.approx(stats.ttest_ind(a, b, equal_var=True).pvalue, rel=1e-6)
        # calibration by group
        assert gf.calibration.observed_rate == pytest.approx(sp.y[g_mask].mean(), abs=EXACT)
        assert gf.calibration.mean_predicted == pytest.approx(sp.prob[g_mask].mean(), abs=1e-12)
        # shortfall: smallest k with (x1 + k) / n1 >= air_min * x2 / n2
        need = air_min * (x2 / n2) * n1 - x1
        k = max(0, math.ceil(need - 1e-9))
        assert gf.shortfall == k
        assert (x1 + k) / n1 >= air_min * x2 / n2 - 1e-12
        assert k == 0 or (x1 + k - 1) / n1 < air_min * x2 / n2
        # FPR gap test among non-events
        ne_g, ne_r = g_mask & (sp.y == 0), r_mask & (sp.y == 0)
        table = [
            [sp.adverse[ne_g].sum(), (~sp.adverse[ne_g]).sum()],
            [sp.adverse[ne_r].sum(), (~sp.adverse[ne_r]).sum()],
        ]
        if gf.false_positive_rate_test == "fisher_exact":
            expected = stats.fisher_exact(table).pvalue
        else:
            expected = stats.chi2_contingency(table, correction=False).pvalue  # = two-proportion z, squared
        assert gf.false_positive_rate_p_value == pytest.approx(expected, rel=1e-6)
        checked += 1
    assert checked >= 2


def test_fisher_exact_used_for_small_cells():
    rng = np.random.default_rng(1)
    n = 200
    groups = np.array([0] * 160 + [1] * 40)
    adverse = np.zeros(n, dtype=bool)
    adverse[:2] = True  # 2 adverse in the reference, 3 in the small group: expected adverse cells < 5
    adverse[160:163] = True
    y = rng.integers(0, 2, n)
    m = np.eye(2)[groups]
    res = fairness.group_fairness(
        y, adverse, rng.random(n), m, ["ref", "g"], reference="ref", n_boot=0, rng=rng
    )
    g = res["g"]
    assert g.air_test == "fisher_exact"
    table = [[37, 3], [158, 2]]
    assert g.air_p_value == pytest.approx(stats.fisher_exact(table).pvalue, rel=1e-12)


def test_bh_q_values_match_scipy(taiwan_out):
    sec = taiwan_out.section
    ps, qs = [], []
    blocks = [*sec.attributes.values(), sec.intersections]
    for b in blocks:
        for gf in b.groups.values():
            for m in ("air", "smd", "false_positive_rate", "false_negative_rate"):
                p = getattr(gf, f"{m}_p_value")
                if p is not None:
                    ps.append(p)
                    qs.append(getattr(gf, f"{m}_q_value"))
    assert len(ps) == sec.tests > 20
    np.testing.assert_allclose(qs, stats.false_discovery_control(ps, method="bh"), rtol=1e-12)


def test_cis_agree_with_analytic_intervals(taiwan_out, taiwan_ctx):
    """Bootstrap CI half-widths vs Katz log-ratio (AIR), Wald (rates), Hedges–Olkin (SMD),
    Hanley–McNeil (AUC); each CI also contains its point estimate."""
    sec = taiwan_out.section
    sp = taiwan_ctx.dev
    block = sec.attributes["sex"]
    lab = _labels(sp, "sex").to_numpy()
    g, ref = "female", block.reference
    gf = block.groups[g]
    gm, rm = lab == g, lab == ref

    def half(ci):
        return (ci[1] - ci[0]) / 2

    for ci, val in (
        (gf.air_ci, gf.air),
        (gf.smd_ci, gf.smd),
        (gf.auc_ci, gf.auc),
        (gf.adverse_rate_ci, gf.adverse_rate),
    ):
        assert ci[0] <= val <= ci[1]
    # AIR: Katz: se(log RR) = sqrt((1-p1)/x1 + (1-p2)/x2); 95% CI half-width in log space
    x1, n1 = (~sp.adverse[gm]).sum(), gm.sum()
    x2, n2 = (~sp.adverse[rm]).sum(), rm.sum()
    se = math.sqrt((1 - x1 / n1) / x1 + (1 - x2 / n2) / x2)
    lo, hi = math.exp(math.log(gf.air) - 1.96 * se), math.exp(math.log(gf.air) + 1.96 * se)
    assert half(gf.air_ci) == pytest.approx((hi - lo) / 2, rel=MC_REL)
    # adverse rate: Wald
    p = gf.adverse_rate
    assert half(gf.adverse_rate_ci) == pytest.approx(1.96 * math.sqrt(p * (1 - p) / n1), rel=MC_REL)
    # SMD: Hedges & Olkin (1985) se = sqrt((n1+n2)/(n1 n2) + d^2 / (2 (n1+n2)))
    d = gf.smd
    se_d = math.sqrt((n1 + n2) / (n1 * n2) + d * d / (2 * (n1 + n2)))
    assert half(gf.smd_ci) == pytest.approx(1.96 * se_d, rel=MC_REL)
    # AUC: DeLong et al. (1988) structural components, midranks for ties
    s_g, y_g = sp.risk[gm], sp.y[gm]
    pos, neg = s_g[y_g == 1], s_g[y_g == 0]
    r_all = stats.rankdata(np.r_[pos, neg])
    v10 = (r_all[: pos.size] - stats.rankdata(pos)) / neg.size
    v01 = 1 - (r_all[pos.size :] - stats.rankdata(neg)) / pos.size
    assert v10.mean() == pytest.approx(gf.auc, abs=EXACT)
    se_a = math.sqrt(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)
    assert half(gf.auc_ci) == pytest.approx(1.96 * se_a, rel=MC_REL)


def test_weights_equal_duplicated_rows():
    rng = np.random.default_rng(7)
    n = 600
    codes = rng.integers(0, 3, n)
    y = rng.integers(0, 2, n)
    risk = rng.normal(size=n) + 0.4 * y + 0.2 * codes
    adverse = risk > 0.3
    prob = 1 / (1 + np.exp(-risk))
    w = rng.integers(1, 4, n).astype(float)
    groups = ["a", "b", "c"]
    m = np.eye(3)[codes]
    kw = dict(reference="a", n_boot=0, min_group_size=1)
    weighted = fairness.group_fairness(y, adverse, risk, m, groups, prob=prob, sample_weight=w, rng=rng, **kw)
    rep = np.repeat(np.arange(n), w.astype(int))
    dup = fairness.group_fairness(
        y[rep], adverse[rep], risk[rep], m[rep], groups, prob=prob[rep], rng=rng, **kw
    )
    fields = [
        "weighted_n",
        "favorable_rate",
        "adverse_rate",
        "air",
        "air_p_value",
        "shortfall",
        "smd",
        "smd_p_value",
        "true_positive_rate",
        "false_positive_rate",
        "false_negative_rate",
        "precision",
        "auc",
        "false_positive_rate_p_value",
        "false_negative_rate_p_value",
    ]
    for g in groups:
        for f in fields:
            a, b = getattr(weighted[g], f), getattr(dup[g], f)
            assert (a is None and b is None) or a == pytest.approx(b, rel=1e-9, abs=1e-12), (g, f)
        for f in ("observed_rate", "mean_predicted"):
            assert getattr(weighted[g].calibration, f) == pytest.approx(
                getattr(dup[g].calibration, f), rel=1e-12
            )
    # and the weighted AUC is sklearn's weighted AUC
    sel = codes == 1
    assert weighted["b"].auc == pytest.approx(
        roc_auc_score(y[sel], risk[sel], sample_weight=w[sel]), abs=EXACT
    )


def test_probability_membership_weights_rates():
    """BISG-style membership: AR_g = Σ p_ig·adverse_i / Σ p_ig (CFPB 2014; REGULATORY.md b.4)."""
    rng = np.random.default_rng(3)
    n = 500
    m = rng.dirichlet([1, 1, 1], size=n)
    y = rng.integers(0, 2, n)
    risk = rng.normal(size=n)
    adverse = risk > 0
    res = fairness.group_fairness(
        y, adverse, risk, m, ["w", "b", "h"], reference="w", n_boot=200, rng=rng, min_group_size=1
    )
    ar = (m * adverse[:, None]).sum(0) / m.sum(0)
    fpr = (m * (adverse & (y == 0))[:, None]).sum(0) / (m * (y == 0)[:, None]).sum(0)
    for i, g in enumerate(["w", "b", "h"]):
        assert res[g].adverse_rate == pytest.approx(ar[i], abs=EXACT)
        assert res[g].false_positive_rate == pytest.approx(fpr[i], abs=EXACT)
        assert res[g].n == pytest.approx(m[:, i].sum(), abs=1e-9)
        assert res[g].auc == pytest.approx(roc_auc_score(y, risk, sample_weight=m[:, i]), abs=EXACT)
    assert res["b"].air == pytest.approx((1 - ar[1]) / (1 - ar[0]), abs=EXACT)


def test_zero_denominators_give_null_with_reason():
    rng = np.random.default_rng(5)
    n = 120
    codes = np.repeat([0, 1], 60)
    y = np.where(codes == 1, 0, rng.integers(0, 2, n))  # group "g" has no events
    risk = rng.normal(size=n)
    adverse = np.where(codes == 1, False, risk > 0)  # and no adverse decisions
    res = fairness.group_fairness(
        y, adverse, risk, np.eye(2)[codes], ["ref", "g"], reference="ref", n_boot=100, rng=rng
    )
    g = res["g"]
    for k in ("true_positive_rate", "false_negative_rate", "precision", "auc"):
        assert getattr(g, k) is None
        assert "denominator 0" in g.undefined[k] or "both events" in g.undefined[k]
    assert g.false_positive_rate == 0.0 and g.adverse_rate == 0.0
    assert g.differences["precision"] is None and "differences.precision" in g.undefined
    # reference with no favorable decisions: AIR undefined, not a crash
    adverse2 = np.where(codes == 0, True, risk > 0)
    res2 = fairness.group_fairness(
        y, adverse2, risk, np.eye(2)[codes], ["ref", "g"], reference="ref", n_boot=50, rng=rng
    )
    assert res2["g"].air is None and "no favorable decisions" in res2["g"].undefined["air"]
    assert (
        res2["g"].ratios["favorable_rate"] is None
        and "reference favorable_rate is 0" in (res2["g"].undefined["ratios.favorable_rate"])
    )


def test_small_cells_suppressed_but_n_reported():
    rng = np.random.default_rng(11)
    n = 300
    codes = np.r_[np.zeros(280, int), np.ones(20, int)]
    y = rng.integers(0, 2, n)
    risk = rng.normal(size=n)
    res = fairness.group_fairness(
        y,
        risk > 0,
        risk,
        np.eye(2)[codes],
        ["big", "tiny"],
        reference="big",
        n_boot=50,
        rng=rng,
        min_group_size=30,
    )
    t = res["tiny"]
    assert t.suppressed and t.n == 20
    assert t.air is None and t.adverse_rate is None and t.smd is None and t.air_p_value is None
    assert "20 is below policy.min_group_size = 30" in t.suppressed_reason
    assert not res["big"].suppressed
    summary = fairness.summarise(res)
    assert summary.groups_compared == ["big"] and summary.demographic_parity_ratio is None


def test_reference_not_in_groups_is_an_error_naming_it():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"reference group 'x' is not one of the groups \['a', 'b'\]"):
        fairness.group_fairness(
            np.array([0, 1]),
            np.array([True, False]),
            np.array([0.1, 0.2]),
            np.eye(2),
            ["a", "b"],
            reference="x",
            rng=rng,
        )


def test_findings_high_only_when_significant(german_out, german_ctx):
    policy = german_ctx.spec.policy
    sec = german_out.section
    air_findings = [f for f in german_out.findings if f.metric == "air"]
    expected = 0
    for attr, b in [*sec.attributes.items(), ("intersection", sec.intersections)]:
        for g, gf in b.groups.items():
            if g == b.reference or gf.suppressed or gf.air is None or gf.air >= policy.air_min:
                continue
            expected += 1
            label = g if attr == "intersection" else f"{attr}={g}"
            f = next(f for f in air_findings if f"({label})" in f.title)
            sig = gf.air_q_value is not None and gf.air_q_value < policy.significance
            assert f.severity == ("high" if sig else "medium")
            assert ("NOT statistically significant" in f.detail) != sig
            assert f.threshold == policy.air_min and f.threshold_source == "policy"  # air_min set in the spec
            assert "not a federal ECOA violation" in f.detail
    assert len(air_findings) == expected
    for f in german_out.findings:
        assert f.section == "fairness"
        if f.threshold is not None:
            assert f.threshold_source in ("default", "policy")


def test_section_is_complete_json(german_out, taiwan_out):
    for out in (german_out, taiwan_out):
        d = out.section.model_dump(mode="json")
        required = {
            "n",
            "favorable_rate",
            "adverse_rate",
            "air",
            "air_ci",
            "air_p_value",
            "shortfall",
            "smd",
            "true_positive_rate",
            "false_positive_rate",
            "false_negative_rate",
            "precision",
            "auc",
        }
        for block in [*d["attributes"].values(), d["intersections"]]:
            assert block["reference"] in block["groups"]
            for gf in block["groups"].values():
                assert required <= set(gf)
                if not gf["suppressed"]:
                    assert gf["adverse_rate"] is not None
                    if not block["groups"][block["reference"]]["suppressed"]:
                        assert gf["air"] is not None and gf["air_ci"] is not None
        assert d["n_bootstrap"] == 1000 and d["thresholds"]["air_min"]["source"] in ("default", "policy")


def test_seeded_and_deterministic(german_ctx):
    a = fairness.run(german_ctx).section.model_dump()
    b = fairness.run(german_ctx).section.model_dump()
    assert a == b


# --------------------------------------------------------------------------- properties (hypothesis)

_POINT_FIELDS = (
    "n",
    "weighted_n",
    "events",
    "suppressed",
    "favorable_rate",
    "adverse_rate",
    "air",
    "air_p_value",
    "air_test",
    "shortfall",
    "shortfall_parity",
    "smd",
    "smd_p_value",
    "true_positive_rate",
    "false_positive_rate",
    "false_positive_rate_p_value",
    "false_negative_rate",
    "false_negative_rate_p_value",
    "precision",
    "auc",
)


def _same(a, b, fields=_POINT_FIELDS, ci=False):
    """Field-by-field equality up to floating-point summation order (rel 1e-9)."""
    for f in fields + (("air_ci", "smd_ci", "auc_ci", "adverse_rate_ci") if ci else ()):
        x, y = getattr(a, f), getattr(b, f)
        if isinstance(x, list | tuple):
            assert y is not None and x == pytest.approx(y, rel=1e-9, abs=1e-12), f
        elif isinstance(x, float) and isinstance(y, float):
            assert x == pytest.approx(y, rel=1e-9, abs=1e-12), f
        else:
            assert x == y, f
    assert a.differences.keys() == b.differences.keys() and a.undefined == b.undefined


@st.composite
def _data(draw):
    n = draw(st.integers(40, 240))
    k = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    weighted = draw(st.booleans())
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, k, n)
    codes[:k] = np.arange(k)  # every group present
    y = rng.integers(0, 2, n)
    # coarse scores so that ties occur (exercises the tie handling of the AUC and the bins)
    risk = np.round(rng.normal(size=n) + 0.5 * y + 0.2 * codes, 1)
    adverse = risk >= 0.3
    w = rng.integers(1, 4, n).astype(float) if weighted else None
    return codes, k, y, risk, adverse, w


def _run(codes, k, y, risk, adverse, w, *, names=None, n_boot=0, seed=0):
    names = names or [f"g{i}" for i in range(k)]
    return fairness.group_fairness(
        y,
        adverse,
        risk,
        np.eye(k)[codes],
        names,
        reference=names[0],
        sample_weight=w,
        prob=1 / (1 + np.exp(-risk)),
        min_group_size=5,
        n_boot=n_boot,
        rng=np.random.default_rng(seed),
    )


@settings(max_examples=40, deadline=None)
@given(_data(), st.integers(0, 2**32 - 1))
def test_property_row_order_invariance(data, perm_seed):
    """Permuting rows changes nothing, CIs included (the bootstrap resamples order-free count tables)."""
    codes, k, y, risk, adverse, w = data
    p = np.random.default_rng(perm_seed).permutation(len(y))
    a = _run(codes, k, y, risk, adverse, w, n_boot=60)
    b = _run(codes[p], k, y[p], risk[p], adverse[p], None if w is None else w[p], n_boot=60)
    for g in a:
        _same(a[g], b[g], ci=not a[g].suppressed)


@settings(max_examples=40, deadline=None)
@given(_data(), st.randoms(use_true_random=False))
def test_property_group_relabelling_invariance(data, rnd):
    """Renaming groups and reordering the non-reference columns gives the same per-group numbers."""
    codes, k, y, risk, adverse, w = data
    a = _run(codes, k, y, risk, adverse, w)
    others = list(range(1, k))
    rnd.shuffle(others)
    new_order = [0, *others]  # new column j holds old group new_order[j]
    inv = np.argsort(new_order)
    names = [f"label-{rnd.randint(0, 10**6)}-{j}" for j in range(k)]
    b = _run(inv[codes], k, y, risk, adverse, w, names=names)
    for j, old in enumerate(new_order):
        _same(a[f"g{old}"], b[names[j]])


@settings(max_examples=40, deadline=None)
@given(_data())
def test_property_reference_air_is_one(data):
    codes, k, y, risk, adverse, w = data
    res = _run(codes, k, y, risk, adverse, w, n_boot=30)
    ref = res["g0"]
    if ref.suppressed or ref.favorable_rate == 0:
        assert ref.air is None
        return
    assert ref.air == 1.0 and ref.air_ci == [1.0, 1.0] and ref.shortfall == 0
    assert ref.smd == 0.0 and ref.air_p_value is None
    for gf in res.values():
        if not gf.suppressed and gf.air is not None:
            assert gf.air == pytest.approx(gf.favorable_rate / ref.favorable_rate, rel=1e-12)


def _spec_for(tmp: Path, frame: pd.DataFrame, **over):
    frame.to_csv(tmp / "data.csv", index=False)
    spec = {
        "model_name": "prop",
        "dataset": "data.csv",
        "target": "y",
        "event_value": 1,
        "score": {"column": "score", "direction": "higher_is_riskier", "threshold": 0.5},
        "protected": [
            {"name": "grp", "column": "grp", "reference": "a"},
            {"name": "band", "column": "band", "reference": "x"},
        ],
        "bootstrap": 50,
        "policy": {"min_group_size": 5},
        **over,
    }
    return parse_spec(spec, source=str(tmp / "spec.json"), base_dir=tmp)


def _frame(seed: int, n: int = 160) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    return pd.DataFrame(
        {
            "y": y,
            "score": np.round(1 / (1 + np.exp(-(rng.normal(size=n) + y - 0.3))), 3),
            "grp": rng.choice(["a", "b", "c"], n),
            "band": rng.choice(["x", "y"], n),
            "w": rng.integers(1, 4, n),
        }
    )


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.sampled_from([("bad", "good"), ("Y", "N"), ("1", "0")]))
def test_property_string_target_same_as_numeric(seed, labels):
    """A target written as text (event_value a string) gives exactly the numeric target's section."""
    frame = _frame(seed)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "n").mkdir()
        (tmp / "s").mkdir()
        num = fairness.run(prepare(_spec_for(tmp / "n", frame)).context).section.model_dump()
        text = frame.assign(y=np.where(frame["y"] == 1, labels[0], labels[1]))
        if labels[0] == "1":  # numeric-looking text: force the column to be read as text
            over = {"event_value": "1", "dtypes": {"y": "string"}}
        else:
            over = {"event_value": labels[0]}
        txt = fairness.run(prepare(_spec_for(tmp / "s", text, **over)).context).section.model_dump()
    assert num == txt


def test_weight_column_through_the_spec_equals_duplicated_rows(tmp_path):
    """``weight_column`` reaches every fairness statistic: weighted run = the rows repeated w times."""
    frame = _frame(3, n=300)
    (tmp_path / "w").mkdir()
    (tmp_path / "d").mkdir()
    w_ctx = prepare(_spec_for(tmp_path / "w", frame, weight_column="w", bootstrap=0)).context
    dup = frame.loc[frame.index.repeat(frame["w"])].drop(columns="w").reset_index(drop=True)
    d_ctx = prepare(_spec_for(tmp_path / "d", dup, bootstrap=0)).context
    a, b = fairness.run(w_ctx).section, fairness.run(d_ctx).section
    fields = tuple(f for f in _POINT_FIELDS if f != "n")
    for blk_a, blk_b in [
        *zip(a.attributes.values(), b.attributes.values(), strict=True),
        (a.intersections, b.intersections),
    ]:
        assert blk_a.groups.keys() == blk_b.groups.keys()
        for g in blk_a.groups:
            ga, gb = blk_a.groups[g], blk_b.groups[g]
            assert ga.weighted_n == gb.n  # rows vs weights
            _same(ga, gb, fields=tuple(f for f in fields if f != "weighted_n"))


def test_air_below_threshold_but_not_significant_is_medium(tmp_path):
    """AIR 0.75 on 40 vs 35 applicants: Pearson p = 0.058 (scipy), so q >= p: medium, text says so."""
    fav_a, fav_b = [0.2] * 32 + [0.9] * 8, [0.2] * 21 + [0.9] * 14  # score >= 0.5 is adverse
    frame = pd.DataFrame(
        {
            "y": ([0, 1] * 40)[:75],
            "score": fav_a + fav_b,
            "grp": ["a"] * 40 + ["b"] * 35,
        }
    )
    spec = parse_spec(
        {
            "model_name": "small",
            "dataset": "d.csv",
            "target": "y",
            "score": {"column": "score", "threshold": 0.5},
            "protected": [{"name": "grp", "column": "grp", "reference": "a"}],
            "bootstrap": 200,
        },
        source=str(tmp_path / "spec.json"),
        base_dir=tmp_path,
    )
    frame.to_csv(tmp_path / "d.csv", index=False)
    out = fairness.run(prepare(spec).context)
    gf = out.section.attributes["grp"].groups["b"]
    p = stats.chi2_contingency([[32, 8], [21, 14]], correction=False).pvalue
    assert p > 0.05 and gf.air_p_value == pytest.approx(p, rel=1e-9)
    assert gf.air == pytest.approx((21 / 35) / (32 / 40), abs=EXACT) and gf.air_q_value >= gf.air_p_value
    f = next(f for f in out.findings if f.metric == "air")
    assert f.severity == "medium" and "NOT statistically significant" in f.detail
    assert f.threshold == 0.8 and f.threshold_source == "default"  # air_min not set in this spec
    # shortfall: 0.8 * 32/40 * 35 = 22.4 favorable needed, 21 observed -> 2 more
    assert gf.shortfall == 2


def test_smd_and_error_gap_findings_follow_thresholds_and_q(taiwan_out, taiwan_ctx):
    """One finding per breach of smd_max / error_rate_gap_max: medium when BH q < significance, else low."""
    policy = taiwan_ctx.spec.policy
    sec = taiwan_out.section
    by_key = {(f.metric, f.title.rsplit("(", 1)[-1].rstrip(")")): f for f in taiwan_out.findings}
    expected = 0
    severities = set()
    for attr, b in [*sec.attributes.items(), ("intersection", sec.intersections)]:
        for g, gf in b.groups.items():
            if g == b.reference or gf.suppressed:
                continue
            label = g if attr == "intersection" else f"{attr}={g}"
            checks = [("smd", gf.smd, gf.smd_q_value, policy.smd_max)]
            for m in ("false_positive_rate", "false_negative_rate"):
                ref_rate = getattr(b.groups[b.reference], m)
                d = None if getattr(gf, m) is None or ref_rate is None else getattr(gf, m) - ref_rate
                checks.append((f"{m}_difference", d, getattr(gf, f"{m}_q_value"), policy.error_rate_gap_max))
            for metric, value, q, limit in checks:
                f = by_key.get((metric, label))
                if value is None or abs(value) <= limit:
                    assert f is None, (metric, label)
                    continue
                expected += 1
                assert f is not None and f.value == pytest.approx(value, abs=1e-12), (metric, label)
                sev = "medium" if q is not None and q < policy.significance else "low"
                assert f.severity == sev and f.threshold == limit and f.threshold_source == "default"
                severities.add(sev)
    assert expected >= 5 and severities == {"medium", "low"}  # both branches exercised on Taiwan
    gap_metrics = {"smd", "false_positive_rate_difference", "false_negative_rate_difference"}
    assert sum(f.metric in gap_metrics for f in taiwan_out.findings) == expected


def test_intersection_of_estimated_attribute_uses_membership_products():
    """With a BISG-style attribute the intersection weights are products of memberships."""
    rng = np.random.default_rng(9)
    n = 400
    sex_codes = rng.integers(0, 2, n)
    race_p = rng.dirichlet([2, 1, 1], size=n)
    sex = ProtectedGroups("sex", "sex", "m", ["m", "f"], sex_codes, np.eye(2)[sex_codes])
    race = ProtectedGroups(
        "race", None, "white", ["white", "black", "hispanic"], race_p.argmax(1), race_p, True, "BISG"
    )
    labels, mem, ref, codes = fairness.intersect([sex, race])
    assert codes is None and ref == "sex=m|race=white" and labels[0] == ref
    assert len(labels) == 6
    i = labels.index("sex=f|race=black")
    np.testing.assert_allclose(mem[:, i], (sex_codes == 1) * race_p[:, 1], atol=0)
    np.testing.assert_allclose(mem.sum(axis=1), 1.0, atol=1e-12)
    # observed attributes: hard codes, identical cells to the membership product
    labels2, mem2, _, codes2 = fairness.intersect([sex, sex])
    assert mem2 is None and set(labels2) == {"sex=m|sex=m", "sex=f|sex=f"}
    assert (np.array(labels2)[codes2] == np.where(sex_codes == 0, "sex=m|sex=m", "sex=f|sex=f")).all()


# --------------------------------------------------------------------------- bad inputs

BAD_POLICY = [
    ("air_min", 1.5, "Input should be less than or equal to 1"),
    ("air_min", 0, "Input should be greater than 0"),
    ("smd_max", -0.2, "Input should be greater than 0"),
    ("min_group_size", 0, "Input should be greater than or equal to 1"),
    ("significance", 1.0, "Input should be less than 1"),
    ("error_rate_gap_max", 0, "Input should be greater than 0"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_POLICY)
def test_bad_fairness_policy_is_an_input_error_naming_the_key(key, value, message):
    spec = {
        "model_name": "x",
        "dataset": "d.csv",
        "target": "y",
        "score": {"column": "s"},
        "policy": {key: value},
    }
    with pytest.raises(InputError, match=rf"spec\.yaml: field 'policy\.{key}': {message} \(got {value!r}\)"):
        parse_spec(spec, source="spec.yaml")


def test_bad_fairness_policy_exits_2_from_the_cli(tmp_path):
    spec = yaml.safe_load(GERMAN_SPEC.read_text())
    spec["dataset"] = str(GERMAN_SPEC.parent / spec["dataset"])
    spec["model"] = str(GERMAN_SPEC.parent / spec["model"])
    spec["reason_codes"] = str(GERMAN_SPEC.parent / spec["reason_codes"])
    spec["policy"]["air_min"] = 4 / 5 * 100  # a percentage where a fraction is expected
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(spec))
    res = run_cli("audit", str(path), "--out", str(tmp_path / "out"), "-q")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert (
        "policy.air_min" in res.stderr and "less than or equal to 1" in res.stderr and str(path) in res.stderr
    )
    assert not (tmp_path / "out" / "audit.json").exists()


def test_out_of_time_split_gets_its_own_fairness_block(tmp_path):
    """With ``oot_dataset`` the OOT sample is audited too (splits.oot), matching a dev-only run on it."""
    dev, oot = _frame(21, n=200), _frame(22, n=180)
    oot.to_csv(tmp_path / "oot.csv", index=False)
    (tmp_path / "solo").mkdir()
    both = fairness.run(prepare(_spec_for(tmp_path, dev, oot_dataset="oot.csv")).context).section
    solo = fairness.run(prepare(_spec_for(tmp_path / "solo", oot)).context).section
    assert set(both.splits) == {"oot"} and both.splits["oot"].n == 180
    # the OOT block's point estimates and its own BH q-values equal a stand-alone audit of the OOT file
    for name, blk in both.splits["oot"].attributes.items():
        for g, gf in blk.groups.items():
            _same(gf, solo.attributes[name].groups[g], fields=(*_POINT_FIELDS, "air_q_value", "smd_q_value"))
    assert both.splits["oot"].tests == solo.tests
