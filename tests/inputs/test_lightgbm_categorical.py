"""LightGBM models trained on pandas ``category`` columns score raw CSV labels exactly as LightGBM's
own pandas path does (codes by the stored ``pandas_categorical`` lists, unseen and missing → NaN)."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from service.config import load_spec
from service.errors import InputError
from service.inputs.models import load_model
from service.inputs.prepare import prepare
from service.reasons.explainers import make_attributor, path_dependent_tree


@pytest.fixture(scope="module")
def cat_model(tmp_path_factory):
    rng = np.random.default_rng(5)
    n = 4000
    grade = rng.choice(list("ABCDEFG"), n)
    home = rng.choice(["RENT", "OWN", "MORTGAGE"], n)
    x = rng.normal(size=n)
    logit = -1.2 + 0.8 * x + 0.35 * (np.searchsorted(list("ABCDEFG"), grade) - 3) + 0.5 * (home == "RENT")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    train = pd.DataFrame({"x": x, "grade": pd.Categorical(grade), "home": pd.Categorical(home)})
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 7, "seed": 1, "deterministic": True},
        lgb.Dataset(train, label=y),
        num_boost_round=30,
    )
    d = tmp_path_factory.mktemp("lgbcat")
    booster.save_model(str(d / "model.txt"))
    raw = pd.DataFrame({"x": x, "grade": grade, "home": home, "bad": y})
    raw.loc[5, "grade"] = "Z"  # unseen label
    raw.loc[6, "home"] = None  # missing
    raw.to_csv(d / "apps.csv", index=False)
    spec = {
        "model_name": "lgb-categorical",
        "dataset": "apps.csv",
        "model": "model.txt",
        "target": "bad",
        "score": {"threshold": 0.5},
    }
    (d / "spec.json").write_text(json.dumps(spec))
    # LightGBM's own pandas path on the same rows: category dtype with the training categories
    ref = raw[["x", "grade", "home"]].copy()
    for c in ("grade", "home"):
        ref[c] = pd.Categorical(ref[c], categories=train[c].cat.categories)
    return d, booster, ref


def test_scores_equal_lightgbm_pandas_path(cat_model):
    d, booster, ref = cat_model
    ctx = prepare(load_spec(d / "spec.json")).context
    assert np.array_equal(ctx.dev.score, booster.predict(ref))
    assert ctx.model.categories == {"grade": list("ABCDEFG"), "home": ["MORTGAGE", "OWN", "RENT"]}


def test_path_dependent_contributions_equal_lightgbm(cat_model):
    d, booster, ref = cat_model
    model = load_model(d / "model.txt")
    frame = pd.read_csv(d / "apps.csv")
    values, base = path_dependent_tree(model, frame)
    expected = booster.predict(ref, pred_contrib=True)
    assert np.allclose(values, expected[:, :-1], atol=1e-12)
    assert np.allclose(values.sum(axis=1) + base, booster.predict(ref, raw_score=True), atol=1e-9)


def test_interventional_reasons_refuse_categorical_splits_by_name(cat_model):
    d, _, _ = cat_model
    model = load_model(d / "model.txt")
    frame = pd.read_csv(d / "apps.csv")
    with pytest.raises(InputError, match="categorical splits"):
        make_attributor(model, frame.iloc[:100])


def test_integer_labels_in_csv_match_string_categories(tmp_path):
    """Categories stored as text ("1", "2") match a CSV column that pandas read as integers."""
    rng = np.random.default_rng(2)
    n = 2000
    code = rng.choice(["1", "2", "3"], n)
    y = (rng.random(n) < np.where(code == "3", 0.6, 0.2)).astype(int)
    train = pd.DataFrame({"code": pd.Categorical(code), "x": rng.normal(size=n)})
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_leaves": 4}, lgb.Dataset(train, y), 10)
    booster.save_model(str(tmp_path / "m.txt"))
    model = load_model(tmp_path / "m.txt")
    as_int = pd.DataFrame({"code": code.astype(int), "x": train["x"]})
    assert np.array_equal(model.predict_score(as_int), booster.predict(train))
