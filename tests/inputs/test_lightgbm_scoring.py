"""LightGBM scoring in one pass: probabilities and raw margins bit-identical to ``Booster.predict``;
the row-major input matrix equal to ``DataFrame.to_numpy``; other objectives fall back to two
predictions; scoring errors keep pandas' message."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from service.errors import InputError
from service.inputs.models import LightGBMModel, _binary_sigmoid, _row_major, load_model

PARAMS = {"verbosity": -1, "num_leaves": 15, "deterministic": True, "num_threads": 1, "seed": 3}


@pytest.fixture(scope="module")
def mixed():
    rng = np.random.default_rng(21)
    n = 3000
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "k": rng.poisson(2.0, n),
            "flag": rng.random(n) < 0.3,
            "c": pd.Categorical.from_codes(rng.integers(0, 5, n), categories=list(range(5))),
            "f32": rng.normal(size=n).astype("float32"),
        }
    )
    frame.loc[rng.random(n) < 0.1, "x"] = np.nan
    frame.loc[rng.random(n) < 0.05, "c"] = np.nan
    logit = (
        -1
        + frame["x"].fillna(0) * 2
        + 0.4 * frame["k"]
        - frame["flag"]
        + 0.3 * frame["c"].astype(float).fillna(2)
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame, y


def test_row_major_equals_dataframe_to_numpy(mixed):
    frame, _ = mixed
    feats = ["f32", "c", "x", "flag", "k"]
    X = _row_major(frame, feats, "mem")
    assert X.flags["C_CONTIGUOUS"] and X.dtype == np.float64
    np.testing.assert_array_equal(X, frame[feats].to_numpy(dtype="float64", na_value=np.nan))
    assert _row_major(frame, [], "mem").shape == (len(frame), 0)


def test_row_major_errors_are_pandas_errors():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    with pytest.raises(ValueError, match="could not convert"):
        _row_major(frame, ["a", "b"], "mem")
    with pytest.raises(InputError, match="lacks 1 feature"):
        _row_major(frame, ["a", "zz"], "mem")


@pytest.mark.parametrize("sigmoid", [1.0, 0.7])
def test_score_and_margin_in_one_pass_are_bit_identical(tmp_path, mixed, sigmoid):
    frame, y = mixed
    feats = list(frame.columns)
    X = frame.to_numpy(dtype="float64", na_value=np.nan)
    ds = lgb.Dataset(X, y, feature_name=feats, categorical_feature=[feats.index("c")])
    b = lgb.train({**PARAMS, "objective": "binary", "sigmoid": sigmoid}, ds, 40)
    path = tmp_path / "m.txt"
    b.save_model(str(path))
    m = load_model(path)
    assert _binary_sigmoid(m.booster) == sigmoid
    prob, raw = m.predict_score_and_margin(frame)
    np.testing.assert_array_equal(prob, b.predict(X))
    np.testing.assert_array_equal(raw, b.predict(X, raw_score=True))
    np.testing.assert_array_equal(prob, m.predict_score(frame))
    np.testing.assert_array_equal(raw, m.predict_margin(frame))


@pytest.mark.parametrize("objective", ["cross_entropy", "regression"])
def test_other_objectives_predict_twice(mixed, objective):
    frame, y = mixed
    X = frame.to_numpy(dtype="float64", na_value=np.nan)
    b = lgb.train({**PARAMS, "objective": objective}, lgb.Dataset(X, y, feature_name=list(frame.columns)), 20)
    m = LightGBMModel(b, list(frame.columns), "sha", "mem")
    assert _binary_sigmoid(b) is None
    prob, raw = m.predict_score_and_margin(frame)
    np.testing.assert_array_equal(prob, b.predict(X))
    np.testing.assert_array_equal(raw, b.predict(X, raw_score=True))


def test_extreme_margins_fall_back_to_predict(mixed):
    frame, y = mixed
    X = frame.to_numpy(dtype="float64", na_value=np.nan)
    b = lgb.train({**PARAMS, "objective": "binary"}, lgb.Dataset(X, y, feature_name=list(frame.columns)), 5)
    m = LightGBMModel(b, list(frame.columns), "sha", "mem")

    class Shifted:
        """The booster with raw scores pushed below -709, where math.exp overflows."""

        def predict(self, data, raw_score=False):
            r = b.predict(data, raw_score=True) - 800.0
            with np.errstate(over="ignore"):
                return r if raw_score else 1.0 / (1.0 + np.exp(-r))

        def model_to_string(self, num_iteration=None):
            return b.model_to_string(num_iteration=num_iteration)

    m.booster = Shifted()
    prob, raw = m.predict_score_and_margin(frame)
    np.testing.assert_array_equal(prob, Shifted().predict(X))
    assert (raw < -709).all()
