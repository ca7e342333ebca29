"""Temporal section: periods, regimes, change points, out-of-time, vintage, stress, bad inputs.

Every number is checked against an independent computation: scikit-learn / scipy on the same slices,
pandas group-bys on the fixture file, or the model loaded directly with skops.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from sklearn.metrics import roc_auc_score

from service.audits import temporal
from service.audits._temporal_changepoints import binary_segmentation
from service.audits._temporal_stress import apply_shocks
from service.config import RegimeSpec, StressSpec, load_spec, parse_spec
from service.errors import InputError
from service.inputs.prepare import prepare
from tests.conftest import FIXTURES, run_cli

SBA = FIXTURES / "sba"


# --------------------------------------------------------------------------- helpers


def synthetic(tmp_path: Path, *, n_per_q: int = 120, quarters: int = 12, seed: int = 7, **spec_extra) -> Path:
    """A score-column dataset with a date, a protected attribute and a planted event-rate break."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(quarters):
        start = pd.Timestamp("2015-01-01") + pd.DateOffset(months=3 * q)
        days = rng.integers(0, 89, n_per_q)
        rate = 0.08 if q < quarters // 2 else 0.30
        y = rng.random(n_per_q) < rate
        score = np.clip(rate + 0.25 * (y - rate) + rng.normal(0, 0.12, n_per_q), 0.001, 0.999)
        grp = np.where(rng.random(n_per_q) < 0.4, "b", "a")
        for i in range(n_per_q):
            rows.append(
                {
                    "when": (start + pd.Timedelta(days=int(days[i]))).date().isoformat(),
                    "y": int(y[i]),
                    "p": float(score[i]),
                    "grp": grp[i],
                    "x": float(rng.normal()),
                }
            )
    pd.DataFrame(rows).to_csv(tmp_path / "data.csv", index=False)
    spec = {
        "model_name": "synthetic",
        "dataset": "data.csv",
        "target": "y",
        "score": {"column": "p", "threshold": 0.2},
        "protected": [{"name": "grp", "column": "grp", "reference": "a"}],
        "date_column": "when",
        "temporal": {"period": "quarter"},
        "bootstrap": 100,
        **spec_extra,
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_section(spec_path: Path, **prep):
    ctx = prepare(load_spec(spec_path), **prep).context
    out = temporal.run(ctx)
    return ctx, out.section, out.findings


@pytest.fixture(scope="module")
def sba():
    """The SBA fixture run once: (context, section, findings, frame read directly with pandas)."""
    ctx = prepare(load_spec(SBA / "audit.yaml")).context
    out = temporal.run(ctx)
    df = pd.read_csv(SBA / "sba_loans.csv")
    df["date"] = pd.to_datetime(df["approval_date"])
    import skops.io as sio

    model = sio.load(SBA / "model.skops", trusted=sio.get_untrusted_types(file=str(SBA / "model.skops")))
    df["p"] = model.predict_proba(df[list(model.feature_names_in_)])[:, 1]
    return ctx, out.section, out.findings, df


# --------------------------------------------------------------------------- SBA: the crisis


def test_sba_periods_match_direct_computation(sba):
    _, sec, _, df = sba
    assert sec.period == "year"
    by_year = {p.period: p for p in sec.periods}
    direct = df.groupby(df["date"].dt.year)
    assert sorted(by_year) == [str(y) for y in sorted(direct.groups)]
    for year, g in direct:
        row = by_year[str(year)]
        assert row.n == len(g)
        assert row.events == g["Default"].sum()
        if len(g) < 30:
            assert row.too_small and row.event_rate is None and row.auc is None
            assert any("too small" in note for note in row.notes)
            continue
        assert row.event_rate == pytest.approx(g["Default"].mean(), abs=1e-12)
        assert row.mean_predicted == pytest.approx(g["p"].mean(), rel=1e-9)
        if g["Default"].sum() >= 5 and (1 - g["Default"]).sum() >= 5:
            assert row.auc == pytest.approx(roc_auc_score(g["Default"], g["p"]), abs=1e-12)
            assert row.gini == pytest.approx(2 * roc_auc_score(g["Default"], g["p"]) - 1, abs=1e-12)
            ks = stats.ks_2samp(g.loc[g.Default == 1, "p"], g.loc[g.Default == 0, "p"]).statistic
            assert row.ks == pytest.approx(ks, abs=1e-12)
            assert row.auc_ci[0] <= row.auc <= row.auc_ci[1]
        else:
            assert row.auc is None
        d, n, pd_ = g["Default"].sum(), len(g), g["p"].mean()
        assert row.jeffreys_p == pytest.approx(stats.beta.cdf(pd_, d + 0.5, n - d + 0.5), rel=1e-9)


def test_sba_crisis_years_stand_out(sba):
    _, sec, findings, df = sba
    rate = df.groupby(df["date"].dt.year)["Default"].mean()
    by_year = {p.period: p for p in sec.periods}
    for y in (2006, 2007):
        assert by_year[str(y)].event_rate == pytest.approx(rate[y])
        assert rate[y] > 0.5  # the published jump (~5% -> ~60%)
        # calibration-in-the-large breaks: the pre-2004 model predicts far fewer defaults
        assert by_year[str(y)].calibration_ratio > 2.0
        assert by_year[str(y)].jeffreys_p < 1e-10
    # change point: the event rate steps up in the mid-2000s
    breaks = sec.change_points.breaks
    assert breaks, "binary segmentation should find the crisis step"
    up = breaks[0]
    assert up.previous_period in {"2003", "2004", "2005"} and up.after_rate > 3 * up.before_rate


def test_sba_out_of_time_flags_crisis(sba):
    ctx, sec, findings, df = sba
    oot = sec.out_of_time
    early = df[df["date"] <= "2003-12-31"]
    late = df[df["date"] > "2003-12-31"]
    assert oot.dev.n == len(early) and oot.oot.n == len(late)
    assert oot.dev.event_rate == pytest.approx(early["Default"].mean())
    assert oot.oot.event_rate == pytest.approx(late["Default"].mean())
    assert oot.dev.auc == pytest.approx(roc_auc_score(early["Default"], early["p"]), abs=1e-12)
    assert oot.oot.auc == pytest.approx(roc_auc_score(late["Default"], late["p"]), abs=1e-12)
    d = oot.differences["event_rate"]
    assert d.difference == pytest.approx(late["Default"].mean() - early["Default"].mean())
    assert d.ci[0] > 0  # the out-of-time rate is clearly higher
    z = stats.norm.sf  # independent two-proportion z test
    x1, n1, x2, n2 = late["Default"].sum(), len(late), early["Default"].sum(), len(early)
    pp = (x1 + x2) / (n1 + n2)
    zstat = (x1 / n1 - x2 / n2) / np.sqrt(pp * (1 - pp) * (1 / n1 + 1 / n2))
    assert d.p_value == pytest.approx(2 * z(abs(zstat)), rel=1e-6)
    a = oot.differences["auc"]
    assert a.ci[0] <= a.difference <= a.ci[1]
    titles = {f.title for f in findings}
    assert "Calibration breaks out of time" in titles
    assert "AUC falls out of time" in titles  # dev AUC 0.95 -> ~0.86, beyond auc_drop_max 0.05


def test_sba_regime_great_recession(sba):
    _, sec, findings, df = sba
    reg = sec.regimes
    assert reg.source.startswith("default: NBER")
    assert "nber-2007-09" in reg.windows_in_data and "nber-2020" in reg.windows_outside_data
    gr = next(r for r in reg.regimes if r.name == "nber-2007-09")
    inside = (df["date"] >= "2007-12-01") & (df["date"] <= "2009-06-30")
    nber = np.zeros(len(df), dtype=bool)
    for _, a, b in temporal.NBER_RECESSIONS:
        nber |= ((df["date"] >= a) & (df["date"] <= b)).to_numpy()
    assert gr.n == inside.sum()
    assert gr.event_rate == pytest.approx(df.loc[inside, "Default"].mean())
    assert reg.outside.n == (~nber).sum()
    assert reg.outside.event_rate == pytest.approx(df.loc[~nber, "Default"].mean())
    diff = gr.vs_outside["event_rate"]
    assert diff.difference > 0.1 and diff.p_value < 0.01
    assert gr.calibration_ratio == pytest.approx(
        df.loc[inside, "Default"].mean() / df.loc[inside, "p"].mean()
    )
    assert any(f.title == "Event rate differs in regime nber-2007-09" for f in findings)


def test_sba_vintage_matches_direct(sba):
    _, sec, _, df = sba
    v = sec.vintage
    c2006 = next(c for c in v.cohorts if c.cohort == "2006")
    g = df[df["date"].dt.year == 2006]
    for m, val in zip(c2006.months_on_book, c2006.cumulative_event_rate, strict=True):
        expect = ((g["Default"] == 1) & (g["months_on_book"] <= m)).sum() / len(g)
        assert val == pytest.approx(expect)
    assert c2006.cumulative_event_rate[-1] == pytest.approx(g["Default"].mean())
    # the crisis cohort runs far above the development expectation curve at 36 months on book
    i36 = c2006.months_on_book.index(36.0)
    assert c2006.cumulative_event_rate[i36] > 3 * v.expected.cumulative_event_rate[i36]


def test_sba_stress_matches_model_rescored_directly(sba):
    ctx, sec, _, df = sba
    dev = df[df["date"] <= "2003-12-31"].reset_index(drop=True)
    import skops.io as sio

    model = sio.load(SBA / "model.skops", trusted=sio.get_untrusted_types(file=str(SBA / "model.skops")))
    x = dev[list(model.feature_names_in_)].copy()
    x["DisbursementGross"] = x["DisbursementGross"] * 0.8
    x["Term"] = x["Term"] - 24
    p = model.predict_proba(x)[:, 1]
    s = next(s for s in sec.stress if s.name == "smaller-loans-shorter-terms")
    assert s.rescored and s.n == len(dev)
    assert s.stressed["adverse_rate"] == pytest.approx((p >= 0.3).mean())
    assert s.stressed["mean_predicted"] == pytest.approx(p.mean(), rel=1e-9)
    assert s.stressed["expected_events"] == pytest.approx(p.sum(), rel=1e-9)
    assert s.base["adverse_rate"] == pytest.approx((dev["p"] >= 0.3).mean())
    assert s.change["adverse_rate"] == pytest.approx((p >= 0.3).mean() - (dev["p"] >= 0.3).mean())
    assert s.flipped_to_adverse == int(((p >= 0.3) & (dev["p"] < 0.3)).sum())


# --------------------------------------------------------------------------- periods, AIR, PSI


def test_synthetic_quarters_auc_air_psi(tmp_path):
    ctx, sec, findings = run_section(synthetic(tmp_path))
    df = pd.read_csv(tmp_path / "data.csv")
    q = pd.PeriodIndex(pd.to_datetime(df["when"]), freq="Q")
    labels = [f"{p.year}-Q{p.quarter}" for p in q]
    df["q"] = labels
    assert [p.period for p in sec.periods] == sorted(set(labels))
    dev_p = df["p"].to_numpy()
    edges = np.unique(np.quantile(dev_p, np.linspace(0, 1, 11)[1:-1]))
    ref = np.bincount(np.searchsorted(edges, dev_p, side="left"), minlength=edges.size + 1) / len(df)
    for row in sec.periods:
        g = df[df["q"] == row.period]
        assert row.auc == pytest.approx(roc_auc_score(g["y"], g["p"]), abs=1e-12)
        assert row.start <= g["when"].min() and g["when"].max() <= row.end
        # AIR: favorable = score < threshold 0.2
        fav = g["p"] < 0.2
        air = fav[g["grp"] == "b"].mean() / fav[g["grp"] == "a"].mean()
        assert row.air["grp"]["b"] == pytest.approx(air)
        # PSI with the SPEC.md §3 convention, computed here with pandas
        act = pd.cut(g["p"], [-np.inf, *edges, np.inf], right=True).value_counts(sort=False).to_numpy() / len(
            g
        )
        a, e = np.maximum(act, 1e-4), np.maximum(ref, 1e-4)
        assert row.psi_vs_dev == pytest.approx(float(((a - e) * np.log(a / e)).sum()))
    # the planted break is between the 6th and 7th quarter
    assert [b.period for b in sec.change_points.breaks] == ["2016-Q3"]
    assert not sec.stress and sec.out_of_time is None and sec.out_of_time_reason


def test_auto_period_choice():
    d = np.array(["2010-01-01", "2010-12-31"], dtype="datetime64[ns]")
    assert temporal.choose_period(d)[0] == "month"
    d = np.array(["2010-01-01", "2011-06-30"], dtype="datetime64[ns]")
    assert temporal.choose_period(d)[0] == "quarter"
    d = np.array(["2010-01-01", "2016-01-01"], dtype="datetime64[ns]")
    assert temporal.choose_period(d)[0] == "year"
    codes, labels, starts, ends = temporal.period_codes(
        np.array(["2008-07-31T23:00", "2008-09-30", "2008-10-01", "NaT"], dtype="datetime64[ns]"),
        period="quarter",
    )
    assert labels == ["2008-Q3", "2008-Q4"] and codes.tolist() == [0, 0, 1, -1]
    assert starts == ["2008-07-01", "2008-10-01"] and ends == ["2008-09-30", "2008-12-31"]
    _, labels, _, _ = temporal.period_codes(
        np.array(["1969-12-31", "2008-02-29"], dtype="datetime64[ns]"), period="month"
    )
    assert labels == ["1969-12", "2008-02"]


def test_period_with_one_row_says_too_small(tmp_path):
    path = synthetic(tmp_path, quarters=4)
    df = pd.read_csv(tmp_path / "data.csv")
    lone = df.iloc[[0]].assign(when="2016-06-15")
    pd.concat([df, lone]).to_csv(tmp_path / "data.csv", index=False)
    _, sec, findings = run_section(path)
    row = next(p for p in sec.periods if p.period == "2016-Q2")
    assert row.n == 1 and row.too_small
    assert row.event_rate is None and row.auc is None and row.psi_vs_dev is None and row.air == {}
    assert "too small: 1 row(s) < min_period_rows = 30" in row.notes[0]
    assert any(f.title == "Periods too small for statistics" and "2016-Q2" in f.detail for f in findings)


# --------------------------------------------------------------------------- regimes


def test_regime_boundaries_are_inclusive_of_both_dates():
    w = [RegimeSpec(name="r", start=dt.date(2008, 1, 1), end=dt.date(2008, 3, 31))]
    d = np.array(
        [
            "2007-12-31T23:59:59",
            "2008-01-01T00:00",
            "2008-03-31T00:00",
            "2008-03-31T23:59:59",
            "2008-04-01T00:00",
            "NaT",
        ],
        dtype="datetime64[ns]",
    )
    assert temporal.regime_index(d, w).tolist() == [-1, 0, 0, 0, -1, -1]
    nber = {r.name: r for r in temporal.default_regimes()}
    assert nber["nber-2007-09"].start == dt.date(2007, 12, 1) and nber["nber-2007-09"].end == dt.date(
        2009, 6, 30
    )
    assert len(nber) == 6


def test_spec_regimes_used_and_compared(tmp_path):
    path = synthetic(tmp_path, regimes=[{"name": "late", "start": "2016-07-01", "end": "2017-12-31"}])
    _, sec, _ = run_section(path)
    df = pd.read_csv(tmp_path / "data.csv")
    inside = (df["when"] >= "2016-07-01") & (df["when"] <= "2017-12-31")
    r = sec.regimes.regimes[0]
    assert sec.regimes.source == "spec (regimes)" and r.n == inside.sum()
    assert r.auc == pytest.approx(roc_auc_score(df.loc[inside, "y"], df.loc[inside, "p"]), abs=1e-12)
    assert sec.regimes.outside.event_rate == pytest.approx(df.loc[~inside, "y"].mean())
    assert r.vs_outside["event_rate"].difference == pytest.approx(
        df.loc[inside, "y"].mean() - df.loc[~inside, "y"].mean()
    )


# --------------------------------------------------------------------------- change points


def test_binary_segmentation_finds_planted_break():
    rng = np.random.default_rng(1)
    n = np.full(40, 400.0)
    p = np.where(np.arange(40) < 23, 0.04, 0.07)
    e = rng.binomial(400, p).astype(float)
    brks = binary_segmentation(e, n)
    assert [b.index for b in brks] == [23]
    assert brks[0].before_rate == pytest.approx(e[:23].sum() / n[:23].sum())
    assert brks[0].after_rate == pytest.approx(e[23:].sum() / n[23:].sum())


def test_binary_segmentation_two_breaks_and_none():
    rng = np.random.default_rng(2)
    n = np.full(30, 1000.0)
    p = np.r_[np.full(10, 0.05), np.full(10, 0.2), np.full(10, 0.08)]
    e = rng.binomial(1000, p).astype(float)
    assert [b.index for b in binary_segmentation(e, n)] == [10, 20]
    flat = rng.binomial(1000, 0.05, size=30).astype(float)
    assert binary_segmentation(flat, n) == []


# --------------------------------------------------------------------------- stress


def test_zero_shock_changes_nothing(german_ctx, german_spec):
    spec = german_spec.model_copy(
        update={
            "stress": [
                StressSpec.model_validate(
                    {
                        "name": "zero",
                        "shocks": {
                            "duration_months": {"add": 0},
                            "credit_amount": {"multiply": 1},
                            "purpose": {"shift_mix": {}},
                        },
                    }
                )
            ]
        }
    )
    ctx = dataclasses.replace(german_ctx, spec=spec, results={})
    sec = temporal.run(ctx).section
    s = sec.stress[0]
    assert s.rescored and s.rows_changed == 0 and s.flipped_to_adverse == 0 and s.flipped_to_favorable == 0
    assert all(v == 0 for v in s.change.values())
    assert s.base == s.stressed
    for groups in s.air.values():
        for g in groups.values():
            assert g.change in (None, 0.0)
    assert sec.periods is None and sec.dates_reason.startswith("no date_column")


def test_stress_air_matches_direct(german_ctx, german_spec):
    import skops.io as sio

    gpath = FIXTURES / "german_credit"
    model = sio.load(gpath / "model.skops", trusted=sio.get_untrusted_types(file=str(gpath / "model.skops")))
    df = pd.read_csv(gpath / "german_credit.csv")
    x = df[list(model.feature_names_in_)].copy()
    base = model.predict_proba(x)[:, 1] >= 0.5
    x["duration_months"] = x["duration_months"] * 1.25
    st = model.predict_proba(x)[:, 1] >= 0.5
    ctx = dataclasses.replace(german_ctx, results={})
    s = next(s for s in temporal.run(ctx).section.stress if s.name == "longer-loans")
    sex = df["sex"].astype(str)
    fav_b, fav_s = ~base, ~st
    air_b = fav_b[sex == "female"].mean() / fav_b[sex == "male"].mean()
    air_s = fav_s[sex == "female"].mean() / fav_s[sex == "male"].mean()
    g = s.air["sex"]["female"]
    assert g.base_air == pytest.approx(air_b) and g.stressed_air == pytest.approx(air_s)
    assert s.stressed["adverse_rate"] == pytest.approx(st.mean())


def test_shift_mix_reaches_target_shares():
    frame = pd.DataFrame({"c": ["a"] * 60 + ["b"] * 30 + ["c"] * 10 + [None] * 5})
    shocks = {
        "c": StressSpec.model_validate({"name": "m", "shocks": {"c": {"shift_mix": {"a": 0.3}}}}).shocks["c"]
    }
    out = apply_shocks(frame, shocks, rng=np.random.default_rng(0))["c"]
    counts = out.value_counts()
    # 100 non-missing rows: a -> 30; the remaining 70 split 3:1 between b and c like today
    assert counts["a"] == 30 and counts["b"] == 52 and counts["c"] == 18
    assert out.isna().sum() == 5 and frame["c"].value_counts()["a"] == 60  # input untouched


def test_set_quantile_and_add():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, np.nan], "k": [1, 2, 3, 4, 5]})
    spec = StressSpec.model_validate({"name": "s", "shocks": {"x": {"set_quantile": 0.5}, "k": {"add": 2}}})
    out = apply_shocks(frame, spec.shocks, rng=np.random.default_rng(0))
    assert out["x"].iloc[:4].tolist() == [2.5] * 4 and np.isnan(out["x"].iloc[4])
    assert out["k"].tolist() == [3, 4, 5, 6, 7]


def test_stress_without_model_is_reported_not_rescored(tmp_path):
    path = synthetic(tmp_path, quarters=4, stress=[{"name": "s", "shocks": {"x": {"add": 1}}}])
    _, sec, _ = run_section(path)
    assert sec.stress[0].rescored is False and "precomputed column" in sec.stress[0].reason


def test_not_applicable_without_dates_oot_or_stress(tmp_path):
    path = synthetic(tmp_path, quarters=2)
    spec = load_spec(path)
    spec.date_column = None
    ctx = prepare(spec).context
    with pytest.raises(temporal.NotApplicable):
        temporal.run(ctx)


# --------------------------------------------------------------------------- bad inputs


def test_bad_stress_column_names_the_key(german_ctx, german_spec):
    spec = german_spec.model_copy(
        update={"stress": [StressSpec.model_validate({"name": "x", "shocks": {"nope": {"add": 1}}})]}
    )
    with pytest.raises(InputError) as err:
        temporal.run(dataclasses.replace(german_ctx, spec=spec, results={}))
    assert err.value.field == "stress[0].shocks.nope"
    spec = german_spec.model_copy(
        update={"stress": [StressSpec.model_validate({"name": "x", "shocks": {"purpose": {"multiply": 2}}})]}
    )
    with pytest.raises(InputError, match="needs a numeric column"):
        temporal.run(dataclasses.replace(german_ctx, spec=spec, results={}))


def test_cli_unparseable_dates_exit_2(tmp_path):
    path = synthetic(tmp_path, quarters=2)
    df = pd.read_csv(tmp_path / "data.csv")
    df.loc[3, "when"] = "not-a-date"
    df.to_csv(tmp_path / "data.csv", index=False)
    r = run_cli("audit", str(path), "--out", str(tmp_path / "out"), "-q")
    assert r.returncode == 2, r.stderr
    assert "when" in r.stderr and "not dates" in r.stderr and "not-a-date" in r.stderr
    assert not (tmp_path / "out" / "audit.json").exists()


def test_cli_future_dates_exit_2(tmp_path):
    path = synthetic(tmp_path, quarters=2)
    df = pd.read_csv(tmp_path / "data.csv")
    df.loc[5, "when"] = "2100-01-01"
    df.to_csv(tmp_path / "data.csv", index=False)
    r = run_cli("audit", str(path), "--out", str(tmp_path / "out"), "-q")
    assert r.returncode == 2, r.stderr
    assert "in the future" in r.stderr and "2100-01-01" in r.stderr and "date_column" in r.stderr
    assert not (tmp_path / "out" / "audit.json").exists()


def test_overlapping_regimes_rejected(tmp_path):
    path = synthetic(
        tmp_path,
        quarters=2,
        regimes=[
            {"name": "a", "start": "2015-01-01", "end": "2015-06-30"},
            {"name": "b", "start": "2015-06-30", "end": "2015-12-31"},
        ],
    )
    r = run_cli("audit", str(path), "--out", str(tmp_path / "out"), "-q")
    assert r.returncode == 2, r.stderr
    assert "regimes 'a' and 'b' overlap" in r.stderr
    with pytest.raises(InputError, match="overlap"):
        parse_spec(yaml.safe_load(path.read_text()))


def test_cli_stress_on_missing_column_exit_2(tmp_path):
    path = synthetic(tmp_path, quarters=2, stress=[{"name": "s", "shocks": {"income": {"multiply": 0.8}}}])
    r = run_cli("audit", str(path), "--out", str(tmp_path / "out"), "-q")
    assert r.returncode == 2, r.stderr
    assert "stress[0].shocks.income" in r.stderr and "not in the data" in r.stderr


def test_oot_after_flag_splits(tmp_path):
    path = synthetic(tmp_path, quarters=8)
    _, sec, findings = run_section(path, oot_after="2016-06-30")
    df = pd.read_csv(tmp_path / "data.csv")
    late = df["when"] > "2016-06-30"
    assert sec.out_of_time.oot.n == late.sum() and sec.out_of_time.dev.n == (~late).sum()
    assert sec.out_of_time.oot.auc == pytest.approx(
        roc_auc_score(df.loc[late, "y"], df.loc[late, "p"]), abs=1e-12
    )
    assert any(f.title == "Event rate shifts out of time" for f in findings)


def test_period_auc_ci_agrees_with_naive_row_bootstrap(sba):
    """The binned count-bootstrap CI vs a plain row bootstrap with scikit-learn on the same slice."""
    _, sec, _, df = sba
    row = next(p for p in sec.periods if p.period == "2006")
    g = df[df["date"].dt.year == 2006]
    y, p = g["Default"].to_numpy(), g["p"].to_numpy()
    rng = np.random.default_rng(123)
    reps = []
    for _ in range(1000):
        i = rng.integers(0, len(g), len(g))
        reps.append(roc_auc_score(y[i], p[i]))
    lo, hi = np.quantile(reps, [0.025, 0.975])
    assert row.auc_ci[0] == pytest.approx(lo, abs=0.02)
    assert row.auc_ci[1] == pytest.approx(hi, abs=0.02)
