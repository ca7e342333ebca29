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

from service.audits._stats import _f, _score_table, auc_from_counts, first_of_runs, quantile_edges
from service.audits.context import AuditContext, SectionOutput
from service.findings import finding
from service.inputs.datasets import column_kind
from service.result import Finding, ResultModel

LEAKAGE_BINS = 1000  # numeric features with more distinct values are ranked in quantile cells


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


def _leakage(
    values: pd.Series, y: np.ndarray, w: np.ndarray | None, kind: str
) -> tuple[float | None, int | None]:
    """(folded single-feature AUC, distinct non-missing values when the cell table counted them)."""
    s = values
    ok = s.notna().to_numpy()
    if ok.sum() < 10:
        return None, None
    yy = y[ok]
    if yy.min() == yy.max():
        return None, None
    if kind == "numeric":
        x = pd.to_numeric(s[ok], errors="coerce").to_numpy(dtype="float64")
    else:
        codes, _ = pd.factorize(s[ok].astype(str))
        rate = np.bincount(codes, weights=yy) / np.bincount(codes)
        x = rate[codes]
    distinct: int | None
    if w is None and not np.isnan(x).any():
        pos, neg, distinct = _cell_counts(x, yy.astype(bool), LEAKAGE_BINS)
    else:
        t, distinct = _score_table(x, yy, None if w is None else w[ok], LEAKAGE_BINS)
        pos, neg = t.pos_w, t.neg_w
    auc = float(auc_from_counts(pos, neg))
    # distinct floats of a float column are its distinct values; int → float may merge huge ints
    exact_count = kind == "numeric" and isinstance(s.dtype, np.dtype) and s.dtype.kind == "f"
    return _f(max(auc, 1.0 - auc)), distinct if exact_count else None


def _cell_counts(x: np.ndarray, y: np.ndarray, max_bins: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The event and non-event counts of ``score_table(x, y, max_bins=max_bins)`` (as floats, empty
    cells dropped) and the number of distinct values, for NaN-free unweighted ``x``.

    The same cells, counted from sorted copies (all rows, events) at the cells' upper bounds instead
    of a per-row cell index: a cell holds the values in (previous bound, bound], as ``searchsorted``
    with ``side="left"`` assigns them in ``score_table``.
    """
    srt = np.sort(x)
    new = first_of_runs(srt)
    distinct = int(np.count_nonzero(new))
    if distinct <= max_bins:
        bounds, tail = srt[new], False
    else:
        bounds, tail = quantile_edges(srt, max_bins), True
    events = np.sort(x[y])
    cum_all = np.searchsorted(srt, bounds, side="right")
    cum_pos = np.searchsorted(events, bounds, side="right")
    if tail:  # the last bin: above the last edge
        cum_all = np.append(cum_all, srt.size)
        cum_pos = np.append(cum_pos, events.size)
    total = np.diff(cum_all, prepend=0)
    pos = np.diff(cum_pos, prepend=0)
    keep = total > 0
    return pos[keep].astype("float64"), (total - pos)[keep].astype("float64"), distinct


# splitmix64 constants (Steele et al. 2014): a cheap, well-mixed 64-bit row key
_K1, _K2, _K3 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _value_keys(s: pd.Series) -> np.ndarray:
    """One uint64 per row, equal wherever ``DataFrame.duplicated`` sees equal values (collisions allowed)."""
    dt = s.dtype
    if isinstance(dt, np.dtype) and dt.kind == "f":
        x = s.to_numpy(dtype="float64") + 0.0  # a new array; -0.0 + 0.0 == 0.0 (pandas: -0.0 == 0.0)
        x[np.isnan(x)] = np.nan  # every NaN alike, as pandas treats them
        return x.view(np.uint64)
    if isinstance(dt, np.dtype) and dt.kind in "iubmM":
        return s.to_numpy().astype(np.int64).view(np.uint64)
    codes, _ = pd.factorize(s)  # pandas' own equality (objects, categoricals, extension types)
    return codes.astype(np.int64).view(np.uint64)


def _row_keys(frame: pd.DataFrame, columns: list, h: np.ndarray | None = None) -> np.ndarray:
    """A 64-bit key per row from its values in ``columns`` (continuing from key ``h``), equal for rows
    that ``DataFrame.duplicated`` sees as equal."""
    h = np.zeros(len(frame), dtype=np.uint64) if h is None else h
    for c in columns:
        z = (h ^ _value_keys(frame[c])) * _K1
        z = (z ^ (z >> np.uint64(30))) * _K2
        z = (z ^ (z >> np.uint64(27))) * _K3
        h = z ^ (z >> np.uint64(31))
    return h


def _duplicate_rows(frame: pd.DataFrame, columns: list, keys: np.ndarray | None = None) -> int:
    """``int(frame[columns].duplicated().sum())`` without pandas factorising every column of every row.

    Rows are hashed to a 64-bit key from their values (``keys``, or ``_row_keys``); a row whose key no
    other row shares repeats no row, so pandas' exact ``duplicated`` runs on the rest only (usually few).
    """
    if not columns:
        return 0
    h = _row_keys(frame, columns) if keys is None else keys
    candidates = np.flatnonzero(pd.Series(h).duplicated(keep=False).to_numpy())
    if candidates.size == 0:
        return 0
    return int(frame.iloc[candidates][list(columns)].duplicated().sum())


def run(ctx: AuditContext) -> SectionOutput:
    split = ctx.dev
    frame = split.frame
    policy = ctx.spec.policy
    feats = set(ctx.features)
    n = len(frame)
    kinds = {col: column_kind(frame[col]) for col in frame.columns}
    # the leakage screen first: its score tables count the distinct values of float features on the way
    leakage: list[LeakageRow] = []
    distinct: dict[str, int] = {}
    for f in ctx.features:
        kind = kinds[f]
        auc, n_distinct = _leakage(
            frame[f], split.y, split.weight, "numeric" if kind == "numeric" else "categorical"
        )
        if n_distinct is not None:
            distinct[f] = n_distinct
        leakage.append(LeakageRow(feature=f, auc=auc, flagged=auc is not None and auc >= policy.leakage_auc))
    leakage.sort(key=lambda r: -(r.auc or 0.0))

    profiles: list[ColumnProfile] = []
    types: dict[str, int] = {}
    constant: list[str] = []
    missingness: dict[str, float] = {}
    for col in frame.columns:
        s = frame[col]
        kind = kinds[col]
        types[kind] = types.get(kind, 0) + 1
        miss = int(s.isna().sum())
        nun = distinct[col] if col in distinct else int(s.nunique(dropna=True))
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

    # one key pass: the feature columns' keys, then the other columns mixed into them
    feat_keys = _row_keys(frame, list(ctx.features))
    others = [c for c in frame.columns if c not in feats]
    dup_features = _duplicate_rows(frame, list(ctx.features), feat_keys) if ctx.features else 0
    dup_rows = _duplicate_rows(frame, list(frame.columns), _row_keys(frame, others, feat_keys))

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
