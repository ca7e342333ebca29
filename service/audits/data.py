"""Data audit (REGULATORY.md §(a) 4; EU AI Act Art 10(2)–(3)): shape, types, missingness,
duplicates, constant columns and a leakage screen.

Leakage screen: for each feature, the AUC of the feature alone against the target, folded so that
0.5 is no signal and 1.0 perfect separation (``max(AUC, 1 − AUC)``). Numeric features are ranked
on their values (quantile-binned to at most 1,000 cells on large data); categorical features on
their in-sample event rate per category, which overstates the signal of high-cardinality columns
(the screen flags candidates for a human to check; it is not a test).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from service.audits._stats import _f, auc_from_counts, score_table
from service.audits.context import AuditContext, SectionOutput
from service.findings import finding
from service.inputs.datasets import column_kind
from service.result import Finding, ResultModel


class ColumnProfile(ResultModel):
    name: str
    kind: str
    dtype: str
    is_feature: bool
    missing: int
    missing_rate: float
    n_unique: int
    constant: bool
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    top_values: dict[str, int] | None = None


class LeakageRow(ResultModel):
    feature: str
    auc: float | None
    flagged: bool


class DataSection(ResultModel):
    rows: int
    columns: int
    features: list[str]
    n_features: int
    target: str
    events: int
    event_rate: float
    types: dict[str, int]
    missingness: dict[str, float]
    duplicates: dict[str, int]
    constant_columns: list[str]
    column_profiles: list[ColumnProfile]
    leakage: list[LeakageRow]
    leakage_method: str
    oot_rows: int | None = None


def _folded_auc(values: pd.Series, y: np.ndarray, w: np.ndarray | None, kind: str) -> float | None:
    s = values
    ok = s.notna().to_numpy()
    if ok.sum() < 10:
        return None
    yy = y[ok]
    if yy.min() == yy.max():
        return None
    if kind == "numeric":
        x = pd.to_numeric(s[ok], errors="coerce").to_numpy(dtype="float64")
    else:
        codes, _ = pd.factorize(s[ok].astype(str))
        rate = np.bincount(codes, weights=yy) / np.bincount(codes)
        x = rate[codes]
    t = score_table(x, yy, sample_weight=None if w is None else w[ok], max_bins=1000)
    auc = float(auc_from_counts(t.pos_w, t.neg_w))
    return _f(max(auc, 1.0 - auc))


def run(ctx: AuditContext) -> SectionOutput:
    split = ctx.dev
    frame = split.frame
    policy = ctx.spec.policy
    feats = set(ctx.features)
    n = len(frame)
    profiles: list[ColumnProfile] = []
    types: dict[str, int] = {}
    constant: list[str] = []
    missingness: dict[str, float] = {}
    for col in frame.columns:
        s = frame[col]
        kind = column_kind(s)
        types[kind] = types.get(kind, 0) + 1
        miss = int(s.isna().sum())
        nun = int(s.nunique(dropna=True))
        is_const = nun <= 1
        if is_const:
            constant.append(str(col))
        missingness[str(col)] = miss / n
        prof = ColumnProfile(
            name=str(col),
            kind=kind,
            dtype=str(s.dtype),
            is_feature=col in feats,
            missing=miss,
            missing_rate=miss / n,
            n_unique=nun,
            constant=is_const,
        )
        if kind == "numeric" and miss < n:
            v = s.to_numpy(dtype="float64", na_value=np.nan)
            prof.min, prof.max, prof.mean = _f(np.nanmin(v)), _f(np.nanmax(v)), _f(np.nanmean(v))
        elif kind in ("categorical", "boolean"):
            vc = s.astype(str).where(s.notna(), None).value_counts().head(5)
            prof.top_values = {str(k): int(v) for k, v in vc.items()}
        profiles.append(prof)

    dup_rows = int(frame.duplicated().sum())
    dup_features = int(frame[ctx.features].duplicated().sum()) if ctx.features else 0
    leakage: list[LeakageRow] = []
    for f in ctx.features:
        kind = column_kind(frame[f])
        auc = _folded_auc(frame[f], split.y, split.weight, "numeric" if kind == "numeric" else "categorical")
        leakage.append(LeakageRow(feature=f, auc=auc, flagged=auc is not None and auc >= policy.leakage_auc))
    leakage.sort(key=lambda r: -(r.auc or 0.0))

    events = int(split.y.sum())
    section = DataSection(
        rows=n,
        columns=int(frame.shape[1]),
        features=list(ctx.features),
        n_features=len(ctx.features),
        target=ctx.spec.target,
        events=events,
        event_rate=events / n,
        types=types,
        missingness=missingness,
        duplicates={"rows": dup_rows, "feature_rows": dup_features},
        constant_columns=constant,
        column_profiles=profiles,
        leakage=leakage,
        leakage_method="single-feature AUC folded to >= 0.5; categorical features by in-sample event rate",
        oot_rows=ctx.oot.n if ctx.oot is not None else None,
    )
    return SectionOutput(section, _findings(section, ctx))


def _findings(sec: DataSection, ctx: AuditContext) -> list[Finding]:
    policy = ctx.spec.policy
    out: list[Finding] = []
    for row in sec.leakage:
        if row.flagged:
            out.append(
                finding(
                    "data",
                    "high",
                    f"Possible target leakage: {row.feature}",
                    f"'{row.feature}' alone separates events from non-events with AUC {row.auc:.3f}; "
                    "check that it is known at decision time",
                    metric="single_feature_auc",
                    value=row.auc,
                    policy=policy,
                    threshold_name="leakage_auc",
                )
            )
    for prof in sec.column_profiles:
        if prof.is_feature and prof.missing_rate > policy.missing_max:
            out.append(
                finding(
                    "data",
                    "low",
                    f"High missingness: {prof.name}",
                    f"{prof.missing_rate:.1%} of rows have no value for feature '{prof.name}'",
                    metric="missing_rate",
                    value=prof.missing_rate,
                    policy=policy,
                    threshold_name="missing_max",
                )
            )
    const_feats = [c for c in sec.constant_columns if c in set(sec.features)]
    if const_feats:
        out.append(
            finding(
                "data",
                "low",
                "Constant features",
                f"{len(const_feats)} model feature(s) take a single value and carry no information: "
                + ", ".join(const_feats[:10]),
                metric="constant_features",
                value=len(const_feats),
            )
        )
    if sec.duplicates["rows"]:
        out.append(
            finding(
                "data",
                "info",
                "Duplicate rows",
                f"{sec.duplicates['rows']} row(s) duplicate an earlier row exactly",
                metric="duplicate_rows",
                value=sec.duplicates["rows"],
            )
        )
    return out
