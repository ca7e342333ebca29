"""The adverse-action reason engine (Regulation B, 12 CFR 1002.9(b)(2); REGULATORY.md §(c).3).

For each applicant the engine

1. scores the row and applies the spec's decision rule (adverse when ``score >= threshold`` for
   ``higher_is_riskier``, ``score < threshold`` for ``higher_is_safer``); knockout rules decline
   regardless of the score (comment 9(b)(2)-8);
2. for a row declined by the score, attributes the model's raw margin **oriented toward the adverse
   outcome** against a **reference set**: ``marginal`` (default; comment 9(b)(2)-5 method 1) = the
   favorable applicants whose score is within the first decile of distance from the threshold, or
   ``all`` (method 2) = every development applicant. Interventional TreeSHAP for trees, exact for
   linear models (:mod:`service.reasons.explainers`); attributions sum to ``f(x) − mean_R f``;
3. groups before ranking: with ``reasons.grouping: sum`` (default) a reason group's contribution is
   the **sum** of its features' attributions (catalogue ``groups``); with ``partition`` each group is
   one player of the game and gets its exact group Shapley value (the Owen value of the quotient
   game: exact for trees and linear models; a sum of per-feature estimates on the permutation path).
   Protected attributes (catalogue ``excluded``) and features the proxy audit flagged
   (``blocked_features``) contribute to no group (in ``partition`` they are players of their own);
4. keeps groups with a positive (adverse) contribution, ranks them (ties broken by catalogue order),
   and returns at most ``max_reasons``: the knockout reasons first, then the model's.

Favorable applicants get no reasons. Every record carries the reference-set version (a hash of
the reference rows and method) and the model's sha256, for record retention (12 CFR 1002.12).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from service.errors import InputError
from service.reasons._compiled import CompiledLinear, compile_linear
from service.reasons.catalogue import Catalogue
from service.reasons.explainers import Attributor, make_attributor, model_family

MARGINAL_DECILE = 0.10
TIE_DECIMALS = 12


@dataclass
class ReferenceSet:
    """The rows attributions are measured against, with a content version."""

    method: str
    rows: pd.DataFrame
    weight: np.ndarray | None
    version: str
    description: str

    @property
    def size(self) -> int:
        return int(self.rows.shape[0])


def reference_set(
    frame: pd.DataFrame,
    score: np.ndarray,
    *,
    features: list[str],
    threshold: float,
    direction: str,
    method: str = "marginal",
    weight: np.ndarray | None = None,
) -> ReferenceSet:
    """Select the reference applicants (comment 9(b)(2)-5 method 1 ``marginal`` or method 2 ``all``)."""
    score = np.asarray(score, dtype="float64")
    adverse = score >= threshold if direction == "higher_is_riskier" else score < threshold
    if method == "all":
        keep = np.ones(score.size, dtype=bool)
        desc = f"all {score.size} development applicants (comment 9(b)(2)-5 method 2)"
    else:
        fav = ~adverse
        if not fav.any():
            raise InputError(
                "no development applicant is on the favorable side of the threshold, so there is no "
                "marginal reference set",
                field="reasons.reference",
                expected="a threshold that approves some development applicants, or reference: all",
            )
        dist = np.abs(score - threshold)
        cut = float(np.quantile(dist[fav], MARGINAL_DECILE))
        keep = fav & (dist <= cut)
        desc = (
            f"{int(keep.sum())} favorable development applicants within the first decile of distance from "
            f"the threshold (|score − {threshold:g}| ≤ {cut:.6g}; comment 9(b)(2)-5 method 1)"
        )
    rows = frame.loc[keep, features].reset_index(drop=True)
    w = None if weight is None else np.asarray(weight, dtype="float64")[keep]
    h = hashlib.sha256(method.encode())
    h.update(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())
    if w is not None:
        h.update(w.tobytes())
    return ReferenceSet(method, rows, w, f"{method}-{h.hexdigest()[:16]}", desc)


@dataclass
class Reasons:
    """Batch output: decisions, scores, group contributions (rows declined by the score) and records."""

    records: list[dict[str, Any]]
    adverse: np.ndarray
    score_adverse: np.ndarray
    group_contrib: np.ndarray  # (n, g), zero for rows not declined by the score
    codes: list[str] = field(default_factory=list)


class ReasonEngine:
    """Adverse-action reasons for one model, catalogue and reference set (see the module docstring)."""

    def __init__(
        self,
        model: Any,
        catalogue: Catalogue,
        reference: ReferenceSet,
        *,
        threshold: float,
        direction: str = "higher_is_riskier",
        max_reasons: int = 4,
        blocked_features: list[str] | None = None,
        id_column: str | None = None,
        seed: int = 0,
        grouping: str = "sum",
    ) -> None:
        if model_family(model) == "none":
            raise InputError(
                "adverse-action reasons need a model; a precomputed score column cannot be explained",
                field="model",
                expected="a model file (skops, LightGBM, XGBoost, ONNX)",
            )
        self.model = model
        self.catalogue = catalogue
        self.reference = reference
        self.threshold = float(threshold)
        self.direction = direction
        self.sign = 1.0 if direction == "higher_is_riskier" else -1.0
        self.max_reasons = int(max_reasons)
        self.features = list(model.features)
        self.blocked = sorted(set(blocked_features or []) & set(self.features))
        self.id_column = id_column
        M = catalogue.matrix(self.features)
        for f in self.blocked:
            M[self.features.index(f), :] = 0.0
        self.codes = [g.code for g in catalogue.groups]
        self.statements = [g.statement for g in catalogue.groups]
        self.grouping = grouping
        players = None
        if grouping == "partition":
            # each group is one player; excluded and blocked features are players of their own
            ng = len(self.codes)
            players = np.empty(len(self.features), dtype=np.int64)
            nxt = ng
            for j in range(len(self.features)):
                hit = np.nonzero(M[j])[0]
                if hit.size:
                    players[j] = hit[0]
                else:
                    players[j] = nxt
                    nxt += 1
            M = np.zeros((nxt, ng))
            M[np.arange(ng), np.arange(ng)] = 1.0
        self.membership = M
        self.attributor: Attributor = make_attributor(
            model, reference.rows, reference_weight=reference.weight, seed=seed, players=players
        )
        self.model_sha256 = str(getattr(model, "sha256", ""))
        self.known_columns: list[str] = []
        # exact-linear pipelines compiled to numpy (tens of microseconds per applicant instead of
        # milliseconds of sklearn validation); None = always the general path
        self.compiled: CompiledLinear | None = (
            compile_linear(model) if self.attributor.from_transformed is not None else None
        )
        if self.compiled is not None and self.compiled.features != self.features:
            self.compiled = None

    @property
    def method(self) -> str:
        return self.attributor.method

    def transformed(self, frame: pd.DataFrame) -> np.ndarray | None:
        """The compiled pipeline's design matrix for ``frame``, or None (use the general path)."""
        if self.compiled is None:
            return None
        try:
            return self.compiled.transform(frame)
        except KeyError:  # a missing column: the general path raises the error that names it
            return None

    def _adverse(self, score: np.ndarray) -> np.ndarray:
        adverse = score >= self.threshold if self.direction == "higher_is_riskier" else score < self.threshold
        return np.asarray(adverse, dtype=bool)

    def _score(self, frame: pd.DataFrame, T: np.ndarray | None) -> np.ndarray:
        if T is not None and self.compiled is not None:
            return self.compiled.score(T)
        return np.asarray(self.model.predict_score(frame), dtype="float64")

    def _contributions_from(self, T: np.ndarray) -> np.ndarray:
        phi = self.sign * np.asarray(self.attributor.from_transformed(T), dtype="float64")
        return phi @ self.membership

    def decide(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(score, declined-by-score) for ``frame``."""
        score = self._score(frame, self.transformed(frame))
        return score, self._adverse(score)

    def group_contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, g) reason-group attributions toward the adverse outcome (sum of member features)."""
        if len(frame) == 0:
            return np.zeros((0, len(self.codes)))
        T = self.transformed(frame)
        if T is not None:
            return self._contributions_from(T)
        phi = self.sign * self.attributor.attribute(frame)
        return phi @ self.membership

    def rank(self, contrib: np.ndarray) -> list[int]:
        """Indices of groups with a positive contribution, largest first, ties by catalogue order."""
        c = np.round(contrib, TIE_DECIMALS)
        pos = np.nonzero(c > 0)[0]
        return [int(k) for k in sorted(pos, key=lambda k: (-c[k], k))]

    def explain(self, frame: pd.DataFrame) -> Reasons:
        """Reasons for every row of ``frame`` (validated columns; see :func:`check_applicants`)."""
        frame = frame.reset_index(drop=True)
        n = len(frame)
        T = self.transformed(frame)  # one pass over the rows serves the scores and the attributions
        score = self._score(frame, T)
        by_score = self._adverse(score)
        knock = np.zeros((n, len(self.catalogue.knockouts)), dtype=bool)
        for k, rule in enumerate(self.catalogue.knockouts):
            knock[:, k] = rule.evaluate(frame)
        G = np.zeros((n, len(self.codes)))
        rows = np.nonzero(by_score)[0]
        if rows.size:
            G[rows] = (
                self._contributions_from(T[rows])
                if T is not None
                else self.group_contributions(frame.iloc[rows])
            )
        ids = (
            frame[self.id_column].tolist()
            if self.id_column and self.id_column in frame.columns
            else [None] * n
        )
        return self._reasons(score, by_score, knock, G, ids)

    def explain_records(self, applicants: list[dict[str, Any]], *, allowed: set[str]) -> Reasons | None:
        """:meth:`explain` for JSON objects without building a DataFrame, or None when it cannot.

        The fast path needs a compiled pipeline, no knockout rules, every record carrying every
        model feature and only ``allowed`` keys, plain values (see
        :meth:`CompiledLinear.transform_records`) and ids of one plain type. Otherwise the caller
        builds the frame and calls :meth:`explain`, which gives the same records (or the error that
        names the offending column).
        """
        if self.compiled is None or self.catalogue.knockouts or not applicants:
            return None
        need = len(self.features)
        for r in applicants:
            if len(r) < need or not allowed.issuperset(r):
                return None
        n = len(applicants)
        ids: list[Any] = [None] * n
        idc = self.id_column
        if idc and any(idc in r for r in applicants):
            if not all(idc in r for r in applicants):
                return None
            ids = [r[idc] for r in applicants]
            kind = type(ids[0])
            if kind not in (str, int, float) or any(type(v) is not kind for v in ids):
                return None  # pandas would convert a mixed column: let it
            if kind is int and any(not -(2**63) <= v < 2**63 for v in ids):
                return None
        T = self.compiled.transform_records(applicants)  # a missing feature gives None
        if T is None:
            return None
        score = self.compiled.score(T)
        by_score = self._adverse(score)
        G = np.zeros((n, len(self.codes)))
        rows = np.nonzero(by_score)[0]
        if rows.size:
            G[rows] = self._contributions_from(T[rows])
        return self._reasons(score, by_score, np.zeros((n, 0), dtype=bool), G, ids)

    def _reasons(
        self, score: np.ndarray, by_score: np.ndarray, knock: np.ndarray, G: np.ndarray, ids: list[Any]
    ) -> Reasons:
        adverse = by_score | knock.any(axis=1)
        records: list[dict[str, Any]] = []
        for i in range(len(score)):
            reasons: list[dict[str, Any]] = []
            if adverse[i]:
                for kk in np.nonzero(knock[i])[0]:
                    rule = self.catalogue.knockouts[int(kk)]
                    reasons.append({"code": rule.code, "statement": rule.statement, "contribution": None})
                if by_score[i]:
                    for g in self.rank(G[i]):
                        reasons.append(
                            {
                                "code": self.codes[g],
                                "statement": self.statements[g],
                                "contribution": float(G[i, g]),
                            }
                        )
            records.append(
                {
                    "row": i,
                    "id": _plain(ids[i]),
                    "decision": "adverse" if adverse[i] else "favorable",
                    "score": float(score[i]),
                    "reasons": reasons[: self.max_reasons],
                    "reference_version": self.reference.version,
                    "model_sha256": self.model_sha256,
                }
            )
        return Reasons(records, adverse, by_score, G, self.codes)


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def allowed_columns(spec: Any, features: list[str], catalogue: Catalogue) -> list[str]:
    """Columns an applicants file may carry besides the model features."""
    extra = [spec.id_column, spec.target, spec.weight_column, spec.date_column, spec.score.column]
    for p in spec.protected:
        extra.append(p.column)
        if p.bisg is not None:
            extra += [p.bisg.surname, p.bisg.geography]
    extra += [k.column for k in catalogue.knockouts]
    return [c for c in dict.fromkeys(features + [c for c in extra if c]) if c]


def check_applicants(
    frame: pd.DataFrame, *, features: list[str], allowed: list[str], required: list[str], source: str
) -> None:
    """Missing model/knockout columns and unknown columns are errors that name the column."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(
            f"the applicants file lacks {len(missing)} column(s) the model or the knockout rules need: "
            + ", ".join(missing[:10]),
            file=source,
            field=missing[0],
            expected="every model feature (and knockout column) as a column",
        )
    unknown = [str(c) for c in frame.columns if c not in set(allowed)]
    if unknown:
        raise InputError(
            f"the applicants file has {len(unknown)} column(s) the audit spec does not know: "
            + ", ".join(unknown[:10]),
            file=source,
            field=unknown[0],
            expected="only the model features, the columns the spec names and the development dataset's "
            "columns (remove the others or list them in the spec)",
        )
    if len(frame) == 0:
        raise InputError(
            "the applicants file has no rows", file=source, field="(rows)", expected="at least one applicant"
        )


__all__ = ["ReasonEngine", "ReferenceSet", "Reasons", "allowed_columns", "check_applicants", "reference_set"]
