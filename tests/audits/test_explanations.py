"""Explanations section: global mean |SHAP| (with CI), per-group mean SHAP, monotone checks, bad inputs.

Anchors: the ``shap`` library (TreeExplainer on the Taiwan LightGBM model, LinearExplainer on the
German logistic-regression pipeline), pandas group-bys, scipy's Spearman ρ, and a black-box
identity for additive models (φ_j(x) = mean_r [f(x) − f(x with x_j := r_j)]).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from service.audits import explanations
from service.audits.context import NotApplicable
from service.config import load_spec
from service.errors import InputError
from service.inputs.prepare import prepare
from tests.conftest import FIXTURES

TAIWAN_ROWS = 1500  # ≤ SAMPLE_MAX, so the section explains every row and the anchors see the same rows
TOL_TREE = 1e-6
TOL_LINEAR = 1e-9


def _shap():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import shap
    return shap


def _spec_copy(tmp_path: Path, src: Path, *, rows: int | None = None, **changes) -> Path:
    d = yaml.safe_load(src.read_text())
    data = pd.read_csv(src.parent / d["dataset"])
    if rows is not None:
        data = data.iloc[:rows]
    data.to_csv(tmp_path / "data.csv", index=False)
    d["dataset"] = "data.csv"
    d["model"] = str((src.parent / d["model"]).resolve())
    if isinstance(d.get("reason_codes"), str):
        d["reason_codes"] = str((src.parent / d["reason_codes"]).resolve())
    d["bootstrap"] = 400
    d.update(changes)
    out = tmp_path / "spec.yaml"
    out.write_text(yaml.safe_dump(d))
    return out


@pytest.fixture(scope="module")
def taiwan(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("taiwan_expl")
    spec = load_spec(
        _spec_copy(
            tmp,
            FIXTURES / "taiwan" / "audit.yaml",
            rows=TAIWAN_ROWS,
            monotone={"PAY_0": "increasing_risk", "LIMIT_BAL": "increasing_risk"},
        )
    )
    ctx = prepare(spec).context
    return ctx, explanations.run(ctx)


@pytest.fixture(scope="module")
def german(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("german_expl")
    spec = load_spec(_spec_copy(tmp, FIXTURES / "german_credit" / "audit.yaml", reason_codes=None))
    ctx = prepare(spec).context
    return ctx, explanations.run(ctx)


def test_taiwan_tree_shap_matches_shap_tree_explainer(taiwan):
    ctx, out = taiwan
    sec = out.section
    X = ctx.dev.frame[ctx.features].to_numpy(dtype="float64")
    sv = np.asarray(_shap().TreeExplainer(ctx.model.booster).shap_values(X))
    assert sec.sample_size == TAIWAN_ROWS == sec.population_size
    assert sec.scale == "log_odds" and "TreeSHAP" in sec.method
    ref = np.abs(sv).mean(axis=0)
    for j, f in enumerate(ctx.features):
        assert sec.features[f].mean_abs_shap == pytest.approx(ref[j], abs=TOL_TREE)
        assert sec.features[f].mean_shap == pytest.approx(sv[:, j].mean(), abs=TOL_TREE)
    ranks = [sec.features[f].rank for f in ctx.features]
    assert sorted(ranks) == list(range(1, len(ctx.features) + 1))
    assert list(sec.features)[0] == ctx.features[int(np.argmax(ref))]
    # base value + contributions = LightGBM raw margin (additivity on the log-odds scale)
    raw = ctx.model.booster.predict(X, raw_score=True)
    assert sec.base_value + sv.sum(axis=1).mean() == pytest.approx(raw.mean(), abs=1e-6)


def test_mean_abs_ci_matches_normal_approximation(taiwan):
    ctx, out = taiwan
    X = ctx.dev.frame[ctx.features].to_numpy(dtype="float64")
    A = np.abs(np.asarray(_shap().TreeExplainer(ctx.model.booster).shap_values(X)))
    for j, f in enumerate(ctx.features[:6]):
        lo, hi = out.section.features[f].mean_abs_shap_ci
        se = A[:, j].std(ddof=1) / np.sqrt(A.shape[0])
        assert lo <= A[:, j].mean() <= hi
        # 400 percentile-bootstrap replicates vs the normal interval: widths agree within 25 %
        assert (hi - lo) == pytest.approx(2 * 1.959964 * se, rel=0.25)


def test_per_group_mean_shap_matches_pandas_groupby(taiwan):
    ctx, out = taiwan
    X = ctx.dev.frame[ctx.features].to_numpy(dtype="float64")
    sv = pd.DataFrame(
        np.asarray(_shap().TreeExplainer(ctx.model.booster).shap_values(X)), columns=ctx.features
    )
    sex = ctx.dev.frame["SEX"].map({1: "male", 2: "female"}).to_numpy()
    by = sv.groupby(sex).mean()
    att = out.section.attributes["sex"]
    assert att.reference == "male"
    for g in ("male", "female"):
        assert att.groups[g].n == float((sex == g).sum())
        for f in ctx.features:
            assert att.groups[g].mean_shap[f] == pytest.approx(by.loc[g, f], abs=TOL_TREE)
    diff = (by.loc["female"] - by.loc["male"]).abs().sort_values(ascending=False)
    top = [d.feature for d in att.top_differences if d.group == "female"]
    assert top == list(diff.index[: len(top)])
    assert att.top_differences[0].difference == pytest.approx(
        by.loc["female", top[0]] - by.loc["male", top[0]], abs=TOL_TREE
    )


def test_monotone_checks_match_scipy_and_flag_contradiction(taiwan):
    ctx, out = taiwan
    X = ctx.dev.frame[ctx.features].to_numpy(dtype="float64")
    sv = np.asarray(_shap().TreeExplainer(ctx.model.booster).shap_values(X))
    for f in ("PAY_0", "LIMIT_BAL"):
        j = ctx.features.index(f)
        rho = stats.spearmanr(X[:, j], sv[:, j]).statistic
        assert out.section.monotone[f].spearman_rho == pytest.approx(rho, abs=1e-9)
    # a higher credit limit lowers default risk in this model, so "increasing_risk" is contradicted
    assert out.section.monotone["LIMIT_BAL"].contradicts is True
    assert out.section.monotone["PAY_0"].contradicts is False
    titles = [f.title for f in out.findings]
    assert any("LIMIT_BAL" in t for t in titles) and not any("PAY_0" in t for t in titles)


def test_german_linear_matches_shap_linear_explainer(german):
    ctx, out = german
    est = ctx.model.estimator
    pre, lr = est[:-1], est[-1]
    frame = ctx.dev.frame[ctx.features]
    T = pre.transform(frame)
    T = T.toarray() if hasattr(T, "toarray") else T
    shap = _shap()
    # the whole data as background (shap's default masker would subsample it to 100 rows)
    sv = np.asarray(shap.LinearExplainer(lr, shap.maskers.Independent(T, max_samples=len(T))).shap_values(T))
    names = list(pre.get_feature_names_out())
    per_feature = {}
    for f in ctx.features:
        cols = [k for k, nm in enumerate(names) if nm == f"num__{f}" or nm.startswith(f"cat__{f}_")]
        assert cols, f
        per_feature[f] = sv[:, cols].sum(axis=1)
    assert out.section.method.startswith("exact linear")
    for f in ctx.features:
        assert out.section.features[f].mean_abs_shap == pytest.approx(
            np.abs(per_feature[f]).mean(), abs=TOL_LINEAR
        )


def test_german_linear_black_box_identity(german):
    """For an additive model φ_j(x) = mean_r [f(x) − f(x with feature j taken from r)] (r over the data)."""
    ctx, _ = german
    phi, base, _ = explanations.explain_sample(ctx, ctx.dev.frame.iloc[:3])
    X = ctx.dev.frame[ctx.features]
    for i in range(3):
        x = X.iloc[[i]]
        fx = ctx.model.predict_margin(x)[0]
        for f in ("duration_months", "checking_status", "purpose"):
            rep = pd.concat([x] * len(X), ignore_index=True)
            rep[f] = X[f].to_numpy()
            expect = float(np.mean(fx - ctx.model.predict_margin(rep)))
            assert phi[i, ctx.features.index(f)] == pytest.approx(expect, abs=TOL_LINEAR)
        assert base[i] + phi[i].sum() == pytest.approx(fx, abs=TOL_LINEAR)


def test_higher_is_safer_flips_the_sign(german):
    """The section explains the adverse-oriented margin: declaring the score safer negates every value."""
    ctx, _ = german
    spec2 = ctx.spec.model_copy(
        update={"score": ctx.spec.score.model_copy(update={"direction": "higher_is_safer"})}
    )
    ctx2 = dataclasses.replace(ctx, spec=spec2, results={})
    a, _, _ = explanations.explain_sample(ctx, ctx.dev.frame.iloc[:20])
    b, _, _ = explanations.explain_sample(ctx2, ctx.dev.frame.iloc[:20])
    np.testing.assert_allclose(b, -a, atol=1e-12)


def test_monotone_unknown_feature_is_an_input_error(german):
    ctx, _ = german
    spec2 = ctx.spec.model_copy(update={"monotone": {"not_a_feature": "increasing_risk"}})
    with pytest.raises(InputError, match="not_a_feature") as exc:
        explanations.run(dataclasses.replace(ctx, spec=spec2, results={}))
    assert exc.value.field == "monotone.not_a_feature"


def test_score_column_is_not_applicable(tmp_path):
    rng = np.random.default_rng(3)
    pd.DataFrame({"y": rng.integers(0, 2, 200), "p": rng.random(200), "x": rng.normal(size=200)}).to_csv(
        tmp_path / "d.csv", index=False
    )
    (tmp_path / "s.yaml").write_text(
        yaml.safe_dump(
            {"model_name": "m", "dataset": "d.csv", "target": "y", "score": {"column": "p", "threshold": 0.5}}
        )
    )
    ctx = prepare(load_spec(tmp_path / "s.yaml")).context
    with pytest.raises(NotApplicable, match="score.column"):
        explanations.run(ctx)


def test_pure_helpers_against_direct_formulas():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(300, 4))
    w = rng.uniform(0.5, 2.0, 300)
    point, lo, hi = explanations.mean_abs_with_ci(v, sample_weight=w, n_boot=300, random_state=1)
    np.testing.assert_allclose(point, (np.abs(v) * w[:, None]).sum(0) / w.sum(), atol=1e-12)
    assert np.all(lo <= point) and np.all(point <= hi)
    memb = np.zeros((300, 2))
    memb[np.arange(300), rng.integers(0, 2, 300)] = 1.0
    means, size = explanations.group_mean_shap(v, memb)
    for k in range(2):
        np.testing.assert_allclose(means[k], v[memb[:, k] == 1].mean(axis=0), atol=1e-12)
        assert size[k] == memb[:, k].sum()
