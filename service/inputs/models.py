"""Model loading without executing untrusted code (SPEC.md §4).

Formats: ``.skops`` (allow-listed scikit-learn types only), LightGBM model text, XGBoost JSON/UBJ,
ONNX (onnxruntime), or no model (``score.column``). Pickle/joblib only when the caller passes
``allow_pickle=True`` (the CLI's ``--allow-pickle``; never the HTTP API).

Every loader returns a :class:`ScoreModel`: ``predict_score(frame) -> ndarray`` gives the model's
probability of the adverse event (class 1 / the spec's ``event_value``) and ``predict_margin``
the log-odds where the format exposes it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from service.errors import InputError, PickleRefusedError, UntrustedModelError

_ALLOWLIST_FILE = Path(__file__).with_name("skops_allowlist.txt")
_PICKLE_PROTOCOL_BYTES = {b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"}


@runtime_checkable
class ScoreModel(Protocol):
    """What the audits see of a model, whatever its format."""

    kind: str
    features: list[str]
    sha256: str

    def predict_score(self, frame: pd.DataFrame) -> np.ndarray: ...

    def predict_margin(self, frame: pd.DataFrame) -> np.ndarray | None: ...


@cache
def skops_allowlist() -> frozenset[str]:
    """Types Assay trusts inside .skops files (one per line in skops_allowlist.txt)."""
    lines = _ALLOWLIST_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(ln.strip() for ln in lines if ln.strip() and not ln.startswith("#"))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-15, 1 - 1e-15)
    return np.log(q) - np.log1p(-q)


def _select_check(frame: pd.DataFrame, features: list[str], path: str) -> None:
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise InputError(
            f"the data lacks {len(missing)} feature(s) the model needs: {', '.join(missing[:10])}",
            file=path,
            field="features",
            expected="every model input feature as a column of the dataset",
        )


def _select(frame: pd.DataFrame, features: list[str], path: str) -> pd.DataFrame:
    _select_check(frame, features, path)
    return frame[features]


@dataclass
class SklearnModel:
    estimator: Any
    features: list[str]
    sha256: str
    path: str
    event_index: int = 1
    kind: str = "skops"

    def predict_score(self, frame: pd.DataFrame) -> np.ndarray:
        X = _select(frame, self.features, self.path)
        if hasattr(self.estimator, "predict_proba"):
            return np.asarray(self.estimator.predict_proba(X)[:, self.event_index], dtype="float64")
        return np.asarray(self.estimator.decision_function(X), dtype="float64")

    def predict_margin(self, frame: pd.DataFrame) -> np.ndarray | None:
        X = _select(frame, self.features, self.path)
        if hasattr(self.estimator, "decision_function"):
            m = np.asarray(self.estimator.decision_function(X), dtype="float64")
            return m if self.event_index == 1 else -m
        return _logit(self.predict_score(frame))


@dataclass
class LightGBMModel:
    booster: Any
    features: list[str]
    sha256: str
    path: str
    kind: str = "lightgbm"
    categories: dict[str, list[Any]] = field(default_factory=dict)  # pandas-categorical features

    def encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame with the model's pandas-categorical features replaced by LightGBM's codes.

        A model trained on pandas ``category`` columns stores each column's categories
        (``pandas_categorical`` in the model text); LightGBM scores a value by its position in that
        list, and an unseen or missing value as NaN (``lightgbm.basic._data_from_pandas``). Data read
        from CSV holds the raw labels, so they are mapped here the same way.
        """
        if not self.categories:
            return frame
        enc = {f: _category_codes(frame[f], cats) for f, cats in self.categories.items() if f in frame}
        return frame.assign(**enc)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The float64 feature matrix LightGBM scores (row-major, categorical features encoded)."""
        return _row_major(self.encode(frame), self.features, self.path)

    def predict_score(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(self.matrix(frame)), dtype="float64")

    def predict_margin(self, frame: pd.DataFrame) -> np.ndarray | None:
        return np.asarray(self.booster.predict(self.matrix(frame), raw_score=True), dtype="float64")

    def predict_score_and_margin(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(predict_score(frame), predict_margin(frame))`` from one pass over the trees.

        For the binary objective LightGBM's probability is ``1 / (1 + exp(−σ·raw))`` of the raw score
        (``BinaryLogloss::ConvertOutput``); it is computed here the same way, with the C library's
        ``exp`` as LightGBM calls it (numpy's SIMD ``exp`` differs in the last bit), and checked
        bit for bit against ``predict`` on the first rows. Other objectives predict twice.
        """
        X = self.matrix(frame)
        raw = np.asarray(self.booster.predict(X, raw_score=True), dtype="float64")
        sigma = _binary_sigmoid(self.booster)
        if sigma is not None:
            head = min(raw.size, 1000)
            try:
                prob = 1.0 / (1.0 + _c_exp((-sigma) * raw))
            except OverflowError:  # raw < -709: exp overflows where LightGBM's gives inf; rare
                prob = None
            if prob is not None and np.array_equal(prob[:head], self.booster.predict(X[:head])):
                return prob, raw
        return np.asarray(self.booster.predict(X), dtype="float64"), raw


def _row_major(frame: pd.DataFrame, features: list[str], path: str) -> np.ndarray:
    """``frame[features].to_numpy(dtype="float64", na_value=np.nan)``, but C-ordered and without the copy
    of ``frame[features]``: LightGBM reads the matrix row by row and is ~2x slower on the column-major
    array pandas returns for a frame of many columns (values are the same)."""
    _select_check(frame, features, path)
    if not frame.columns.is_unique:
        return _select(frame, features, path).to_numpy(dtype="float64", na_value=np.nan)
    try:
        cols = [frame[f].to_numpy(dtype="float64", na_value=np.nan) for f in features]
    except (TypeError, ValueError):  # let pandas raise its own message for the whole selection
        return _select(frame, features, path).to_numpy(dtype="float64", na_value=np.nan)
    if not cols:
        return np.empty((len(frame), 0), dtype="float64")
    return np.column_stack(cols)


def _category_codes(s: pd.Series, categories: list[Any]) -> np.ndarray:
    """Positions of ``s``'s values in ``categories`` as float64; unseen and missing values → NaN."""
    vals: pd.Series = s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s
    if all(isinstance(c, str) for c in categories) and not (
        pd.api.types.is_object_dtype(vals) or pd.api.types.is_string_dtype(vals)
    ):
        num = pd.to_numeric(vals, errors="coerce")
        as_int = num.dropna()
        if len(as_int) and (as_int == as_int.round()).all():
            num = num.astype("Int64")
        vals = num.astype("string").astype(object).where(num.notna(), None)
    codes = pd.Categorical(vals, categories=categories).codes.astype("float64")
    codes[codes < 0] = np.nan
    return codes


def _c_exp(z: np.ndarray) -> np.ndarray:
    """Element-wise ``exp`` by the C library (``math.exp``), as compiled C++ ``std::exp`` computes it."""
    return np.fromiter(map(math.exp, z.tolist()), dtype="float64", count=z.size)


def _binary_sigmoid(booster: Any) -> float | None:
    """σ of a LightGBM model with the ``binary`` objective (``objective=binary sigmoid:σ``), else None."""
    try:
        header = booster.model_to_string(num_iteration=1).split("\nTree=", 1)[0]
    except Exception:
        return None
    for line in header.splitlines():
        if line.startswith("objective="):
            parts = line.removeprefix("objective=").split()
            if parts and parts[0] == "binary":
                for p in parts[1:]:
                    if p.startswith("sigmoid:"):
                        return float(p.removeprefix("sigmoid:"))
            return None
    return None


@dataclass
class XGBoostModel:
    booster: Any
    features: list[str]
    sha256: str
    path: str
    kind: str = "xgboost"

    def _dm(self, frame: pd.DataFrame) -> Any:
        import xgboost as xgb

        X = _select(frame, self.features, self.path).to_numpy(dtype="float32", na_value=np.nan)
        return xgb.DMatrix(X, feature_names=self.features, missing=np.nan)

    def predict_score(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(self._dm(frame)), dtype="float64")

    def predict_margin(self, frame: pd.DataFrame) -> np.ndarray | None:
        return np.asarray(self.booster.predict(self._dm(frame), output_margin=True), dtype="float64")


@dataclass
class OnnxModel:
    session: Any
    features: list[str]
    sha256: str
    path: str
    per_column_inputs: bool = False
    input_types: dict[str, str] = field(default_factory=dict)
    kind: str = "onnx"

    def predict_score(self, frame: pd.DataFrame) -> np.ndarray:
        X = _select(frame, self.features, self.path)
        if self.per_column_inputs:
            feeds = {}
            for c in self.features:
                t = self.input_types.get(c, "tensor(float)")
                col = X[c].to_numpy()
                if "string" in t:
                    feeds[c] = col.astype(str).reshape(-1, 1)
                elif "int64" in t:
                    feeds[c] = col.astype("int64").reshape(-1, 1)
                elif "double" in t:
                    feeds[c] = col.astype("float64").reshape(-1, 1)
                else:
                    feeds[c] = col.astype("float32").reshape(-1, 1)
        else:
            name = self.session.get_inputs()[0].name
            feeds = {name: X.to_numpy(dtype="float32", na_value=np.nan)}
        outputs = self.session.run(None, feeds)
        return _onnx_event_probability(outputs, self.path)

    def predict_margin(self, frame: pd.DataFrame) -> np.ndarray | None:
        return _logit(self.predict_score(frame))


def _onnx_event_probability(outputs: list[Any], path: str) -> np.ndarray:
    for out in outputs[::-1]:  # classifiers put probabilities last
        if isinstance(out, list) and out and isinstance(out[0], dict):  # ZipMap
            keys = sorted(out[0].keys())
            key = 1 if 1 in keys else keys[-1]
            return np.array([row[key] for row in out], dtype="float64")
        arr = np.asarray(out)
        if arr.dtype.kind == "f":
            if arr.ndim == 2 and arr.shape[1] == 2:
                return arr[:, 1].astype("float64")
            if arr.ndim == 2 and arr.shape[1] == 1:
                return arr[:, 0].astype("float64")
            if arr.ndim == 1:
                return arr.astype("float64")
    raise InputError(
        "the ONNX model produced no probability output",
        file=path,
        field="model",
        expected="a binary classifier with an (n, 2) probability output or a single score output",
    )


def _sha256(path: Path) -> str:
    from service.inputs.datasets import sha256_file

    return sha256_file(path)


def detect_format(path: Path) -> str:
    """skops | lightgbm | xgboost-json | xgboost-ubj | onnx | pickle, from the content."""
    with path.open("rb") as fh:
        head = fh.read(4096)
    if head[:2] == b"PK":
        return "skops"
    if head[:2] in _PICKLE_PROTOCOL_BYTES or path.suffix.lower() in {".pkl", ".pickle", ".joblib"}:
        return "pickle"
    text = head.decode("latin-1")
    if text.startswith("tree\n") or text.startswith("tree\r\n") or "\nversion=v" in text[:200]:
        return "lightgbm"
    if text.lstrip().startswith("{") and '"learner"' in text:
        return "xgboost-json"
    if path.suffix.lower() == ".ubj" or head[:1] == b"{" and b"learner" in head[:64]:
        return "xgboost-ubj"
    if path.suffix.lower() == ".onnx" or b"onnx" in head[:64].lower() or head[:1] == b"\x08":
        return "onnx"
    if path.suffix.lower() == ".json":
        return "xgboost-json"
    raise InputError(
        "unrecognised model format",
        file=str(path),
        field="model",
        expected="a .skops file, a LightGBM model text file, an XGBoost JSON/UBJ model or an ONNX model",
    )


def load_model(
    path: str | Path,
    *,
    features: list[str] | None = None,
    event_value: Any = 1,
    allow_pickle: bool = False,
) -> ScoreModel:
    """Load a model file safely and wrap it as a :class:`ScoreModel`."""
    p = Path(path)
    if not p.exists():
        raise InputError(
            "model file not found", file=str(p), field="model", expected="an existing model file"
        )
    if p.stat().st_size == 0:
        raise InputError("the model file is empty", file=str(p), field="model")
    fmt = detect_format(p)
    digest = _sha256(p)
    if fmt == "pickle":
        if not allow_pickle:
            raise PickleRefusedError(str(p))
        import joblib

        est = joblib.load(p)  # the user vouched for this file with --allow-pickle
        return _wrap_sklearn(est, features, digest, str(p), event_value, kind="pickle")
    if fmt == "skops":
        return _load_skops(p, features, digest, event_value)
    if fmt == "lightgbm":
        return _load_lightgbm(p, features, digest)
    if fmt.startswith("xgboost"):
        return _load_xgboost(p, features, digest)
    return _load_onnx(p, features, digest)


def _load_skops(p: Path, features: list[str] | None, digest: str, event_value: Any) -> ScoreModel:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=p)
    except Exception as exc:
        raise InputError(f"not a readable .skops file ({exc})", file=str(p), field="model") from None
    refused = [t for t in untrusted if t not in skops_allowlist()]
    if refused:
        raise UntrustedModelError(str(p), refused)
    try:
        est = sio.load(p, trusted=list(untrusted))
    except Exception as exc:
        raise InputError(f"the .skops file could not be loaded ({exc})", file=str(p), field="model") from None
    return _wrap_sklearn(est, features, digest, str(p), event_value, kind="skops")


def _wrap_sklearn(
    est: Any, features: list[str] | None, digest: str, path: str, event_value: Any, *, kind: str
) -> SklearnModel:
    if not (hasattr(est, "predict_proba") or hasattr(est, "decision_function")):
        raise InputError(
            f"the model object ({type(est).__name__}) has neither predict_proba nor decision_function",
            file=path,
            field="model",
            expected="a fitted scikit-learn classifier or pipeline",
        )
    names = features or [str(c) for c in getattr(est, "feature_names_in_", [])]
    if not names:
        raise InputError(
            "the model does not record its input feature names",
            file=path,
            field="features",
            expected="a model fitted on a DataFrame, or the spec's 'features' list",
        )
    classes = list(getattr(est, "classes_", [0, 1]))
    idx = 1
    for i, c in enumerate(classes):
        if str(c) == str(event_value):
            idx = i
    return SklearnModel(est, names, digest, path, event_index=idx, kind=kind)


def _load_lightgbm(p: Path, features: list[str] | None, digest: str) -> LightGBMModel:
    import lightgbm as lgb

    try:
        booster = lgb.Booster(model_file=str(p))
    except Exception as exc:
        raise InputError(f"not a readable LightGBM model ({exc})", file=str(p), field="model") from None
    names = features or list(booster.feature_name())
    return LightGBMModel(booster, names, digest, str(p), categories=_lightgbm_categories(booster, p))


def _lightgbm_categories(booster: Any, p: Path) -> dict[str, list[Any]]:
    """Feature → categories for a model trained on pandas ``category`` columns (else empty)."""
    cats = getattr(booster, "pandas_categorical", None) or []
    if not cats:
        return {}
    names = list(booster.feature_name())
    idx = booster.params.get("categorical_feature") or []
    if isinstance(idx, int | str):
        idx = [idx]
    cols = [names[int(i)] if not isinstance(i, str) or i.isdigit() else i for i in idx]
    if len(cols) != len(cats) or any(c not in names for c in cols):
        raise InputError(
            f"the model stores categories for {len(cats)} pandas-categorical column(s) but names "
            f"{len(cols)} categorical feature(s) ({', '.join(map(str, cols)) or 'none'})",
            file=str(p),
            field="model",
            expected="a model text saved by LightGBM after training on a pandas DataFrame",
        )
    return {c: list(v) for c, v in zip(cols, cats, strict=True)}


def _load_xgboost(p: Path, features: list[str] | None, digest: str) -> XGBoostModel:
    import xgboost as xgb

    booster = xgb.Booster()
    try:
        booster.load_model(str(p))
    except Exception as exc:
        raise InputError(f"not a readable XGBoost model ({exc})", file=str(p), field="model") from None
    names = features or list(booster.feature_names or [])
    if not names:
        raise InputError(
            "the XGBoost model does not record feature names",
            file=str(p),
            field="features",
            expected="a model trained with feature names, or the spec's 'features' list",
        )
    return XGBoostModel(booster, names, digest, str(p))


def _load_onnx(p: Path, features: list[str] | None, digest: str) -> OnnxModel:
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise InputError(f"not a readable ONNX model ({exc})", file=str(p), field="model") from None
    inputs = sess.get_inputs()
    meta = sess.get_modelmeta().custom_metadata_map or {}
    if len(inputs) > 1:
        names = [i.name for i in inputs]
        return OnnxModel(sess, features or names, digest, str(p), True, {i.name: i.type for i in inputs})
    names = features or json.loads(meta.get("feature_names", "[]"))
    if not names:
        raise InputError(
            "the ONNX model has one tensor input and no feature_names metadata",
            file=str(p),
            field="features",
            expected="the spec's 'features' list giving the column order of the input tensor",
        )
    return OnnxModel(sess, list(names), digest, str(p))


@dataclass
class ScoreColumn:
    """No model: the dataset carries a precomputed score."""

    column: str
    features: list[str]
    sha256: str = ""
    kind: str = "score_column"

    def predict_score(self, frame: pd.DataFrame) -> np.ndarray:
        return pd.to_numeric(frame[self.column], errors="coerce").to_numpy(dtype="float64")

    def predict_margin(self, frame: pd.DataFrame) -> np.ndarray | None:
        return None


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


__all__ = [
    "LightGBMModel",
    "OnnxModel",
    "ScoreColumn",
    "ScoreModel",
    "SklearnModel",
    "XGBoostModel",
    "detect_format",
    "load_model",
    "skops_allowlist",
]
