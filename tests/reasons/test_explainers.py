"""Attributors beyond the fixtures: XGBoost interventional TreeSHAP vs shap, the model-agnostic path, and
LightGBM missing-value / zero-as-missing routing, each against an independent computation."""

from __future__ import annotations

import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from service.inputs.models import LightGBMModel, SklearnModel, XGBoostModel
from service.reasons.explainers import linear_structure, make_attributor, model_family

FEATS = ["a", "b", "c", "d"]


def _shap():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import shap
    return shap


def _data(n: int = 2000, seed: int = 5) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    X[:, 3] = rng.integers(0, 3, n)  # many exact zeros
    y = (rng.random(n) < 1 / (1 + np.exp(-(X[:, 0] - X[:, 1] * X[:, 2] + 0.5 * X[:, 3])))).astype(int)
    X[rng.random(X.shape) < 0.08] = np.nan
    return pd.DataFrame(X, columns=FEATS), y


def _shap_interventional(model, R: np.ndarray, X: np.ndarray) -> np.ndarray:
    shap = _shap()
    expl = shap.TreeExplainer(
        model,
        data=shap.maskers.Independent(R, max_samples=len(R)),
        feature_perturbation="interventional",
        model_output="raw",
    )
    return np.asarray(expl.shap_values(X))


def test_xgboost_interventional_matches_shap():
    import xgboost as xgb

    df, y = _data()
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "seed": 1},
        xgb.DMatrix(df.to_numpy(), label=y, feature_names=FEATS, missing=np.nan),
        40,
    )
    model = XGBoostModel(booster, FEATS, "sha", "mem")
    assert model_family(model) == "tree"
    R = df.iloc[:80]
    att = make_attributor(model, R)
    Q = df.iloc[500:560]
    ours = att.attribute(Q)
    ref = _shap_interventional(booster, R.to_numpy(), Q.to_numpy())
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    margin = model.predict_margin(Q)
    np.testing.assert_allclose(ours.sum(axis=1), margin - model.predict_margin(R).mean(), atol=1e-5)


def _brute_force_baseline_shapley(margin, x: pd.DataFrame, R: pd.DataFrame) -> np.ndarray:
    """Exact Shapley values of v(S) = mean_r f(x_S, r_rest) by enumerating all 2^p coalitions,
    with the model itself routing missing values (no tree parsing involved)."""
    from itertools import combinations
    from math import factorial

    p = len(FEATS)
    v = {}
    for size in range(p + 1):
        for S in combinations(range(p), size):
            hyb = R.copy()
            for j in S:
                hyb[FEATS[j]] = x.iloc[0, j]
            v[S] = float(np.mean(margin(hyb)))
    phi = np.zeros(p)
    for j in range(p):
        for S, val in v.items():
            if j in S:
                continue
            w = factorial(len(S)) * factorial(p - len(S) - 1) / factorial(p)
            phi[j] += w * (v[tuple(sorted(S + (j,)))] - val)
    return phi


@pytest.mark.parametrize("params", [{"use_missing": True}, {"zero_as_missing": True}, {"use_missing": False}])
def test_lightgbm_missing_value_routing_is_exact(params):
    """NaN / zero-as-missing / missing-disabled routing, against brute-force Baseline-Shapley.

    (shap 0.51's interventional explainer agrees only for the default missing handling: with
    ``zero_as_missing`` or ``use_missing=False`` its values do not even sum to f(x) − mean f(R).)
    """
    df, y = _data(seed=9)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 15, "verbose": -1, "seed": 2, **params},
        lgb.Dataset(df.to_numpy(), y),
        30,
    )
    model = LightGBMModel(booster, FEATS, "sha", "mem")
    R = df.iloc[:40]
    Q = df.iloc[700:712]
    ours = make_attributor(model, R).attribute(Q)
    for i in range(len(Q)):
        want = _brute_force_baseline_shapley(model.predict_margin, Q.iloc[[i]], R)
        np.testing.assert_allclose(ours[i], want, atol=1e-9)
    if params == {"use_missing": True}:
        np.testing.assert_allclose(ours, _shap_interventional(booster, R.to_numpy(), Q.to_numpy()), atol=1e-6)


def test_model_agnostic_path_is_exact_for_an_additive_model():
    """Stumps (max_depth=1) make an additive model, for which the permutation estimate is exact:
    φ_j(x) = mean_r [f(x) − f(x with x_j := r_j)]."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    df, y = _data(seed=3)
    df = df.fillna(0.0)
    est = HistGradientBoostingClassifier(max_depth=2, max_leaf_nodes=2, max_iter=30, random_state=0).fit(
        df, y
    )
    model = SklearnModel(est, FEATS, "sha", "mem")
    assert linear_structure(est, FEATS) is None and model_family(model) == "agnostic"
    R = df.iloc[:40]
    att = make_attributor(model, R, seed=1)
    assert att.method.startswith("permutation") and att.reference_size == 40
    Q = df.iloc[100:104]
    phi = att.attribute(Q)
    for i in range(len(Q)):
        x = Q.iloc[[i]]
        fx = model.predict_margin(x)[0]
        for j, f in enumerate(FEATS):
            rep = pd.concat([x] * len(R), ignore_index=True)
            rep[f] = R[f].to_numpy()
            assert phi[i, j] == pytest.approx(np.mean(fx - model.predict_margin(rep)), abs=1e-6)
        assert phi[i].sum() == pytest.approx(fx - model.predict_margin(R).mean(), abs=1e-6)


def test_xgboost_path_dependent_matches_shap():
    import xgboost as xgb

    from service.reasons.explainers import path_dependent_tree

    df, y = _data(seed=4)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "seed": 1},
        xgb.DMatrix(df.to_numpy(), label=y, feature_names=FEATS, missing=np.nan),
        25,
    )
    phi, base = path_dependent_tree(XGBoostModel(booster, FEATS, "sha", "mem"), df.iloc[:200])
    sv = np.asarray(_shap().TreeExplainer(booster).shap_values(df.iloc[:200].to_numpy()))
    np.testing.assert_allclose(phi, sv, atol=1e-5)
