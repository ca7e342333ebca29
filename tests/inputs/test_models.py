"""Safe model loading: allow-listed skops, native GBM formats, ONNX; pickle only when allowed."""

from __future__ import annotations

import pickle
import shutil

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.linear_model import LogisticRegression

from service.errors import InputError, PickleRefusedError, UntrustedModelError
from service.inputs.models import detect_format, load_model
from tests.conftest import FIXTURES, run_cli
from tests.inputs._evil import SENTINEL_ENV, Evil, PickleBomb


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    y = (X["a"] + 0.5 * X["b"] + rng.normal(scale=0.7, size=400) > 0).astype(int)
    return X, y


def test_skops_logistic_pipeline_matches_sklearn(german_ctx):
    import skops.io as sio

    path = FIXTURES / "german_credit" / "model.skops"
    est = sio.load(path, trusted=[])
    m = load_model(path)
    frame = german_ctx.dev.frame
    np.testing.assert_allclose(
        m.predict_score(frame), est.predict_proba(frame[m.features])[:, 1], rtol=0, atol=0
    )
    assert m.kind == "skops"


def test_hostile_skops_is_refused_and_runs_no_code(tmp_path, monkeypatch):
    import skops.io as sio

    sentinel = tmp_path / "sentinel"
    monkeypatch.setenv(SENTINEL_ENV, str(sentinel))
    bad = tmp_path / "evil.skops"
    sio.dump({"model": Evil()}, bad)
    with pytest.raises(UntrustedModelError, match=r"tests\.inputs\._evil\.Evil"):
        load_model(bad)
    assert not sentinel.exists()
    # the same through the CLI: exit 2, the type named, nothing executed, nothing written
    spec = tmp_path / "spec.yaml"
    shutil.copy(FIXTURES / "german_credit" / "german_credit.csv", tmp_path / "g.csv")
    spec.write_text("model_name: x\ndataset: g.csv\nmodel: evil.skops\ntarget: label_bad\n", encoding="utf-8")
    res = run_cli("audit", str(spec), "--out", str(tmp_path / "out"), env={SENTINEL_ENV: str(sentinel)})
    assert res.returncode == 2, res.stderr
    assert "not on Assay's allow-list" in res.stderr and "Evil" in res.stderr
    assert "Traceback" not in res.stderr
    assert not sentinel.exists()
    assert not (tmp_path / "out" / "audit.json").exists()


def test_pickle_refused_without_flag_and_no_code_runs(tmp_path, toy):
    sentinel = tmp_path / "pickle-ran"
    bomb = tmp_path / "model.pkl"
    bomb.write_bytes(pickle.dumps(PickleBomb(str(sentinel))))
    assert detect_format(bomb) == "pickle"
    with pytest.raises(PickleRefusedError, match="--allow-pickle"):
        load_model(bomb)
    assert not sentinel.exists()
    # renamed to look like something else: still detected by content
    disguised = tmp_path / "model.onnx"
    disguised.write_bytes(bomb.read_bytes())
    with pytest.raises(PickleRefusedError):
        load_model(disguised)
    assert not sentinel.exists()


def test_pickle_loads_with_flag(tmp_path, toy):
    import joblib

    X, y = toy
    lr = LogisticRegression().fit(X, y)
    p = tmp_path / "lr.joblib"
    joblib.dump(lr, p)
    m = load_model(p, allow_pickle=True)
    np.testing.assert_allclose(m.predict_score(X), lr.predict_proba(X)[:, 1])


def test_lightgbm_text_model(tmp_path, toy):
    X, y = toy
    b = lgb.train({"objective": "binary", "verbosity": -1, "num_leaves": 4}, lgb.Dataset(X, y), 10)
    p = tmp_path / "m.txt"
    b.save_model(str(p))
    m = load_model(p)
    assert m.kind == "lightgbm" and m.features == ["a", "b", "c"]
    np.testing.assert_allclose(m.predict_score(X), b.predict(X.to_numpy()))
    np.testing.assert_allclose(m.predict_margin(X), b.predict(X.to_numpy(), raw_score=True))


@pytest.mark.parametrize("suffix", ["json", "ubj"])
def test_xgboost_models(tmp_path, toy, suffix):
    X, y = toy
    b = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=y), 10)
    p = tmp_path / f"m.{suffix}"
    b.save_model(str(p))
    m = load_model(p)
    assert m.kind == "xgboost"
    np.testing.assert_allclose(m.predict_score(X), b.predict(xgb.DMatrix(X)), rtol=1e-6)


def test_onnx_model_matches_sklearn(tmp_path, toy):
    from skl2onnx import to_onnx

    X, y = toy
    lr = LogisticRegression().fit(X.to_numpy(dtype="float32"), y)
    onx = to_onnx(lr, X.to_numpy(dtype="float32")[:1], options={id(lr): {"zipmap": False}})
    p = tmp_path / "m.onnx"
    p.write_bytes(onx.SerializeToString())
    with pytest.raises(InputError, match="feature_names"):
        load_model(p)
    m = load_model(p, features=["a", "b", "c"])
    np.testing.assert_allclose(
        m.predict_score(X), lr.predict_proba(X.to_numpy(dtype="float32"))[:, 1], atol=1e-6
    )


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "empty"), (b"hello world, not a model", "unrecognised model format")],
)
def test_bad_model_files(tmp_path, content, match):
    p = tmp_path / "m.bin"
    p.write_bytes(content)
    with pytest.raises(InputError, match=match):
        load_model(p)


def test_missing_model_file(tmp_path):
    with pytest.raises(InputError, match="model file not found"):
        load_model(tmp_path / "nope.skops")
