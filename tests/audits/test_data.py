"""Data section on a frame with planted defects; every figure recomputed here with pandas/sklearn."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from service.audits import data
from service.config import load_spec
from service.inputs.prepare import prepare


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    rng = np.random.default_rng(11)
    n = 2000
    y = rng.binomial(1, 0.2, n)
    frame = pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.5, n).round(0),
            "dti": rng.uniform(0, 60, n).round(1),
            # leaks the outcome: recorded after the default (collections flag) with 2% noise
            "in_collections": np.where(rng.random(n) < 0.02, 1 - y, y),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "product": "card",  # constant
            "sex": rng.choice(["female", "male"], n),
            "bad": y,
        }
    )
    frame.loc[rng.random(n) < 0.35, "dti"] = np.nan  # 35% missing
    frame["score"] = np.clip(0.2 + 0.1 * rng.normal(size=n) + 0.2 * y, 0.001, 0.999)
    frame = pd.concat([frame, frame.iloc[:7]], ignore_index=True)  # 7 exact duplicate rows
    d = tmp_path_factory.mktemp("planted")
    frame.to_csv(d / "loans.csv", index=False)
    spec = {
        "model_name": "planted",
        "dataset": "loans.csv",
        "target": "bad",
        "event_value": 1,
        "features": ["income", "dti", "in_collections", "region", "product"],
        "score": {"column": "score", "direction": "higher_is_riskier", "threshold": 0.5},
        "protected": [{"name": "sex", "column": "sex", "reference": "male"}],
        "seed": 1,
    }
    (d / "spec.json").write_text(json.dumps(spec))
    ctx = prepare(load_spec(d / "spec.json")).context
    return frame, data.run(ctx)


def test_shape_types_and_events(planted):
    frame, out = planted
    sec = out.section
    assert (sec.rows, sec.columns) == frame.shape
    assert sec.events == int(frame["bad"].sum())
    assert sec.event_rate == pytest.approx(frame["bad"].mean())
    assert sec.n_features == 5


def test_missingness_duplicates_constant(planted):
    frame, out = planted
    sec = out.section
    for col in frame.columns:
        assert sec.missingness[col] == pytest.approx(frame[col].isna().mean())
    assert sec.duplicates["rows"] == int(frame.duplicated().sum()) >= 7
    assert sec.duplicates["feature_rows"] == int(frame[sec.features].duplicated().sum())
    assert "product" in sec.constant_columns and "income" not in sec.constant_columns
    titles = [f.title for f in out.findings]
    assert "High missingness: dti" in titles
    assert "Constant features" in titles
    assert "Duplicate rows" in titles


def test_leakage_screen_flags_the_planted_column_only(planted):
    frame, out = planted
    rows = {r.feature: r for r in out.section.leakage}
    auc = roc_auc_score(frame["bad"], frame["in_collections"])
    assert rows["in_collections"].auc == pytest.approx(max(auc, 1 - auc), abs=1e-12)
    assert rows["in_collections"].flagged
    ok = frame["dti"].notna()
    auc_dti = roc_auc_score(frame.loc[ok, "bad"], frame.loc[ok, "dti"])
    assert rows["dti"].auc == pytest.approx(max(auc_dti, 1 - auc_dti), abs=1e-12)
    assert not rows["dti"].flagged and not rows["income"].flagged
    leak = [f for f in out.findings if f.title.startswith("Possible target leakage")]
    assert [f.title for f in leak] == ["Possible target leakage: in_collections"]
    assert leak[0].severity == "high"


def test_profiles(planted):
    frame, out = planted
    prof = {p.name: p for p in out.section.column_profiles}
    assert prof["income"].mean == pytest.approx(frame["income"].mean())
    assert prof["dti"].max == pytest.approx(frame["dti"].max())
    assert prof["region"].top_values == {k: int(v) for k, v in frame["region"].value_counts().items()}
