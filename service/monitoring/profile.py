"""Reference profiles: the development data reduced once to compact, versioned, hashed statistics.

A monitoring window is compared with the profile only; the reference data are never re-read.

Per numeric feature: the unique reference deciles ``e1<…<ek`` and the reference counts in the bins
(−∞,e1], (e1,e2], …, (ek,∞) (SPEC.md §3 PSI convention, :func:`service.audits._stats.decile_edges`);
a distribution sketch for KS and Wasserstein: the exact empirical CDF (sorted unique values and the
cumulative share at each) when the reference has at most ``exact_max_unique`` distinct values, else
``sketch_size`` quantiles at p = 0, 1/(K−1), …, 1 (a fixed-size quantile sketch; KS then carries an
approximation error of at most 1/(K−1)); missing count, mean and population standard deviation.
Per categorical feature: counts per reference category (current rows in other categories fall in one
"unseen" bin). The score gets a numeric profile; each protected attribute its group shares,
favorable rates and AIR (favorable_rate(group) / favorable_rate(reference), 29 CFR 1607.4(D)).

The profile's ``sha256`` is the hash of its canonical JSON without that field, so a stored profile
can be checked before reuse (SR 26-2 expects ongoing-monitoring inputs to be reproducible).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from service.audits._stats import _f, bin_counts, decile_edges
from service.errors import InputError
from service.result import ResultModel

PROFILE_VERSION = "1"
SKETCH_SIZE = 1001
EXACT_MAX_UNIQUE = 2001
UNSEEN = "__unseen__"
MISSING_LABEL = "__missing__"


class NumericProfile(ResultModel):
    kind: Literal["numeric"] = "numeric"
    n: float
    missing: float
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    edges: list[float]
    counts: list[float]
    sketch_values: list[float]
    sketch_cdf: list[float]
    sketch_exact: bool


class CategoricalProfile(ResultModel):
    kind: Literal["categorical"] = "categorical"
    n: float
    missing: float
    categories: list[str]
    counts: list[float]


class GroupProfile(ResultModel):
    n: float
    share: float
    favorable_rate: float | None
    air: float | None


class AttributeProfile(ResultModel):
    reference: str
    groups: dict[str, GroupProfile]


class ReferenceProfile(ResultModel):
    version: str = PROFILE_VERSION
    created_at: str
    source: dict[str, Any]
    n_rows: int
    weighted: bool
    psi_floor: float = 1e-4
    n_bins: int = 10
    features: dict[str, NumericProfile | CategoricalProfile]
    score: NumericProfile | None = None
    adverse_rate: float | None = None
    event_rate: float | None = None
    fairness: dict[str, AttributeProfile] = {}
    sha256: str = ""

    def canonical_json(self) -> bytes:
        body = self.model_dump(mode="json", exclude={"sha256"})
        return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()

    def seal(self) -> ReferenceProfile:
        self.sha256 = hashlib.sha256(self.canonical_json()).hexdigest()
        return self

    def verify(self) -> bool:
        return self.sha256 == hashlib.sha256(self.canonical_json()).hexdigest()


# --------------------------------------------------------------------------- column kinds


def feature_kind(s: pd.Series) -> Literal["numeric", "categorical"] | None:
    """numeric | categorical; None for dates (not profiled)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return None
    if pd.api.types.is_bool_dtype(s):
        return "categorical"
    if pd.api.types.is_numeric_dtype(s):
        return "numeric"
    return "categorical"


def numeric_values(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def category_labels(s: pd.Series) -> pd.Series:
    """Categories as text (integral floats as integers), missing as NaN."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        v = s.astype("float64")
        return v.map(lambda x: np.nan if pd.isna(x) else (str(int(x)) if float(x).is_integer() else f"{x:g}"))
    return s.astype(str).where(s.notna(), np.nan)


# --------------------------------------------------------------------------- building


def sketch(
    x: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    sketch_size: int = SKETCH_SIZE,
    exact_max_unique: int = EXACT_MAX_UNIQUE,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(values, cdf, exact): the reference ECDF exactly, or a K-point quantile sketch of it."""
    ok = np.isfinite(x)
    v = x[ok]
    w = None if sample_weight is None else sample_weight[ok]
    if v.size == 0:
        return np.array([]), np.array([]), True
    uniq, inv = np.unique(v, return_inverse=True)
    if uniq.size <= exact_max_unique:
        cnt = np.bincount(inv, weights=w, minlength=uniq.size).astype("float64")
        cdf = np.cumsum(cnt) / cnt.sum()
        cdf[-1] = 1.0
        return uniq, cdf, True
    p = np.linspace(0.0, 1.0, sketch_size)
    if w is None:
        q = np.quantile(v, p)
    else:  # weighted quantiles by the inverted weighted CDF
        order = np.argsort(v, kind="mergesort")
        cw = np.cumsum(w[order]) / w.sum()
        q = v[order][np.minimum(np.searchsorted(cw, p, side="left"), v.size - 1)]
    vals, first_last = np.unique(q, return_index=False, return_inverse=True)
    cdf = np.zeros(vals.size)
    np.maximum.at(cdf, first_last, p)  # duplicated quantiles: the ECDF at a value is the largest p
    cdf[-1] = 1.0
    return vals, cdf, False


def numeric_profile(
    x: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    n_bins: int = 10,
    sketch_size: int = SKETCH_SIZE,
    exact_max_unique: int = EXACT_MAX_UNIQUE,
) -> NumericProfile:
    x = np.asarray(x, dtype="float64")
    w = None if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    ok = np.isfinite(x)
    ww = np.ones_like(x) if w is None else w
    n = float(ww.sum())
    missing = float(ww[~ok].sum())
    edges = decile_edges(x, n_bins=n_bins) if w is None else _weighted_deciles(x, w, n_bins)
    counts = bin_counts(x, edges, sample_weight=w)
    vals, cdf, exact = sketch(x, sample_weight=w, sketch_size=sketch_size, exact_max_unique=exact_max_unique)
    mean = std = lo = hi = None
    if ok.any():
        sw = float(ww[ok].sum())
        m = float((ww[ok] * x[ok]).sum() / sw)
        mean, std = m, float(np.sqrt((ww[ok] * (x[ok] - m) ** 2).sum() / sw))
        lo, hi = float(x[ok].min()), float(x[ok].max())
    return NumericProfile(
        n=n,
        missing=missing,
        mean=_f(mean),
        std=_f(std),
        min=lo,
        max=hi,
        edges=edges.tolist(),
        counts=counts.tolist(),
        sketch_values=vals.tolist(),
        sketch_cdf=cdf.tolist(),
        sketch_exact=exact,
    )


def _weighted_deciles(x: np.ndarray, w: np.ndarray, n_bins: int) -> np.ndarray:
    ok = np.isfinite(x)
    v, ww = x[ok], w[ok]
    if v.size == 0:
        return np.array([])
    order = np.argsort(v, kind="mergesort")
    cw = np.cumsum(ww[order]) / ww.sum()
    p = np.linspace(0, 1, n_bins + 1)[1:-1]
    return np.unique(v[order][np.minimum(np.searchsorted(cw, p, side="left"), v.size - 1)])


def category_counts(s: pd.Series, sample_weight: np.ndarray | None = None) -> tuple[dict[str, float], float]:
    """(weighted count per category label, weighted missing count); labels only the distinct values."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    ok = codes >= 0
    cnt = np.bincount(codes[ok], weights=None if w is None else w[ok], minlength=len(uniques))
    missing = float((~ok).sum() if w is None else w[~ok].sum())
    labels = category_labels(pd.Series(uniques, dtype=s.dtype if len(uniques) else object))
    out: dict[str, float] = {}
    for lab, c in zip(labels, cnt, strict=True):
        if isinstance(lab, str):
            out[lab] = out.get(lab, 0.0) + float(c)
        else:
            missing += float(c)
    return out, missing


def categorical_profile(s: pd.Series, *, sample_weight: np.ndarray | None = None) -> CategoricalProfile:
    counts, missing = category_counts(s, sample_weight)
    cats = sorted(counts)
    n = float(len(s) if sample_weight is None else np.asarray(sample_weight, dtype="float64").sum())
    return CategoricalProfile(n=n, missing=missing, categories=cats, counts=[counts[c] for c in cats])


def fairness_profile(
    codes: np.ndarray,
    groups: list[str],
    reference: str,
    adverse: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
) -> AttributeProfile:
    """Group shares, favorable rates and AIR (vs ``reference``) of one protected attribute."""
    w = np.ones(codes.size) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    ok = codes >= 0
    k = len(groups)
    n = np.bincount(codes[ok], weights=w[ok], minlength=k)
    fav = np.bincount(codes[ok], weights=(w * ~adverse.astype(bool))[ok], minlength=k)
    total = n.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, fav / n, np.nan)
    r = groups.index(reference)
    out = {}
    for i, g in enumerate(groups):
        air = rate[i] / rate[r] if np.isfinite(rate[r]) and rate[r] > 0 else np.nan
        out[g] = GroupProfile(
            n=float(n[i]),
            share=float(n[i] / total) if total else 0.0,
            favorable_rate=_f(rate[i]),
            air=_f(air),
        )
    return AttributeProfile(reference=reference, groups=out)


def build_profile(
    frame: pd.DataFrame,
    features: list[str],
    *,
    score: np.ndarray | None = None,
    adverse: np.ndarray | None = None,
    y: np.ndarray | None = None,
    protected: dict[str, Any] | None = None,
    sample_weight: np.ndarray | None = None,
    kinds: dict[str, str] | None = None,
    source: dict[str, Any] | None = None,
    sketch_size: int = SKETCH_SIZE,
    exact_max_unique: int = EXACT_MAX_UNIQUE,
) -> ReferenceProfile:
    """Profile the reference data once (see the module docstring for what is kept).

    ``protected`` maps attribute name → :class:`~service.audits.context.ProtectedGroups`
    (hard codes are used); ``kinds`` overrides the inferred numeric/categorical kind per feature.
    """
    kinds = dict(kinds or {})
    feats: dict[str, NumericProfile | CategoricalProfile] = {}
    for f in features:
        if f not in frame.columns:
            raise InputError(
                f"feature '{f}' is not in the reference data",
                field="features",
                expected=f"one of the columns: {', '.join(map(str, frame.columns[:20]))}",
            )
        kind = kinds.get(f) or feature_kind(frame[f])
        if kind is None:
            continue
        kinds[f] = kind
        if kind == "numeric":
            feats[f] = numeric_profile(
                numeric_values(frame[f]),
                sample_weight=sample_weight,
                sketch_size=sketch_size,
                exact_max_unique=exact_max_unique,
            )
        else:
            feats[f] = categorical_profile(frame[f], sample_weight=sample_weight)
    w = np.ones(len(frame)) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    prof = ReferenceProfile(
        created_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        source=dict(source or {}),
        n_rows=len(frame),
        weighted=sample_weight is not None,
        features=feats,
    )
    if score is not None:
        prof.score = numeric_profile(
            np.asarray(score, dtype="float64"),
            sample_weight=sample_weight,
            sketch_size=sketch_size,
            exact_max_unique=exact_max_unique,
        )
    if adverse is not None:
        prof.adverse_rate = float((w * adverse).sum() / w.sum())
        for name, pg in (protected or {}).items():
            prof.fairness[name] = fairness_profile(
                pg.codes, pg.groups, pg.reference, adverse, sample_weight=sample_weight
            )
    if y is not None:
        prof.event_rate = float((w * y).sum() / w.sum())
    return prof.seal()


# --------------------------------------------------------------------------- storage


def save_profile(profile: ReferenceProfile, path: Path) -> None:
    """Write the sealed profile as JSON (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(profile.model_dump_json(indent=None).encode())
    tmp.replace(path)


def load_profile(data: str | bytes | Path, *, source: str = "profile") -> ReferenceProfile:
    """Read a stored profile and check its version and hash."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    try:
        prof = ReferenceProfile.model_validate_json(raw)
    except Exception as exc:
        raise InputError(f"not a reference profile ({str(exc).splitlines()[0]})", file=source) from None
    if prof.version != PROFILE_VERSION:
        raise InputError(
            f"profile version {prof.version!r} is not supported",
            file=source,
            field="version",
            expected=f"version {PROFILE_VERSION!r} (rebuild the profile from the reference data)",
        )
    if not prof.verify():
        raise InputError(
            "the profile's sha256 does not match its content (edited or corrupted)",
            file=source,
            field="sha256",
            expected="an unmodified profile written by Assay",
        )
    return prof


__all__ = [
    "AttributeProfile",
    "CategoricalProfile",
    "GroupProfile",
    "NumericProfile",
    "ReferenceProfile",
    "build_profile",
    "categorical_profile",
    "category_counts",
    "category_labels",
    "fairness_profile",
    "feature_kind",
    "load_profile",
    "numeric_profile",
    "numeric_values",
    "save_profile",
    "sketch",
]
