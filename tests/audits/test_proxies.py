"""Proxy section: association measures vs scipy/sklearn, a planted proxy, redundant encoding, BISG weights.

Independent references: scipy.stats.contingency.association (Cramér's V), the R² of a least-squares
fit on group dummies (η² for a numeric feature), sklearn normalized_mutual_info_score, roc_auc_score,
cross_val_predict (out-of-fold AUC), and a naive row bootstrap with roc_auc_score (the CI).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import chi2_contingency
from scipy.stats.contingency import association
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression
from sklearn.metrics import normalized_mutual_info_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from service.audits import proxies
from service.config import load_spec
from service.inputs.prepare import prepare
from tests.conftest import FIXTURES, GERMAN_SPEC

EXACT = 1e-10


def folded(a: float) -> float:
    return max(a, 1 - a)


@pytest.fixture(scope="module")
def german():
    ctx = prepare(load_spec(GERMAN_SPEC)).context
    sec = proxies.run(ctx)
    raw = pd.read_csv(FIXTURES / "german_credit" / "german_credit.csv")
    return sec.section, sec.findings, raw


def feature(sec, attr: str, name: str):
    return next(f for f in sec.attributes[attr].features if f.feature == name)


# --------------------------------------------------------------------------- single-feature screen vs peers


def test_cramers_v_and_nmi_match_scipy_sklearn(german):
    sec, _, raw = german
    for f in ("housing", "purpose", "employment_since", "checking_status"):
        row = feature(sec, "sex", f)
        assert row.kind == "categorical" and row.measure == "cramers_v" and row.eta is None
        v = association(pd.crosstab(raw[f], raw["sex"]).to_numpy(), method="cramer", correction=False)
        assert row.cramers_v == pytest.approx(v, abs=EXACT), f
        assert row.mutual_info == pytest.approx(
            normalized_mutual_info_score(raw["sex"], raw[f]), abs=EXACT
        ), f


def test_eta_matches_r_squared_on_group_dummies(german):
    sec, _, raw = german
    dummies = pd.get_dummies(raw["sex"]).to_numpy(dtype=float)
    for f in ("credit_amount", "duration_months", "age_years", "num_dependents"):
        row = feature(sec, "sex", f)
        x = raw[f].to_numpy(dtype=float)
        r2 = LinearRegression().fit(dummies, x).score(dummies, x)
        assert row.kind == "numeric" and row.cramers_v is None
        assert row.eta == pytest.approx(np.sqrt(r2), abs=1e-9), f


def test_numeric_nmi_uses_decile_bins(german):
    sec, _, raw = german
    for f in ("credit_amount", "age_years"):
        bins = pd.qcut(raw[f], 10, labels=False, duplicates="drop")
        ref = normalized_mutual_info_score(raw["sex"], bins)
        assert feature(sec, "sex", f).mutual_info == pytest.approx(ref, abs=EXACT), f


def test_numeric_single_feature_auc_matches_sklearn(german):
    sec, _, raw = german
    for f in ("credit_amount", "duration_months", "age_years"):
        ref = folded(roc_auc_score(raw["sex"] == "female", raw[f]))
        row = feature(sec, "sex", f)
        assert row.auc == pytest.approx(ref, abs=EXACT), f
        assert row.auc_by_group["male"] == pytest.approx(ref, abs=EXACT)  # binary: both sides equal


def test_categorical_auc_is_cross_fitted_target_encoding():
    rng = np.random.default_rng(11)
    n = 3000
    grp = rng.integers(0, 3, n)
    cat = np.where(rng.random(n) < 0.6, grp, rng.integers(0, 3, n)).astype(str)  # informative
    m = np.eye(3)[grp]
    folds = rng.permutation(n) % 5
    out = proxies.screen_feature(pd.Series(cat), m, kind="categorical", folds=folds)
    # the same encoding by hand: other folds' group shares per category, plus one prior pseudo-row
    df = pd.DataFrame({"cat": cat, "grp": grp, "fold": folds})
    prior = np.bincount(grp, minlength=3) / n
    scores = np.zeros((n, 3))
    for k in range(5):
        tr = df[df.fold != k]
        tab = pd.crosstab(tr.cat, tr.grp).reindex(columns=range(3), fill_value=0)
        te = (df.fold == k).to_numpy()
        t = tab.loc[df.cat[te]].to_numpy(dtype=float)
        scores[te] = (t + prior) / (t.sum(axis=1, keepdims=True) + 1)
    for j in range(3):
        ref = folded(roc_auc_score(grp == j, scores[:, j]))
        assert out["auc_by_group"][j] == pytest.approx(ref, abs=EXACT)


def test_identifier_like_categorical_is_not_a_proxy():
    rng = np.random.default_rng(5)
    n = 4000
    grp = rng.integers(0, 2, n)
    ident = pd.Series(np.arange(n) // 2).astype(str)  # two rows per "category", unrelated to grp
    folds = rng.permutation(n) % 5
    out = proxies.screen_feature(ident, np.eye(2)[grp], kind="categorical", folds=folds)
    assert np.nanmax(out["auc_by_group"]) < 0.56
    in_sample = proxies.screen_feature(ident, np.eye(2)[grp], kind="categorical", folds=None)
    assert np.nanmax(in_sample["auc_by_group"]) > 0.7  # what an in-sample encoding would claim


def test_fractional_membership_auc_equals_weighted_sklearn():
    rng = np.random.default_rng(2)
    n = 800
    p = rng.dirichlet([1, 1, 1], size=n)  # BISG-like probabilities
    x = p[:, 0] * 2 + rng.normal(0, 0.5, n)
    got = proxies.single_feature_auc(x, p)
    for j in range(3):
        # row i is a positive with weight p_ij and a negative with weight 1 - p_ij
        ref = roc_auc_score(
            np.r_[np.ones(n), np.zeros(n)], np.r_[x, x], sample_weight=np.r_[p[:, j], 1 - p[:, j]]
        )
        assert got[j] == pytest.approx(folded(ref), abs=EXACT)


def test_fractional_cramers_v_equals_expanded_table():
    from service.audits._stats import contingency_from_membership, cramers_v

    rng = np.random.default_rng(4)
    codes = rng.integers(0, 4, 500)
    p = rng.dirichlet([2, 1, 1], size=500)
    tab = contingency_from_membership(codes, p)
    ref = np.zeros((4, 3))
    for i in range(500):
        ref[codes[i]] += p[i]
    np.testing.assert_allclose(tab, ref, atol=1e-12)
    chi2 = chi2_contingency(ref, correction=False).statistic  # accepts fractional counts
    assert cramers_v(tab) == pytest.approx(np.sqrt(chi2 / (ref.sum() * 2)), abs=EXACT)


def test_relabelling_groups_leaves_measures_unchanged():
    rng = np.random.default_rng(9)
    n = 1000
    grp = rng.integers(0, 3, n)
    x = pd.Series(grp + rng.normal(0, 1, n))
    a = proxies.screen_feature(x, np.eye(3)[grp], kind="numeric")
    perm = np.array([2, 0, 1])
    b = proxies.screen_feature(x, np.eye(3)[perm[grp]], kind="numeric")
    assert a["eta"] == pytest.approx(b["eta"], abs=EXACT)
    assert a["mutual_info"] == pytest.approx(b["mutual_info"], abs=EXACT)
    np.testing.assert_allclose(np.asarray(b["auc_by_group"])[perm], a["auc_by_group"], atol=EXACT)


def test_constant_and_empty_features_give_null_not_crash():
    grp = np.eye(2)[np.r_[np.zeros(50, int), np.ones(50, int)]]
    const = proxies.screen_feature(pd.Series(np.ones(100)), grp, kind="numeric")
    empty = proxies.screen_feature(pd.Series([np.nan] * 100), grp, kind="numeric")
    assert const["eta"] is None and empty["eta"] is None
    np.testing.assert_allclose(const["auc_by_group"], 0.5)  # all ties: chance, as sklearn gives
    assert roc_auc_score(grp[:, 1], np.ones(100)) == 0.5
    assert not np.isfinite(np.asarray(empty["auc_by_group"], dtype=float)).any()


# --------------------------------------------------------------------------- planted proxy


def planted(tmp_path: Path, n: int = 3000, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    race = rng.choice(["w", "b", "h"], size=n, p=[0.6, 0.25, 0.15])
    code = pd.Series(race).map({"w": 0, "b": 1, "h": 2}).to_numpy()
    frame = pd.DataFrame(
        {
            "race": race,
            "planted": code + rng.normal(0, 0.6, n),  # the protected attribute plus noise
            "weak": 0.15 * code + rng.normal(0, 1, n),
            "noise1": rng.normal(size=n),
            "noise2": rng.choice(["p", "q", "r"], size=n),
            "p": rng.uniform(0.01, 0.99, n),
        }
    )
    frame["y"] = (rng.random(n) < frame["p"]).astype(int)
    frame.to_csv(tmp_path / "data.csv", index=False)
    spec = {
        "model_name": "planted",
        "dataset": "data.csv",
        "target": "y",
        "score": {"column": "p", "threshold": 0.5},
        "features": ["noise1", "weak", "noise2", "planted"],
        "protected": [{"name": "race", "column": "race", "reference": "w"}],
        "bootstrap": 200,
    }
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "audit.yaml"


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    path = planted(tmp_path_factory.mktemp("planted"))
    ctx = prepare(load_spec(path)).context
    out = proxies.run(ctx)
    return out.section, out.findings


def test_planted_proxy_ranks_first_and_is_flagged(planted_run):
    sec, findings = planted_run
    a = sec.attributes["race"]
    assert a.features[0].feature == "planted" and a.features[0].flagged
    assert not feature(sec, "race", "noise1").flagged and not feature(sec, "race", "noise2").flagged
    red = a.redundant_encoding
    assert red is not None and red.flagged and red.auc > 0.8
    assert red.top_features[0].feature == "planted"
    assert red.auc_ci[0] < red.auc < red.auc_ci[1]
    assert "planted" in a.flagged_features and "noise1" not in a.flagged_features
    titles = [f.title for f in findings]
    assert any(t.startswith("Proxy features for race: planted") for t in titles)
    red_f = next(f for f in findings if f.title == "Redundant encoding of race")
    assert red_f.severity == "high" and red_f.threshold == 0.7 and red_f.threshold_source == "default"


def test_redundant_encoding_auc_matches_sklearn_cross_val_predict():
    rng = np.random.default_rng(21)
    n = 1500
    labels = rng.integers(0, 3, n)
    X = np.column_stack([labels + rng.normal(0, 1.0, n), rng.normal(size=n), rng.integers(0, 4, n)])
    seed_rng = np.random.default_rng(99)
    got = proxies.redundant_encoding(
        X,
        labels,
        ["a", "b", "c"],
        ["x", "n", "c"],
        categorical=[False, False, True],
        n_boot=200,
        rng=seed_rng,
    )
    seed = int(np.random.default_rng(99).integers(0, 2**31 - 1))  # the first draw redundant_encoding makes
    clf = HistGradientBoostingClassifier(
        max_iter=60,
        learning_rate=0.15,
        max_leaf_nodes=15,
        categorical_features=np.array([False, False, True]),
        random_state=seed,
        early_stopping=False,
    )
    proba = cross_val_predict(
        clf, X, labels, cv=StratifiedKFold(3, shuffle=True, random_state=seed), method="predict_proba"
    )
    ref = roc_auc_score(labels, proba, multi_class="ovr", average="macro")
    assert got.auc == pytest.approx(ref, abs=1e-9)
    for j, g in enumerate("abc"):
        assert got.auc_by_group[g] == pytest.approx(roc_auc_score(labels == j, proba[:, j]), abs=1e-9)
    # CI vs a naive row bootstrap of the same out-of-fold predictions
    boot = np.random.default_rng(0)
    reps = []
    for _ in range(300):
        i = boot.integers(0, n, n)
        reps.append(roc_auc_score(labels[i], proba[i], multi_class="ovr", average="macro"))
    lo, hi = np.percentile(reps, [2.5, 97.5])
    assert got.auc_ci[0] == pytest.approx(lo, abs=0.015) and got.auc_ci[1] == pytest.approx(hi, abs=0.015)
    assert got.importances[0].feature == "x"


def test_binary_attribute_auc_is_plain_auc():
    rng = np.random.default_rng(8)
    n = 1200
    labels = rng.integers(0, 2, n)
    X = np.column_stack([labels + rng.normal(0, 1.5, n), rng.normal(size=n)])
    got = proxies.redundant_encoding(
        X, labels, ["m", "f"], ["x", "n"], categorical=[False, False], n_boot=0, rng=np.random.default_rng(3)
    )
    assert got.auc == pytest.approx(got.auc_by_group["f"], abs=EXACT)
    assert got.auc == pytest.approx(got.auc_by_group["m"], abs=EXACT)  # complementary probabilities
    assert got.auc_ci is None


def test_too_few_groups_gives_null_with_note():
    labels = np.r_[np.zeros(50, int), [1]]
    got = proxies.redundant_encoding(
        np.random.default_rng(0).normal(size=(51, 2)),
        labels,
        ["a", "b"],
        ["x", "y"],
        categorical=[False, False],
        rng=np.random.default_rng(0),
    )
    assert got.auc is None and "fewer than two groups" in (got.note or "")


# --------------------------------------------------------------------------- the audit on fixtures


def test_direct_use_of_protected_column_is_reported(german):
    sec, findings, _ = german
    age = sec.attributes["age"]
    assert age.direct_use == ["age_years"] and all(f.feature != "age_years" for f in age.features)
    assert any(f.title == "Protected attribute used as a feature: age_years" for f in findings)


def test_sampling_reports_sample_size(tmp_path, monkeypatch):
    monkeypatch.setattr(proxies, "MAX_ROWS_SCREEN", 1000)
    monkeypatch.setattr(proxies, "MAX_ROWS_MODEL", 500)
    ctx = prepare(load_spec(planted(tmp_path))).context
    a = proxies.run(ctx).section.attributes["race"]
    assert a.sample_size == 1000 and a.redundant_encoding.sample_size == 500
    assert a.features[0].feature == "planted"


def test_deterministic_given_seed(tmp_path):
    path = planted(tmp_path, n=800)
    one = proxies.run(prepare(load_spec(path)).context).section.model_dump()
    two = proxies.run(prepare(load_spec(path)).context).section.model_dump()
    assert one == two


def test_bisg_attribute_uses_probabilities():
    ctx = prepare(load_spec(FIXTURES / "bisg" / "audit.yaml")).context
    a = proxies.run(ctx).section.attributes["race"]
    pg = ctx.dev.protected["race"]
    has = pg.membership.sum(axis=1) > 0
    assert a.estimated and a.sample_size == int(has.sum())
    x = ctx.dev.frame["dti"].to_numpy(dtype=float)[has]
    p = pg.membership[has]
    n = int(has.sum())
    row = feature(proxies.run(ctx).section, "race", "dti")
    for j, g in enumerate(pg.groups):
        ref = roc_auc_score(
            np.r_[np.ones(n), np.zeros(n)], np.r_[x, x], sample_weight=np.r_[p[:, j], 1 - p[:, j]]
        )
        assert row.auc_by_group[g] == pytest.approx(folded(ref), abs=EXACT)
    assert a.redundant_encoding is not None and "BISG" in (a.redundant_encoding.note or "")


def test_carrier_rule_ignores_permutation_noise():
    c = proxies.CarryingFeature
    assert proxies._carries(c(feature="a", importance=0.05, importance_std=0.01))
    assert not proxies._carries(c(feature="b", importance=0.011, importance_std=0.013))  # within noise
    assert not proxies._carries(c(feature="c", importance=0.009, importance_std=0.0))  # below 0.01
