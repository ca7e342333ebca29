"""Feature attributions of a model's raw margin (log-odds), by model family.

Sign convention: attributions are of the model's own raw margin (``ScoreModel.predict_margin``:
LightGBM/XGBoost raw score, scikit-learn ``decision_function``). Callers orient them toward the
adverse outcome (multiply by −1 when the spec says ``higher_is_safer``).

* **Trees** (LightGBM, XGBoost): interventional TreeSHAP against a reference set
  (:mod:`service.reasons._treeshap`, equal to ``shap.TreeExplainer(model, data=R,
  feature_perturbation="interventional")``), and path-dependent TreeSHAP for the global audit
  (LightGBM ``pred_contrib`` / XGBoost ``pred_contribs``, which is what shap delegates to).
* **Linear** (``LogisticRegression`` alone or after a ``ColumnTransformer`` of per-column
  transformers such as ``OneHotEncoder`` / ``StandardScaler``): exact. The margin is
  ``b + Σ_k β_k T_k(x)`` and every transformed column ``k`` belongs to one input feature, so the
  Shapley value of feature ``j`` against a reference set R is ``Σ_{k∈j} β_k (T_k(x) − mean_R T_k)``.
* **Anything else** (ONNX, other scikit-learn models): shap's ``PermutationExplainer`` on the
  margin with at most 100 reference rows (an estimate; seeded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from service.reasons._treeshap import InterventionalTreeShap, from_lightgbm, from_xgboost

_ELEMENTWISE = {
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "SimpleImputer",
    "OrdinalEncoder",
    "FunctionTransformer",
}
PERMUTATION_MAX_REFERENCE = 100


def model_family(model: Any) -> str:
    """``tree`` | ``linear`` | ``agnostic`` | ``none`` (a precomputed score column)."""
    kind = getattr(model, "kind", "")
    if kind in ("lightgbm", "xgboost"):
        return "tree"
    if kind == "score_column":
        return "none"
    if hasattr(model, "estimator") and linear_structure(model.estimator, list(model.features)) is not None:
        return "linear"
    return "agnostic"


# --------------------------------------------------------------------------- linear models


@dataclass
class LinearStructure:
    """``margin = intercept + transform(X) @ coef``; ``owner[k]`` is the input feature of column k."""

    pre: Any
    coef: np.ndarray
    intercept: float
    owner: np.ndarray

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        T = X.to_numpy(dtype="float64") if self.pre is None else self.pre.transform(X)
        if hasattr(T, "toarray"):
            T = T.toarray()
        return np.asarray(T, dtype="float64")


def _names(obj: Any) -> str:
    return type(obj).__name__


def _owners_of(trans: Any, cols: list[str], width: int) -> list[str] | None:
    """Input column of each output column of one ColumnTransformer entry, or None if not separable."""
    if isinstance(trans, str):
        if trans == "drop":
            return []
        return list(cols) if trans == "passthrough" and width == len(cols) else None
    steps = [s for _, s in trans.steps] if _names(trans) == "Pipeline" else [trans]
    if any(s == "passthrough" or s is None for s in steps):
        steps = [s for s in steps if s not in ("passthrough", None)]
    last = steps[-1] if steps else None
    head_ok = all(_names(s) in _ELEMENTWISE and not getattr(s, "add_indicator", False) for s in steps[:-1])
    if not head_ok or last is None:
        return None
    if _names(last) in _ELEMENTWISE and not getattr(last, "add_indicator", False):
        return list(cols) if width == len(cols) else None
    if _names(last) == "OneHotEncoder":
        names = list(last.get_feature_names_out(cols))
        out = []
        for nm in names:
            cands = [c for c in cols if nm.startswith(f"{c}_")]
            if not cands:
                return None
            out.append(max(cands, key=len))
        return out if len(out) == width else None
    return None


def linear_structure(est: Any, features: list[str]) -> LinearStructure | None:
    """Recognise a binary linear classifier (optionally after one ColumnTransformer); None otherwise."""
    pre = None
    final = est
    if _names(est) == "Pipeline":
        steps = [s for _, s in est.steps if s not in ("passthrough", None)]
        if len(steps) == 1:
            final = steps[0]
        elif len(steps) == 2 and _names(steps[0]) == "ColumnTransformer":
            pre, final = steps
        else:
            return None
    coef = getattr(final, "coef_", None)
    if (
        coef is None
        or not hasattr(final, "decision_function")
        or _names(final)
        not in ("LogisticRegression", "LogisticRegressionCV", "SGDClassifier", "LinearSVC", "RidgeClassifier")
    ):
        return None
    coef = np.asarray(coef, dtype="float64")
    if coef.ndim != 2 or coef.shape[0] != 1:
        return None
    index = {f: i for i, f in enumerate(features)}
    if pre is None:
        if coef.shape[1] != len(features):
            return None
        owner = np.arange(len(features))
    else:
        owners: list[int] = []
        for name, trans, cols in pre.transformers_:
            sl = pre.output_indices_[name]
            width = sl.stop - sl.start
            if width == 0:
                continue
            colnames = [
                features[c] if isinstance(c, int | np.integer) else str(c) for c in np.atleast_1d(cols)
            ]
            got = _owners_of(trans, colnames, width)
            if got is None or any(c not in index for c in got):
                return None
            owners.extend(index[c] for c in got)
        if len(owners) != coef.shape[1]:
            return None
        owner = np.asarray(owners)
    return LinearStructure(pre, coef[0], float(np.ravel(final.intercept_)[0]), owner)


# --------------------------------------------------------------------------- attributors


@dataclass
class Attributor:
    """Attributions of the raw margin against a fixed reference set.

    ``attribute(X)`` returns (n, p) values whose rows sum to ``margin(x) − expected_value``
    (exactly for trees and linear models, approximately for the permutation estimate).
    """

    method: str
    features: list[str]
    expected_value: float
    reference_size: int
    _fn: Any = field(repr=False, default=None)
    #: linear models only: the attributions from the pipeline's transformed matrix T (what
    #: ``attribute`` applies after ``LinearStructure.transform``), for callers that build T themselves
    from_transformed: Any = field(repr=False, default=None)

    def attribute(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self._fn(X[self.features]), dtype="float64")


def _tree_ensemble(model: Any) -> Any:
    if model.kind == "lightgbm":
        return from_lightgbm(model.booster)
    return from_xgboost(model.booster, list(model.features))


def _float_matrix(X: pd.DataFrame) -> np.ndarray:
    return X.to_numpy(dtype="float64", na_value=np.nan)


def make_attributor(
    model: Any,
    reference: pd.DataFrame,
    *,
    reference_weight: np.ndarray | None = None,
    seed: int = 0,
    players: np.ndarray | None = None,
) -> Attributor:
    """Build the attributor of ``model``'s raw margin against ``reference`` (rows of the model's features).

    With ``players`` ((p,) player index per feature) the attributions are per player: exact group
    Shapley values for trees (groups as players of the game) and linear models (where they equal
    the sums of the members' values); sums of per-feature estimates for the permutation path.
    """
    feats = list(model.features)
    R = reference[feats]
    family = model_family(model)
    P = None
    if players is not None:
        players = np.asarray(players, dtype=np.int64)
        P = np.zeros((len(feats), int(players.max()) + 1))
        P[np.arange(len(feats)), players] = 1.0
    if family == "tree":
        ens = InterventionalTreeShap(
            _tree_ensemble(model), _float_matrix(R), reference_weight=reference_weight, players=players
        )
        return Attributor(
            "interventional TreeSHAP" + (" (groups as players)" if players is not None else ""),
            feats,
            ens.expected_value,
            ens.reference_size,
            lambda X: ens.shap_values(_float_matrix(X)),
        )
    if family == "linear":
        lin = linear_structure(model.estimator, feats)
        assert lin is not None
        sign = 1.0 if getattr(model, "event_index", 1) == 1 else -1.0
        TR = lin.transform(R)
        w = None if reference_weight is None else np.asarray(reference_weight, dtype="float64")
        mean_t = np.average(TR, axis=0, weights=w)
        owner_m = np.zeros((lin.coef.size, len(feats)))
        owner_m[np.arange(lin.coef.size), lin.owner] = 1.0
        if P is not None:
            owner_m = owner_m @ P
        beta = lin.coef * sign

        def _from_t(T: np.ndarray) -> np.ndarray:
            return ((T - mean_t) * beta) @ owner_m

        def _lin(X: pd.DataFrame) -> np.ndarray:
            return _from_t(lin.transform(X))

        expected = float(sign * lin.intercept + mean_t @ beta)
        return Attributor("exact linear", feats, expected, int(R.shape[0]), _lin, _from_t)
    if family == "none":
        raise ValueError("a precomputed score column cannot be explained")
    att = _permutation(model, R, reference_weight, seed)
    if P is not None:
        inner = att._fn
        att._fn = lambda X: np.asarray(inner(X)) @ P
        att.method += " (group sums)"
    return att


def _permutation(model: Any, R: pd.DataFrame, reference_weight: np.ndarray | None, seed: int) -> Attributor:
    import shap

    feats = list(model.features)
    rng = np.random.default_rng(seed)
    if R.shape[0] > PERMUTATION_MAX_REFERENCE:
        p = None if reference_weight is None else reference_weight / reference_weight.sum()
        idx = np.sort(rng.choice(R.shape[0], PERMUTATION_MAX_REFERENCE, replace=False, p=p))
        R = R.iloc[idx]
    numeric = all(pd.api.types.is_numeric_dtype(R[c]) for c in feats)
    bg = _float_matrix(R) if numeric else R.to_numpy(dtype=object)
    dtypes = R.dtypes

    def margin(A: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(A, columns=feats).astype(dtypes.to_dict())
        return np.asarray(model.predict_margin(frame), dtype="float64")

    masker = shap.maskers.Independent(bg, max_samples=bg.shape[0])
    expl = shap.PermutationExplainer(margin, masker, seed=int(rng.integers(2**31 - 1)))
    expected = float(np.mean(margin(bg)))

    def _perm(X: pd.DataFrame) -> np.ndarray:
        A = _float_matrix(X) if numeric else X.to_numpy(dtype=object)
        return np.asarray(expl(A, max_evals=max(2 * len(feats) + 1, 10 * len(feats))).values, dtype="float64")

    return Attributor("permutation (shap.PermutationExplainer)", feats, expected, int(R.shape[0]), _perm)


def path_dependent_tree(model: Any, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Path-dependent TreeSHAP (what ``shap.TreeExplainer(model)`` returns): (values (n, p), base (n,))."""
    feats = list(model.features)
    if model.kind == "lightgbm":
        c = np.asarray(model.booster.predict(model.matrix(X), pred_contrib=True), dtype="float64")
        return c[:, :-1], c[:, -1]
    import xgboost as xgb

    dm = xgb.DMatrix(X[feats].to_numpy(dtype="float32", na_value=np.nan), feature_names=feats, missing=np.nan)
    c = np.asarray(model.booster.predict(dm, pred_contribs=True), dtype="float64")
    return c[:, :-1], c[:, -1]


__all__ = [
    "Attributor",
    "LinearStructure",
    "linear_structure",
    "make_attributor",
    "model_family",
    "path_dependent_tree",
]
