"""Representation section: group sizes, shares, event and missing rates, benchmark chi-square, findings.

Independent references: pandas group-bys on the fixture file read directly, scipy.stats.chisquare
for the goodness-of-fit test, and aif360's BinaryLabelDatasetMetric for group sizes and base rates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from service.audits import representation
from service.config import load_spec
from service.inputs.prepare import prepare
from tests.conftest import FIXTURES, GERMAN_SPEC, run_cli

EXACT = 1e-12


def synthetic(tmp_path: Path, *, shares=None, weight=False, policy=None, seed=3) -> Path:
    """Groups a (1200), b (780), c (20); x1 missing 30% in b and 2% elsewhere; a planted small group."""
    rng = np.random.default_rng(seed)
    grp = np.array(["a"] * 1200 + ["b"] * 780 + ["c"] * 20)
    n = grp.size
    x1 = rng.normal(size=n)
    x1[(grp == "b") & (rng.random(n) < 0.30)] = np.nan
    x1[(grp != "b") & (rng.random(n) < 0.02)] = np.nan
    y = (rng.random(n) < np.where(grp == "a", 0.1, 0.25)).astype(int)
    frame = pd.DataFrame(
        {
            "grp": grp,
            "x1": x1,
            "x2": rng.normal(size=n),
            "cat": rng.choice(["u", "v", "w"], size=n),
            "p": np.clip(0.15 + 0.2 * (y - 0.15) + rng.normal(0, 0.1, n), 0.001, 0.999),
            "y": y,
            "w": rng.uniform(0.5, 2.0, size=n),
        }
    )
    frame.to_csv(tmp_path / "data.csv", index=False)
    prot = {"name": "grp", "column": "grp", "reference": "a"}
    if shares:
        prot["population_shares"] = shares
    spec = {
        "model_name": "synthetic",
        "dataset": "data.csv",
        "target": "y",
        "score": {"column": "p", "threshold": 0.3},
        "features": ["x1", "x2", "cat"],
        "protected": [prot],
        "bootstrap": 50,
    }
    if weight:
        spec["weight_column"] = "w"
    if policy:
        spec["policy"] = policy
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run(path: Path):
    ctx = prepare(load_spec(path)).context
    out = representation.run(ctx)
    return out.section, out.findings


# --------------------------------------------------------------------------- German credit vs pandas / scipy


@pytest.fixture(scope="module")
def german():
    ctx = prepare(load_spec(GERMAN_SPEC)).context
    out = representation.run(ctx)
    raw = pd.read_csv(FIXTURES / "german_credit" / "german_credit.csv")
    return out.section, out.findings, raw


def test_german_groups_match_pandas(german):
    sec, _, raw = german
    sex = sec.attributes["sex"]
    tab = raw.groupby("sex")["label_bad"].agg(["size", "mean"])
    for g in ("male", "female"):
        r = sex.groups[g]
        assert r.n == tab.loc[g, "size"]
        assert r.share == pytest.approx(tab.loc[g, "size"] / len(raw), abs=EXACT)
        assert r.event_rate == pytest.approx(tab.loc[g, "mean"], abs=EXACT)
    # bins [18, 26, 76) with labels 18-25 / 26-75
    young = raw["age_years"] < 26
    age = sec.attributes["age"].groups
    assert age["18-25"].n == young.sum() and age["26-75"].n == (~young).sum()
    assert age["18-25"].event_rate == pytest.approx(raw.loc[young, "label_bad"].mean(), abs=EXACT)
    assert sec.n == len(raw) == 1000


def test_german_population_chi_square_matches_scipy(german):
    sec, findings, raw = german
    sex = sec.attributes["sex"]
    counts = raw["sex"].value_counts()
    obs = np.array([counts["male"], counts["female"]])
    ref = stats.chisquare(obs, f_exp=obs.sum() * np.array([0.49, 0.51]))
    t = sex.population_test
    assert t is not None and t.df == 1
    assert t.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert t.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert sex.groups["male"].population_gap == pytest.approx(0.69 - 0.49, abs=EXACT)
    f = [f for f in findings if f.title.startswith("Sample differs from the population benchmark: sex")]
    assert len(f) == 1 and f[0].threshold == 0.05 and f[0].threshold_source == "default"


def test_german_group_sizes_and_base_rates_match_aif360(german):
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import BinaryLabelDatasetMetric

    sec, _, raw = german
    df = pd.DataFrame({"male": (raw["sex"] == "male").astype(float), "y": raw["label_bad"].astype(float)})
    ds = BinaryLabelDataset(df=df, label_names=["y"], protected_attribute_names=["male"])
    m = BinaryLabelDatasetMetric(ds, unprivileged_groups=[{"male": 0}], privileged_groups=[{"male": 1}])
    g = sec.attributes["sex"].groups
    assert g["male"].n == m.num_instances(privileged=True)
    assert g["female"].n == m.num_instances(privileged=False)
    assert g["male"].event_rate == pytest.approx(m.base_rate(privileged=True), abs=EXACT)
    assert g["female"].event_rate == pytest.approx(m.base_rate(privileged=False), abs=EXACT)


# --------------------------------------------------------------------------- missingness, small groups


def test_missingness_by_group_and_flag(tmp_path):
    sec, findings = run(synthetic(tmp_path))
    raw = pd.read_csv(tmp_path / "data.csv")
    a = sec.attributes["grp"]
    by = raw.assign(m=raw["x1"].isna()).groupby("grp")["m"].mean()
    for g in ("a", "b", "c"):
        assert a.groups[g].missing_rate["x1"] == pytest.approx(by[g], abs=EXACT)
        assert a.groups[g].missing_rate["x2"] == 0.0
    gap = next(x for x in a.missingness_gaps if x.feature == "x1")
    # group c (20 rows) is below min_group_size and left out of the gap
    assert gap.gap == pytest.approx(by["b"] - by["a"], abs=EXACT) and gap.flagged
    assert a.missingness_gaps[0].feature == "x1"  # sorted by gap
    assert gap.overall_missing_rate == pytest.approx(raw["x1"].isna().mean(), abs=EXACT)
    titles = [f.title for f in findings]
    assert "Missingness differs by grp: x1" in titles
    assert not any("x2" in t for t in titles)
    small = [f for f in findings if f.title == "Small group: grp=c"]
    assert len(small) == 1 and small[0].value == 20 and small[0].threshold == 30
    assert a.groups["c"].below_min_size and not a.groups["b"].below_min_size


def test_policy_thresholds_are_labelled_policy(tmp_path):
    sec, findings = run(synthetic(tmp_path, policy={"min_group_size": 10, "missing_gap_max": 0.5}))
    assert not any(f.title.startswith(("Small group", "Missingness differs")) for f in findings)
    sec, findings = run(synthetic(tmp_path, policy={"missing_gap_max": 0.1}))
    f = next(f for f in findings if f.title.startswith("Missingness differs"))
    assert f.threshold == 0.1 and f.threshold_source == "policy"


def test_sample_weights_are_honoured(tmp_path):
    sec, _ = run(synthetic(tmp_path, weight=True))
    raw = pd.read_csv(tmp_path / "data.csv")
    a = sec.attributes["grp"]
    wsum = raw.groupby("grp")["w"].sum()
    wev = (raw["w"] * raw["y"]).groupby(raw["grp"]).sum()
    wmiss = (raw["w"] * raw["x1"].isna()).groupby(raw["grp"]).sum()
    for g in ("a", "b", "c"):
        assert a.groups[g].n == pytest.approx(wsum[g], rel=1e-12)
        assert a.groups[g].share == pytest.approx(wsum[g] / raw["w"].sum(), rel=1e-12)
        assert a.groups[g].event_rate == pytest.approx(wev[g] / wsum[g], rel=1e-12)
        assert a.groups[g].missing_rate["x1"] == pytest.approx(wmiss[g] / wsum[g], rel=1e-12)
    assert a.groups["c"].below_min_size  # the size rule counts rows, not weight
    assert "sample weights" in sec.count_basis


def test_benchmark_group_absent_from_sample(tmp_path):
    shares = {"a": 0.5, "b": 0.3, "c": 0.1, "d": 0.1}
    sec, findings = run(synthetic(tmp_path, shares=shares))
    t = sec.attributes["grp"].population_test
    assert t.groups_absent_from_sample == ["d"] and t.groups == ["a", "b", "c", "d"]
    ref = stats.chisquare([1200, 780, 20, 0], f_exp=2000 * np.array([0.5, 0.3, 0.1, 0.1]))
    assert t.statistic == pytest.approx(ref.statistic, rel=1e-12) and t.df == 3
    assert any(f.title == "Benchmark group absent from the sample: grp=d" for f in findings)


def test_group_not_in_benchmark_is_listed(tmp_path):
    sec, _ = run(synthetic(tmp_path, shares={"a": 0.6, "b": 0.4}))
    t = sec.attributes["grp"].population_test
    assert t.groups_not_in_benchmark == ["c"]
    ref = stats.chisquare([1200, 780], f_exp=1980 * np.array([0.6, 0.4]))
    assert t.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert sec.attributes["grp"].groups["c"].population_gap is None


def test_group_summary_invariant_to_row_order():
    rng = np.random.default_rng(0)
    n = 500
    m = np.eye(3)[rng.integers(0, 3, n)]
    y = rng.integers(0, 2, n)
    miss = rng.random((n, 2)) < 0.1
    perm = rng.permutation(n)
    a = representation.group_summary(y, m, miss)
    b = representation.group_summary(y[perm], m[perm], miss[perm])
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12)


# --------------------------------------------------------------------------- bad inputs


def test_all_missing_protected_column_exit_2(tmp_path):
    path = synthetic(tmp_path)
    raw = pd.read_csv(tmp_path / "data.csv")
    raw["grp"] = np.nan
    raw.to_csv(tmp_path / "data.csv", index=False)
    r = run_cli("audit", str(path), "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    assert "data.csv" in r.stderr and "protected[grp].column" in r.stderr and "entirely missing" in r.stderr
    assert "Traceback" not in r.stderr


def test_population_shares_not_summing_to_one_exit_2(tmp_path):
    path = synthetic(tmp_path, shares={"a": 0.9, "b": 0.9})
    r = run_cli("audit", str(path), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "population_shares" in r.stderr and "sum to 1" in r.stderr


# --------------------------------------------------------------------------- published figure: HMDA


def test_hmda_denial_rates_by_race_match_published_figures(tmp_path):
    """Stock & Watson (2007) ch. 11 / Munnell et al. (1996): denial rates ~28% black, ~9% white."""
    from service.audits import imbalance

    src = FIXTURES / "hmda_boston" / "HMDA_AER.csv"
    spec = {
        "model_name": "hmda-pirat",
        "dataset": str(src),
        "target": "deny",
        "event_value": "yes",
        "score": {"column": "pirat", "threshold": 0.4},
        "features": ["hirat", "lvrat", "chist", "mhist", "unemp", "selfemp", "single"],
        "protected": [
            {
                "name": "race",
                "column": "afam",
                "categories": {"no": "white", "yes": "black"},
                "reference": "white",
            }
        ],
        "bootstrap": 0,
    }
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(spec))
    ctx = prepare(load_spec(tmp_path / "audit.yaml")).context
    g = representation.run(ctx).section.attributes["race"].groups
    assert (g["black"].n, g["white"].n) == (339, 2041)  # SOURCE.md: afam yes 339 / no 2,041
    assert g["black"].event_rate == pytest.approx(0.28, abs=0.005)  # published, rounded: 96 / 339
    assert g["white"].event_rate == pytest.approx(0.09, abs=0.005)  # published, rounded: 189 / 2,041
    ev = imbalance.run(ctx).section
    assert ev.per_group["race"]["black"].events == 96 and ev.per_group["race"]["white"].events == 189
    assert ev.events == 285 and ev.n == 2380  # deny yes 285 / no 2,095


def test_out_of_time_group_mix_vs_scipy_homogeneity(tmp_path):
    path = synthetic(tmp_path)
    raw = pd.read_csv(tmp_path / "data.csv")
    rng = np.random.default_rng(12)
    oot = raw.sample(900, random_state=1).reset_index(drop=True)
    oot.loc[: 899 * 0.4, "grp"] = "b"  # shift the mix toward b
    oot.loc[oot.index[-5:], "grp"] = "c"
    oot["y"] = (rng.random(len(oot)) < 0.2).astype(int)
    oot.to_csv(tmp_path / "oot.csv", index=False)
    spec = yaml.safe_load(path.read_text())
    spec["oot_dataset"] = "oot.csv"
    path.write_text(yaml.safe_dump(spec))
    sec, findings = run(path)
    o = sec.attributes["grp"].out_of_time
    dev_counts = raw["grp"].value_counts()
    oot_counts = oot["grp"].value_counts()
    table = np.array([[dev_counts.get(g, 0) for g in "abc"], [oot_counts.get(g, 0) for g in "abc"]])
    ref = stats.chi2_contingency(table, correction=False)
    assert o.statistic == pytest.approx(ref.statistic, rel=1e-10) and o.df == ref.dof == 2
    assert o.p_value == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-300)
    for g in "abc":
        assert o.groups[g].n == oot_counts.get(g, 0)
        assert o.groups[g].share == pytest.approx(oot_counts.get(g, 0) / len(oot), abs=EXACT)
        assert o.groups[g].share_change == pytest.approx(
            oot_counts.get(g, 0) / len(oot) - dev_counts[g] / len(raw), abs=EXACT
        )
        assert o.groups[g].event_rate == pytest.approx(oot.loc[oot.grp == g, "y"].mean(), abs=EXACT)
    f = next(f for f in findings if f.title == "Group mix shifts out of time: grp")
    assert f.threshold == 0.05 and f.threshold_source == "default"
    # no out-of-time sample: no comparison
    sec, _ = run(synthetic(tmp_path))
    assert sec.attributes["grp"].out_of_time is None
