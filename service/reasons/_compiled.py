"""A fitted linear scikit-learn pipeline compiled into plain numpy transforms (the reasons fast path).

``Pipeline(ColumnTransformer(...), LogisticRegression)`` costs milliseconds per call for one
applicant, nearly all of it input validation repeated in every step. For the pipelines whose maths
is elementwise, :func:`compile_linear` rebuilds the design matrix directly:

* ``OneHotEncoder``: a dict lookup per value (the same equality sklearn's encoder uses for object
  columns), unknown categories all zeros under ``handle_unknown='ignore'``, ``drop`` honoured;
* ``StandardScaler``: ``x -= mean_``, then ``x /= scale_`` (sklearn's own float64 operations, so the
  transformed values are bit-identical);
* ``SimpleImputer`` on numeric columns: ``statistics_`` where the value is missing;
* ``passthrough`` (an identity ``FunctionTransformer`` once fitted) / ``drop``;

then ``margin = T @ coef_.T + intercept_`` and, for a binary ``LogisticRegression``, the event
probability ``expit(margin)`` (``1 - expit`` for class 0), as ``predict_proba`` computes it.

Anything the compiler does not recognise gives ``None`` at compile time, and any input it cannot
transform with certainty (a missing categorical value, a non-numeric value in a numeric column, an
unknown category under ``handle_unknown='error'``, a non-finite result, ...) gives ``None`` at call
time: the caller then uses the scikit-learn pipeline, which stays the reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

_MAX_EXACT_INT = 2**53  # ints beyond this do not survive the float64 conversion sklearn makes


def _name(obj: Any) -> str:
    return type(obj).__name__


def _is_nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _plain_number(v: Any) -> bool:
    """An int or float JSON would give (bools and ints beyond float64's exact range excluded)."""
    t = type(v)
    if t is float:
        return True
    return t is int and -_MAX_EXACT_INT <= v <= _MAX_EXACT_INT


@dataclass
class _Numeric:
    """Columns copied as float64, then imputed and/or standardised in sklearn's order of operations."""

    cols: list[str]
    out: slice
    ops: list[tuple[str, Any, Any]]  # ("impute", missing_values, statistics) | ("scale", mean, scale)

    def fill(self, T: np.ndarray, X: np.ndarray) -> None:
        for op, a, b in self.ops:
            if op == "impute":
                mask = np.isnan(X) if a is None else np.equal(X, a)
                if mask.any():
                    X = np.where(mask, b, X)
            else:
                if a is not None:
                    X -= a
                if b is not None:
                    X /= b
        T[:, self.out] = X


@dataclass
class _OneHot:
    """One dict per input column: value -> output column (None = encoded as all zeros, e.g. dropped)."""

    cols: list[str]
    out_start: int
    tables: list[dict[Any, int | None]]
    numeric: list[bool]  # per column: categories are numbers (else strings)
    ignore_unknown: bool

    def fill(self, T: np.ndarray, columns: Sequence[Sequence[Any]]) -> bool:
        for table, vals in zip(self.tables, columns, strict=True):
            for i, v in enumerate(vals):
                k = table.get(v, -1)
                if k is None:
                    continue
                if k < 0:
                    if not self.ignore_unknown:
                        return False
                    continue
                T[i, self.out_start + k] = 1.0
        return True


def _numeric_ops(steps: list[Any]) -> list[tuple[str, Any, Any]] | None:
    ops: list[tuple[str, Any, Any]] = []
    for s in steps:
        if _name(s) == "SimpleImputer":
            if getattr(s, "add_indicator", False):
                return None
            stats = np.asarray(s.statistics_, dtype="float64")
            if np.isnan(stats).any():  # all-missing columns at fit time change the width
                return None
            mv = s.missing_values
            if isinstance(mv, float) and math.isnan(mv):
                ops.append(("impute", None, stats))
            elif _plain_number(mv):
                ops.append(("impute", float(mv), stats))
            else:
                return None
        elif _name(s) == "FunctionTransformer" and s.func is None:
            continue  # the identity (how a fitted ColumnTransformer stores "passthrough")
        elif _name(s) == "StandardScaler":
            mean = np.asarray(s.mean_, dtype="float64") if s.with_mean else None
            scale = np.asarray(s.scale_, dtype="float64") if s.with_std else None
            ops.append(("scale", mean, scale))
        else:
            return None
    return ops


def _onehot(enc: Any, cols: list[str], start: int, width: int) -> _OneHot | None:
    if _name(enc) != "OneHotEncoder" or getattr(enc, "_infrequent_enabled", False):
        return None
    if np.dtype(enc.dtype) != np.float64 or enc.handle_unknown not in ("ignore", "error"):
        return None
    drop = getattr(enc, "drop_idx_", None)
    tables: list[dict[Any, int | None]] = []
    numeric: list[bool] = []
    offset = 0
    for j, cats in enumerate(enc.categories_):
        values = list(cats)
        if any(_is_nan(v) for v in values):
            return None
        if all(isinstance(v, str) for v in values):
            numeric.append(False)
        elif cats.dtype.kind in "iuf":
            numeric.append(True)
            values = [float(v) for v in values]
        else:
            return None
        d = None if drop is None or drop[j] is None else int(drop[j])
        table: dict[Any, int | None] = {}
        k = 0
        for c, v in enumerate(values):
            if c == d:
                table[v] = None
            else:
                table[v] = offset + k
                k += 1
        tables.append(table)
        offset += k
    if offset != width:
        return None
    return _OneHot(cols, start, tables, numeric, enc.handle_unknown == "ignore")


@dataclass
class CompiledLinear:
    """``transform`` (design matrix or None), ``margin`` and ``score`` of one fitted linear pipeline."""

    features: list[str]
    width: int
    numeric: list[_Numeric]
    onehot: list[_OneHot]
    coef_t: np.ndarray
    intercept: np.ndarray
    proba: bool  # score = event probability (LogisticRegression); else score = margin
    event_index: int

    @property
    def numeric_columns(self) -> list[str]:
        return [c for b in self.numeric for c in b.cols]

    def _finish(self, T: np.ndarray) -> np.ndarray | None:
        return T if np.isfinite(T).all() else None

    def transform(self, frame: pd.DataFrame) -> np.ndarray | None:
        """The pipeline's transformed matrix for ``frame`` (rows of the model features), or None."""
        n = len(frame)
        T = np.zeros((n, self.width))
        for b in self.numeric:
            sub = frame[b.cols]
            if not all(isinstance(dt, np.dtype) and dt.kind in "iuf" for dt in sub.dtypes):
                return None
            if any(dt.kind == "f" and dt != np.float64 for dt in sub.dtypes):
                return None  # float32 stays float32 through sklearn's scalers
            b.fill(T, sub.to_numpy(dtype="float64", copy=True))
        for h in self.onehot:
            columns = []
            for c, num in zip(h.cols, h.numeric, strict=True):
                s = frame[c]
                dt = s.dtype
                if num:
                    if not (isinstance(dt, np.dtype) and dt.kind in "iuf"):
                        return None
                    vals = s.to_numpy(dtype="float64").tolist()
                    if any(math.isnan(v) for v in vals):
                        return None
                else:
                    if not ((isinstance(dt, np.dtype) and dt.kind == "O") or isinstance(dt, pd.StringDtype)):
                        return None
                    vals = s.tolist()
                    if not all(isinstance(v, str) for v in vals):
                        return None
                columns.append(vals)
            if not h.fill(T, columns):
                return None
        return self._finish(T)

    def transform_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """The same matrix from JSON objects, without a DataFrame; None unless every value is plain.

        Plain: numbers (no bools, no nulls) for numeric columns and for number categories, strings
        for string categories, every feature present in every record.
        """
        n = len(records)
        T = np.zeros((n, self.width))
        try:
            for b in self.numeric:
                rows = [[r[c] for c in b.cols] for r in records]
                if not all(_plain_number(v) for row in rows for v in row):
                    return None
                b.fill(T, np.array(rows, dtype="float64").reshape(n, len(b.cols)))
            for h in self.onehot:
                columns = []
                for c, num in zip(h.cols, h.numeric, strict=True):
                    vals = [r[c] for r in records]
                    if num:
                        if not all(_plain_number(v) and not _is_nan(v) for v in vals):
                            return None
                        vals = [float(v) for v in vals]
                    elif not all(type(v) is str for v in vals):
                        return None
                    columns.append(vals)
                if not h.fill(T, columns):
                    return None
        except KeyError:
            return None
        return self._finish(T)

    def margin(self, T: np.ndarray) -> np.ndarray:
        """``decision_function``: ``T @ coef_.T + intercept_``."""
        return np.asarray(T @ self.coef_t + self.intercept, dtype="float64").reshape(-1)

    def score(self, T: np.ndarray) -> np.ndarray:
        """``SklearnModel.predict_score``: the event probability, or the margin without predict_proba."""
        d = self.margin(T)
        if not self.proba:
            return d
        p = expit(d)
        return p if self.event_index == 1 else 1 - p


def _entry(trans: Any, cols: list[str], start: int, width: int) -> _Numeric | _OneHot | None | str:
    """Compile one ColumnTransformer entry ("skip" for an empty one)."""
    if width == 0:
        return "skip"
    if isinstance(trans, str):
        if trans == "passthrough" and width == len(cols):
            return _Numeric(cols, slice(start, start + width), [])
        return None
    steps = [s for _, s in trans.steps] if _name(trans) == "Pipeline" else [trans]
    steps = [s for s in steps if s not in ("passthrough", None)]
    if not steps:
        return _Numeric(cols, slice(start, start + width), []) if width == len(cols) else None
    if _name(steps[-1]) == "OneHotEncoder":
        # an imputer in front changes only missing values, and a missing categorical value is
        # never transformed here (the caller falls back), so it is the identity on what we accept
        head = steps[:-1]
        if any(
            _name(s) != "SimpleImputer" or getattr(s, "add_indicator", False) or not _is_nan(s.missing_values)
            for s in head
        ):
            return None
        return _onehot(steps[-1], cols, start, width)
    ops = _numeric_ops(steps)
    if ops is None or width != len(cols):
        return None
    return _Numeric(cols, slice(start, start + width), ops)


def compile_linear(model: Any) -> CompiledLinear | None:
    """Compile ``model`` (a :class:`~service.inputs.models.SklearnModel`) or return None."""
    est = getattr(model, "estimator", None)
    if est is None or getattr(model, "kind", "") not in ("skops", "pickle"):
        return None
    features = [str(f) for f in model.features]
    pre = None
    final = est
    if _name(est) == "Pipeline":
        steps = [s for _, s in est.steps if s not in ("passthrough", None)]
        if len(steps) == 1:
            final = steps[0]
        elif len(steps) == 2 and _name(steps[0]) == "ColumnTransformer":
            pre, final = steps
        else:
            return None
    coef = getattr(final, "coef_", None)
    classes = getattr(final, "classes_", None)
    if coef is None or classes is None or len(classes) != 2 or np.asarray(coef).shape[0] != 1:
        return None
    has_proba = hasattr(est, "predict_proba")
    if has_proba and _name(final) not in ("LogisticRegression", "LogisticRegressionCV"):
        return None
    if not has_proba and _name(final) not in ("LinearSVC", "RidgeClassifier", "SGDClassifier"):
        return None
    coef_t = final.coef_.T
    if coef_t.dtype != np.float64:
        return None
    width = int(coef_t.shape[0])
    numeric: list[_Numeric] = []
    onehot: list[_OneHot] = []
    if pre is None:
        if width != len(features):
            return None
        numeric.append(_Numeric(features, slice(0, width), []))
    else:
        total = 0
        for name, trans, cols in pre.transformers_:
            sl = pre.output_indices_[name]
            names: list[str] = []
            for c in np.atleast_1d(cols) if not isinstance(cols, slice) else [None]:
                if c is None or isinstance(c, bool | np.bool_):
                    return None
                names.append(features[int(c)] if isinstance(c, int | np.integer) else str(c))
            if any(c not in features for c in names):
                return None
            got = _entry(trans, names, sl.start, sl.stop - sl.start)
            if got is None:
                return None
            if isinstance(got, _Numeric):
                numeric.append(got)
            elif isinstance(got, _OneHot):
                onehot.append(got)
            total += sl.stop - sl.start
        if total != width:
            return None
    return CompiledLinear(
        features,
        width,
        numeric,
        onehot,
        coef_t,
        np.asarray(final.intercept_),
        has_proba,
        int(getattr(model, "event_index", 1)),
    )


__all__ = ["CompiledLinear", "compile_linear"]
