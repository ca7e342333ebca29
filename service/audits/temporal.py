"""Temporal, out-of-time, economic-regime and stress validation (section ``temporal``).

REGULATORY.md §(a) 7 (out-of-time back-testing, vintage curves; SR 26-2 §V outcomes analysis, SR 11-7
as the legacy cross-reference: back-testing on "a sample time period not used in model development";
CRR Art 175 out-of-time testing), §(a) 8 (stability across sub-periods and regimes, macro stress;
SR 11-7 "a range of financial and economic conditions"), and §(d) (Out-of-time back-test,
Vintage analysis, Stress / regime, Fairness drift).

What is computed (all on the development sample and, when given, the out-of-time sample pooled,
each row keeping its split label):

* **Periods** (``spec.date_column``): rows are grouped by calendar month (``2008-07``), quarter
  (``2008-Q3``) or year (``2008``); ``period: auto`` picks year when the dates span at least 6 years,
  quarter when at least 18 months, else month. Per period: n, events, event rate, adverse rate,
  mean score, AUC / Gini / KS (points from ``performance.score_metrics``) with 95% percentile
  CIs from a count bootstrap on a table of at most 200 score cells, shifted onto the exact point
  estimate (see ``_replicates``; this keeps 1M rows × 40 quarters inside seconds),
  calibration-in-the-large (observed / mean predicted event rate, with the one-sided Jeffreys test
  p = F_Beta(D+½, N−D+½)(PD) (ECB 2019) and, when unweighted, the two-sided exact binomial test),
  PSI of the risk score against the development sample (SPEC.md §3 convention:
  Σ (a − e)·ln(a/e) over the development deciles), and AIR per protected attribute
  (AIR = favorable rate of the group / favorable rate of the reference group, weighted by
  ``ProtectedGroups.membership``). A period with fewer than ``temporal.min_period_rows`` rows
  reports n and events only and says "too small"; AUC/KS need at least 5 events and 5 non-events;
  AIR needs ``policy.min_group_size`` in the group and in the reference group.
* **Change points** in the period event rate: binary segmentation with a quasi-binomial
  likelihood-ratio test (see :mod:`service.audits._temporal_changepoints`).
* **Out-of-time** (``oot_dataset`` or ``--oot-after``): every metric on development vs out-of-time
  with the difference (out-of-time − development), a 95% CI from independent count bootstraps of
  the two samples, and a two-sided bootstrap p-value (event and adverse rates: two-proportion z /
  Fisher exact test).
* **Regimes**: each row is labelled with the regime window containing its date. Windows are
  calendar days **inclusive of both the start and the end date** (a row dated on ``end`` is inside;
  the day after is outside). Default: NBER US recessions since 1980, peak month to trough month
  (first day of the peak month to the last day of the trough month). Per regime: the period
  metrics, and the difference against the rows outside every regime with its CI and p-value.
* **Vintage** (``temporal.months_on_book_column``): per origination cohort (the period of the
  date column), the cumulative event rate by months on book, Σ w·y·[mob ≤ m] / Σ w over the whole
  cohort, where the column holds the months on book at the event for event rows (non-event rows
  count in the denominator only); the development sample's pooled curve is the expectation curve.
* **Stress scenarios** (``stress:``): shocks applied to a copy of the development sample
  (:mod:`service.audits._temporal_stress`), rescored through the model with the spec threshold and
  direction; change in adverse rate, mean score, mean predicted probability, expected events
  (Σ w·P(event)) and AIR per group.

Without ``date_column`` the period, regime, change-point and vintage parts are ``null`` with
``dates_reason`` saying why; out-of-time and stress still run. AIR below ``air_min`` is reported as
a screening result (four-fifths rule by analogy), not as a federal violation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from service.audits._stats import (
    _f,
    auc_from_counts,
    bin_counts,
    ci_pair,
    decile_edges,
    jeffreys_p_value,
    ks_from_counts,
    percentile_ci,
    proportion_test,
    psi,
    score_table,
)
from service.audits._temporal_changepoints import binary_segmentation
from service.audits._temporal_stress import apply_shocks, describe, validate_shocks
from service.audits.context import AuditContext, NotApplicable, SectionOutput
from service.audits.performance import score_metrics
from service.config import RegimeSpec
from service.errors import InputError
from service.findings import finding
from service.inputs.models import ScoreColumn
from service.result import Finding, ResultModel, Severity

SECTION = "temporal"
MIN_CLASS = 5  # events and non-events needed for AUC / KS in a slice
PSI_ROWS_PER_BIN = 10  # rows per development score bin needed for a period's PSI
CI_BINS = 200  # score cells of the bootstrap table (see _replicates)

# NBER US business-cycle recessions since 1980: peak month .. trough month.
NBER_RECESSIONS: list[tuple[str, str, str]] = [
    ("nber-1980", "1980-01-01", "1980-07-31"),
    ("nber-1981-82", "1981-07-01", "1982-11-30"),
    ("nber-1990-91", "1990-07-01", "1991-03-31"),
    ("nber-2001", "2001-03-01", "2001-11-30"),
    ("nber-2007-09", "2007-12-01", "2009-06-30"),
    ("nber-2020", "2020-02-01", "2020-04-30"),
]


def default_regimes() -> list[RegimeSpec]:
    """The NBER recession windows as regime specs (inclusive calendar days)."""
    return [
        RegimeSpec(name=n, start=dt.date.fromisoformat(a), end=dt.date.fromisoformat(b))
        for n, a, b in NBER_RECESSIONS
    ]


# --------------------------------------------------------------------------- result models


class SliceMetrics(ResultModel):
    n: int
    weight: float
    events: float
    event_rate: float | None
    adverse_rate: float | None
    mean_score: float | None
    mean_predicted: float | None
    auc: float | None
    auc_ci: list[float | None] | None
    gini: float | None
    gini_ci: list[float | None] | None
    ks: float | None
    ks_ci: list[float | None] | None
    calibration_ratio: float | None
    jeffreys_p: float | None
    binomial_p: float | None
    psi_vs_dev: float | None
    air: dict[str, dict[str, float | None]]
    too_small: bool
    notes: list[str]


class PeriodRow(SliceMetrics):
    period: str
    start: str
    end: str
    splits: dict[str, int]


class Difference(ResultModel):
    base: float | None
    other: float | None
    difference: float | None
    ci: list[float | None] | None
    p_value: float | None
    test: str | None


class RegimeRow(SliceMetrics):
    name: str
    start: str
    end: str
    vs_outside: dict[str, Difference]


class RegimeAnalysis(ResultModel):
    source: str
    boundaries: str
    windows_in_data: list[str]
    windows_outside_data: list[str]
    regimes: list[RegimeRow]
    outside: SliceMetrics


class ChangePoint(ResultModel):
    period: str
    previous_period: str
    before_rate: float
    after_rate: float
    statistic: float
    dispersion: float
    p_value: float


class ChangePoints(ResultModel):
    method: str
    alpha: float
    min_size: int
    series: list[dict[str, Any]]
    breaks: list[ChangePoint]
    reason: str | None = None


class OutOfTime(ResultModel):
    source: str
    dev: SliceMetrics
    oot: SliceMetrics
    differences: dict[str, Difference]
    psi_oot_vs_dev: float | None


class VintageCohort(ResultModel):
    cohort: str
    n: int
    months_on_book: list[float]
    cumulative_event_rate: list[float | None]


class Vintage(ResultModel):
    column: str
    definition: str
    expected: VintageCohort
    cohorts: list[VintageCohort]


class StressGroup(ResultModel):
    base_air: float | None
    stressed_air: float | None
    change: float | None
    base_favorable_rate: float | None
    stressed_favorable_rate: float | None


class StressScenario(ResultModel):
    name: str
    shocks: dict[str, str]
    not_model_inputs: list[str]
    rescored: bool
    reason: str | None
    n: int
    rows_changed: int | None
    flipped_to_adverse: int | None
    flipped_to_favorable: int | None
    base: dict[str, float | None]
    stressed: dict[str, float | None]
    change: dict[str, float | None]
    air: dict[str, dict[str, StressGroup]]


class TemporalSection(ResultModel):
    date_column: str | None
    dates_reason: str | None
    period: str | None
    period_reason: str | None
    date_range: list[str] | None
    min_period_rows: int
    n_bootstrap: int
    ci_method: str
    periods: list[PeriodRow] | None
    change_points: ChangePoints | None
    out_of_time: OutOfTime | None
    out_of_time_reason: str | None
    regimes: RegimeAnalysis | None
    vintage: Vintage | None
    stress: list[StressScenario]


# --------------------------------------------------------------------------- pure helpers


def choose_period(dates: np.ndarray) -> tuple[str, str]:
    """``year`` if the dates span ≥ 6 years, ``quarter`` if ≥ 18 months, else ``month`` (with the reason)."""
    d = np.asarray(dates, dtype="datetime64[ns]")
    d = d[~np.isnat(d)]
    months = d.astype("datetime64[M]").astype(np.int64)
    span = int(months.max() - months.min()) + 1 if months.size else 0
    if span >= 72:
        return "year", f"auto: the dates span {span} calendar months (>= 72)"
    if span >= 18:
        return "quarter", f"auto: the dates span {span} calendar months (18-71)"
    return "month", f"auto: the dates span {span} calendar months (< 18)"


def period_codes(dates: np.ndarray, *, period: str) -> tuple[np.ndarray, list[str], list[str], list[str]]:
    """Integer period per row (0 = first period present, −1 for NaT), with label, start and end dates.

    Labels: month ``2008-07``, quarter ``2008-Q3``, year ``2008``. Only periods that contain at least
    one row are listed.
    """
    d = np.asarray(dates, dtype="datetime64[ns]")
    nat = np.isnat(d)
    m = d.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
    if period == "month":
        raw = m
    elif period == "quarter":
        raw = np.floor_divide(m, 3)
    elif period == "year":
        raw = np.floor_divide(m, 12)
    else:
        raise ValueError(f"unknown period {period!r}")
    present = np.unique(raw[~nat])
    codes = np.full(d.shape[0], -1, dtype=np.int64)
    codes[~nat] = np.searchsorted(present, raw[~nat])
    labels, starts, ends = [], [], []
    for r in present.tolist():
        if period == "month":
            first, last = r, r
            y, mo = divmod(r, 12)
            labels.append(f"{1970 + y:04d}-{mo + 1:02d}")
        elif period == "quarter":
            first, last = 3 * r, 3 * r + 2
            y, q = divmod(r, 4)
            labels.append(f"{1970 + y:04d}-Q{q + 1}")
        else:
            first, last = 12 * r, 12 * r + 11
            labels.append(f"{1970 + r:04d}")
        starts.append(str(np.datetime64(first, "M").astype("datetime64[D]")))
        ends.append(str(np.datetime64(last + 1, "M").astype("datetime64[D]") - np.timedelta64(1, "D")))
    return codes, labels, starts, ends


def regime_index(dates: np.ndarray, windows: list[RegimeSpec]) -> np.ndarray:
    """Index of the regime whose window holds each date, −1 when none (windows inclusive of both dates).

    A row is inside ``[start, end]`` when start 00:00 ≤ date < (end + 1 day) 00:00, so every time on
    the end date is inside. Windows must not overlap (the spec validator enforces it).
    """
    d = np.asarray(dates, dtype="datetime64[ns]")
    out = np.full(d.shape[0], -1, dtype=np.int64)
    for i, w in enumerate(windows):
        lo = np.datetime64(w.start.isoformat(), "ns")
        hi = np.datetime64((w.end + dt.timedelta(days=1)).isoformat(), "ns")
        out[(d >= lo) & (d < hi)] = i
    return out


def favorable_rates(
    adverse: np.ndarray, membership: np.ndarray, *, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(weighted group sizes, favorable rates) per membership column: Σ m·w·(1 − adverse) / Σ m·w."""
    a = np.asarray(adverse, dtype="float64")
    w = np.ones_like(a) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    mw = np.asarray(membership, dtype="float64") * w[:, None]
    size = mw.sum(axis=0)
    fav = (mw * (1.0 - a)[:, None]).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(size > 0, fav / np.where(size > 0, size, 1.0), np.nan)
    return size, rate


def air_by_group(
    adverse: np.ndarray,
    membership: np.ndarray,
    *,
    reference_index: int,
    groups: list[str],
    sample_weight: np.ndarray | None = None,
    min_group_size: float = 30,
) -> dict[str, float | None]:
    """AIR = favorable rate(group) / favorable rate(reference); None below ``min_group_size`` or 0/0."""
    size, rate = favorable_rates(adverse, membership, sample_weight=sample_weight)
    ref_ok = size[reference_index] >= min_group_size and rate[reference_index] > 0
    out: dict[str, float | None] = {}
    for j, g in enumerate(groups):
        if j == reference_index:
            continue
        ok = ref_ok and size[j] >= min_group_size
        out[g] = _f(rate[j] / rate[reference_index]) if ok else None
    return out


def vintage_curve(
    mob: np.ndarray, y: np.ndarray, *, grid: np.ndarray, sample_weight: np.ndarray | None = None
) -> list[float | None]:
    """Cumulative event rate Σ w·y·[mob ≤ m] / Σ w at each m of ``grid``.

    Events with a missing months-on-book value never count in the numerator.
    """
    mb = np.asarray(mob, dtype="float64")
    yy = np.asarray(y, dtype="float64")
    w = np.ones_like(yy) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    total = w.sum()
    if total <= 0:
        return [None] * len(grid)
    ev = np.isfinite(mb) & (yy > 0)
    order = np.argsort(mb[ev], kind="mergesort")
    m_sorted = mb[ev][order]
    cw = np.concatenate([[0.0], np.cumsum((w * yy)[ev][order])])
    idx = np.searchsorted(m_sorted, np.asarray(grid, dtype="float64"), side="right")
    return [float(v) for v in cw[idx] / total]


# --------------------------------------------------------------------------- pooled rows


@dataclass
class _Rows:
    """The development and out-of-time rows pooled, with everything a slice needs."""

    y: np.ndarray
    risk: np.ndarray
    score: np.ndarray
    prob: np.ndarray | None
    adverse: np.ndarray
    w: np.ndarray
    weighted: bool
    split: np.ndarray  # 0 = dev, 1 = oot
    dates: np.ndarray | None
    protected: dict[str, tuple[list[str], int, np.ndarray]]  # name -> (groups, ref index, membership)

    def take(self, mask: np.ndarray) -> _Rows:
        return _Rows(
            self.y[mask],
            self.risk[mask],
            self.score[mask],
            None if self.prob is None else self.prob[mask],
            self.adverse[mask],
            self.w[mask],
            self.weighted,
            self.split[mask],
            None if self.dates is None else self.dates[mask],
            {k: (g, r, m[mask]) for k, (g, r, m) in self.protected.items()},
        )

    @property
    def n(self) -> int:
        return int(self.y.shape[0])


def _pool(ctx: AuditContext) -> _Rows:
    splits = ctx.splits()
    has_prob = all(s.prob is not None for s in splits)
    has_dates = all(s.dates is not None for s in splits)
    prot: dict[str, tuple[list[str], int, np.ndarray]] = {}
    for name, pg in ctx.dev.protected.items():
        groups = list(pg.groups)
        others = [s.protected[name] for s in splits[1:] if name in s.protected]
        for o in others:
            groups += [g for g in o.groups if g not in groups]
        mats = []
        for s in splits:
            p = s.protected[name]
            m = np.zeros((s.n, len(groups)))
            for j, g in enumerate(p.groups):
                m[:, groups.index(g)] = p.membership[:, j]
            mats.append(m)
        prot[name] = (groups, groups.index(pg.reference), np.vstack(mats))

    def cat(get):
        return np.concatenate([np.asarray(get(s)) for s in splits])

    return _Rows(
        y=cat(lambda s: s.y).astype(np.int8),
        risk=cat(lambda s: s.risk).astype("float64"),
        score=cat(lambda s: s.score).astype("float64"),
        prob=cat(lambda s: s.prob).astype("float64") if has_prob else None,
        adverse=cat(lambda s: s.adverse).astype(bool),
        w=cat(lambda s: s.w()).astype("float64"),
        weighted=any(s.weight is not None for s in splits),
        split=np.concatenate([np.full(s.n, i, dtype=np.int8) for i, s in enumerate(splits)]),
        dates=cat(lambda s: s.dates).astype("datetime64[ns]") if has_dates else None,
        protected=prot,
    )


@dataclass
class _Ref:
    edges: np.ndarray
    counts: np.ndarray


def _slice_metrics(
    rows: _Rows,
    ctx: AuditContext,
    rng: np.random.Generator,
    ref: _Ref,
    *,
    min_rows: int,
    with_ci: bool = True,
) -> tuple[SliceMetrics, dict[str, np.ndarray]]:
    """Metrics of one slice and its bootstrap replicates (empty when too small or no bootstrap)."""
    policy = ctx.spec.policy
    n = rows.n
    w = rows.w
    sw = float(w.sum())
    events = float((w * rows.y).sum())
    notes: list[str] = []
    empty: dict[str, Any] = dict(
        event_rate=None,
        adverse_rate=None,
        mean_score=None,
        mean_predicted=None,
        auc=None,
        auc_ci=None,
        gini=None,
        gini_ci=None,
        ks=None,
        ks_ci=None,
        calibration_ratio=None,
        jeffreys_p=None,
        binomial_p=None,
        psi_vs_dev=None,
        air={},
    )
    if n < min_rows or sw <= 0:
        notes.append(f"too small: {n} row(s) < min_period_rows = {min_rows}; statistics not computed")
        return SliceMetrics(n=n, weight=sw, events=events, too_small=True, notes=notes, **empty), {}
    out: dict[str, Any] = dict(empty)
    out["event_rate"] = events / sw
    out["adverse_rate"] = float((w * rows.adverse).sum() / sw)
    out["mean_score"] = float((w * rows.score).sum() / sw)
    n_ev = int(rows.y.sum())
    n_ne = n - n_ev
    if n_ev >= MIN_CLASS and n_ne >= MIN_CLASS:
        m = score_metrics(
            rows.y,
            rows.risk,
            None,
            sample_weight=w if rows.weighted else None,
            n_boot=0,  # point estimates; CIs from the coarser table below
            rng=rng,
        )
        for k in ("auc", "gini", "ks"):
            out[k] = m.get(k)
    else:
        notes.append(
            f"AUC/KS not computed: {n_ev} event(s) and {n_ne} non-event(s) "
            f"(need >= {MIN_CLASS} events and >= {MIN_CLASS} non-events)"
        )
    if rows.prob is not None:
        pred = float((w * rows.prob).sum() / sw)
        out["mean_predicted"] = pred
        out["calibration_ratio"] = _f(out["event_rate"] / pred) if pred > 0 else None
        out["jeffreys_p"] = jeffreys_p_value(events, sw, pred)
        if not rows.weighted and 0 < pred < 1:
            out["binomial_p"] = float(stats.binomtest(n_ev, n, pred).pvalue)
    need = PSI_ROWS_PER_BIN * (ref.edges.size + 1)
    if n >= need:
        out["psi_vs_dev"] = psi(ref.counts, bin_counts(rows.risk, ref.edges, sample_weight=w))
    else:
        notes.append(
            f"PSI not computed: {n} row(s) (need >= {need}, {PSI_ROWS_PER_BIN} per development score bin)"
        )
    air: dict[str, dict[str, float | None]] = {}
    for name, (groups, ri, mem) in rows.protected.items():
        air[name] = air_by_group(
            rows.adverse,
            mem,
            reference_index=ri,
            groups=groups,
            sample_weight=w,
            min_group_size=policy.min_group_size,
        )
    out["air"] = air
    reps: dict[str, np.ndarray] = {}
    if with_ci and ctx.n_boot > 0:
        reps = _replicates(rows, ctx.n_boot, rng, exact=out)
        if out["auc"] is not None:
            for k in ("auc", "gini", "ks"):
                lo, hi = percentile_ci(reps[k])
                out[f"{k}_ci"] = ci_pair(lo, hi)  # type: ignore[arg-type]
    return SliceMetrics(n=n, weight=sw, events=events, too_small=False, notes=notes, **out), reps


# --------------------------------------------------------------------------- differences


def _cell_stats(t: Any, pn: np.ndarray, nn: np.ndarray, extra: dict[str, Any]) -> dict[str, np.ndarray]:
    pw, nw = t.weighted(pn, nn)
    auc = auc_from_counts(pw, nw)
    tot = pw.sum(axis=1) + nw.sum(axis=1)
    out = {"auc": auc, "gini": 2 * auc - 1, "ks": ks_from_counts(pw, nw)}
    with np.errstate(invalid="ignore", divide="ignore"):
        out["event_rate"] = pw.sum(axis=1) / tot
        for key, tt in extra.items():
            lp, ln = tt.weighted(pn, nn)
            out[key] = (lp.sum(axis=1) + ln.sum(axis=1)) / tot
        if "mean_predicted" in out:
            out["calibration_ratio"] = out["event_rate"] / out["mean_predicted"]
    return out


def _replicates(
    rows: _Rows, n_boot: int, rng: np.random.Generator, *, exact: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Count-bootstrap replicates of the slice metrics on a table of at most ``CI_BINS`` score cells.

    The table is the risk score cut at its quantiles (``_stats.score_table``); each replicate draws
    the cell counts from a multinomial. Binning ties the scores inside a cell, which moves AUC/KS a
    little; each replicate is shifted by (exact point estimate − binned point estimate), so the
    intervals are centred on the exact value.
    """
    t = score_table(rows.risk, rows.y, sample_weight=rows.w, max_bins=CI_BINS)
    extra = {
        "mean_score": score_table(rows.risk, rows.y, sample_weight=rows.w * rows.score, max_bins=CI_BINS)
    }
    if rows.prob is not None:
        extra["mean_predicted"] = score_table(
            rows.risk, rows.y, sample_weight=rows.w * rows.prob, max_bins=CI_BINS
        )
    k = t.pos_n.size
    counts = np.concatenate([t.pos_n, t.neg_n])
    total = counts.sum()
    if total == 0 or n_boot <= 0:
        return {}
    rep = rng.multinomial(total, counts / total, size=n_boot)
    reps = _cell_stats(t, rep[:, :k], rep[:, k:], extra)
    base = _cell_stats(t, t.pos_n[None, :], t.neg_n[None, :], extra)
    for key, arr in reps.items():
        ex = exact.get(key)
        b = float(base[key][0])
        if ex is not None and np.isfinite(b):
            reps[key] = arr + (float(ex) - b)
    return reps


def _difference(
    a: SliceMetrics, b: SliceMetrics, ra: dict[str, np.ndarray], rb: dict[str, np.ndarray], key: str
) -> Difference:
    va, vb = getattr(a, key), getattr(b, key)
    diff = None if va is None or vb is None else vb - va
    ci = p = test = None
    if diff is not None and key in ra and key in rb:
        d = rb[key] - ra[key]
        d = d[np.isfinite(d)]
        if d.size >= 0.5 * ra[key].size and d.size > 0:
            lo, hi = percentile_ci(d)
            ci = ci_pair(lo, hi)  # type: ignore[arg-type]
            # two-sided bootstrap p-value with the (count + 1) / (B + 1) convention, so never exactly 0
            p = float(min(1.0, 2 * (min(int((d <= 0).sum()), int((d >= 0).sum())) + 1) / (d.size + 1)))
            test = "bootstrap"
    if key in ("event_rate", "adverse_rate") and diff is not None:
        xa = a.events if key == "event_rate" else (a.adverse_rate or 0.0) * a.weight
        xb = b.events if key == "event_rate" else (b.adverse_rate or 0.0) * b.weight
        p, test = proportion_test(xb, b.weight, xa, a.weight)
    return Difference(
        base=va, other=vb, difference=_f(diff) if diff is not None else None, ci=ci, p_value=p, test=test
    )


DIFF_KEYS = (
    "event_rate",
    "adverse_rate",
    "mean_score",
    "mean_predicted",
    "calibration_ratio",
    "auc",
    "gini",
    "ks",
)


def _compare(
    ma: SliceMetrics, mb: SliceMetrics, ra: dict[str, np.ndarray], rb: dict[str, np.ndarray]
) -> dict[str, Difference]:
    return {k: _difference(ma, mb, ra, rb, k) for k in DIFF_KEYS}


# --------------------------------------------------------------------------- parts


def _check_dates(ctx: AuditContext) -> None:
    today = np.datetime64(dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1), "ns")
    for s in ctx.splits():
        if s.dates is None:
            continue
        fut = s.dates >= today
        if fut.any():
            first = str(s.dates[fut].min())[:10]
            raise InputError(
                f"column '{ctx.spec.date_column}' has {int(fut.sum())} date(s) in the future (e.g. {first}); "
                "outcomes cannot have been observed for them",
                file=ctx.spec.dataset if s.name == "dev" else (ctx.spec.oot_dataset or ctx.spec.dataset),
                field="date_column",
                expected=f"dates on or before today ({dt.datetime.now(dt.UTC).date().isoformat()})",
            )
        nat = np.isnat(s.dates)
        if nat.all():
            raise InputError(
                f"column '{ctx.spec.date_column}' has no dates",
                file=ctx.spec.dataset,
                field="date_column",
                expected="a date on every row",
            )


def _periods(
    rows: _Rows, ctx: AuditContext, rng: np.random.Generator, ref: _Ref
) -> tuple[str, str, list[PeriodRow], np.ndarray, list[str]]:
    assert rows.dates is not None
    spec_period = ctx.spec.temporal.period
    if spec_period == "auto":
        period, reason = choose_period(rows.dates)
    else:
        period, reason = spec_period, "set in the spec (temporal.period)"
    codes, labels, starts, ends = period_codes(rows.dates, period=period)
    out = []
    for i, lab in enumerate(labels):
        ctx.progress(f"temporal: period {lab}")
        mask = codes == i
        sub = rows.take(mask)
        m, _ = _slice_metrics(sub, ctx, rng, ref, min_rows=ctx.spec.temporal.min_period_rows)
        split_n = {name: int((sub.split == j).sum()) for j, name in enumerate(s.name for s in ctx.splits())}
        out.append(
            PeriodRow(
                period=lab,
                start=starts[i],
                end=ends[i],
                splits={k: v for k, v in split_n.items() if v},
                **m.model_dump(),
            )
        )
    return period, reason, out, codes, labels


def _change_points(periods: list[PeriodRow], alpha: float) -> ChangePoints:
    method = (
        "binary segmentation of the period event-rate series: binomial likelihood-ratio statistic for a "
        "step, divided by the quasi-binomial dispersion max(1, X²/df), χ²(1) p-value × number of "
        "candidate split points (Bonferroni); at least 2 periods per segment, at most 5 breaks"
    )
    series = [{"period": p.period, "n": p.weight, "events": p.events} for p in periods]
    if len(periods) < 4:
        return ChangePoints(
            method=method,
            alpha=alpha,
            min_size=2,
            series=series,
            breaks=[],
            reason=f"needs at least 4 periods (got {len(periods)})",
        )
    ev = np.array([p.events for p in periods])
    tot = np.array([p.weight for p in periods])
    brks = binary_segmentation(ev, tot, alpha=alpha, min_size=2, max_breaks=5)
    return ChangePoints(
        method=method,
        alpha=alpha,
        min_size=2,
        series=series,
        breaks=[
            ChangePoint(
                period=periods[b.index].period,
                previous_period=periods[b.index - 1].period,
                before_rate=b.before_rate,
                after_rate=b.after_rate,
                statistic=b.statistic,
                dispersion=b.dispersion,
                p_value=b.p_value,
            )
            for b in brks
        ],
    )


def _regimes(rows: _Rows, ctx: AuditContext, rng: np.random.Generator, ref: _Ref) -> RegimeAnalysis:
    assert rows.dates is not None
    windows = ctx.spec.regimes or default_regimes()
    source = (
        "spec (regimes)"
        if ctx.spec.regimes
        else "default: NBER US recessions since 1980 (peak to trough month)"
    )
    d = rows.dates[~np.isnat(rows.dates)]
    lo, hi = d.min(), d.max()
    inside = [
        w
        for w in windows
        if np.datetime64(w.start.isoformat(), "ns") <= hi and np.datetime64(w.end.isoformat(), "ns") >= lo
    ]
    outside_names = [w.name for w in windows if w not in inside]
    idx = regime_index(rows.dates, inside)
    known = ~np.isnat(rows.dates)
    min_rows = ctx.spec.temporal.min_period_rows
    out_rows = rows.take((idx < 0) & known)
    out_m, out_reps = _slice_metrics(out_rows, ctx, rng, ref, min_rows=min_rows)
    regs = []
    for i, w in enumerate(inside):
        ctx.progress(f"temporal: regime {w.name}")
        sub = rows.take(idx == i)
        m, reps = _slice_metrics(sub, ctx, rng, ref, min_rows=min_rows)
        vs = _compare(out_m, m, out_reps, reps)
        regs.append(
            RegimeRow(
                name=w.name, start=w.start.isoformat(), end=w.end.isoformat(), vs_outside=vs, **m.model_dump()
            )
        )
    return RegimeAnalysis(
        source=source,
        boundaries="calendar days, inclusive of both the start and the end date",
        windows_in_data=[w.name for w in inside],
        windows_outside_data=outside_names,
        regimes=regs,
        outside=out_m,
    )


def _vintage(rows: _Rows, ctx: AuditContext, codes: np.ndarray, labels: list[str]) -> Vintage:
    col = ctx.spec.temporal.months_on_book_column
    assert col is not None
    mob = np.concatenate(
        [np.asarray(pd.to_numeric(s.frame[col], errors="coerce"), dtype="float64") for s in ctx.splits()]
    )
    fin = mob[np.isfinite(mob)]
    top = float(fin.max()) if fin.size else 0.0
    step = 1.0 if top <= 36 else (3.0 if top <= 120 else 12.0)
    grid = np.arange(0.0, top + step, step)
    dev = rows.split == 0
    expected = VintageCohort(
        cohort="development (pooled)",
        n=int(dev.sum()),
        months_on_book=grid.tolist(),
        cumulative_event_rate=vintage_curve(mob[dev], rows.y[dev], grid=grid, sample_weight=rows.w[dev]),
    )
    cohorts = []
    for i, lab in enumerate(labels):
        m = codes == i
        cohorts.append(
            VintageCohort(
                cohort=lab,
                n=int(m.sum()),
                months_on_book=grid.tolist(),
                cumulative_event_rate=vintage_curve(mob[m], rows.y[m], grid=grid, sample_weight=rows.w[m]),
            )
        )
    return Vintage(
        column=col,
        definition="cumulative event rate Σ w·y·[months_on_book ≤ m] / Σ w over the whole origination "
        "cohort; "
        "the column holds the months on book at the event for event rows",
        expected=expected,
        cohorts=cohorts,
    )


def _decide(score: np.ndarray, ctx: AuditContext) -> tuple[np.ndarray, np.ndarray | None]:
    thr = ctx.spec.score.threshold
    riskier = ctx.spec.score.direction == "higher_is_riskier"
    adverse = score >= thr if riskier else score < thr
    prob = None
    if ctx.score_kind == "probability":
        prob = score if riskier else 1.0 - score
    elif ctx.score_kind == "log_odds":
        prob = 1.0 / (1.0 + np.exp(-(score if riskier else -score)))
    return np.asarray(adverse, dtype=bool), prob


def stress_scenarios(ctx: AuditContext, rng: np.random.Generator) -> list[StressScenario]:
    """Run every ``stress:`` scenario of the spec on the development sample."""
    split = ctx.dev
    out: list[StressScenario] = []
    src = str(ctx.spec.spec_path) if ctx.spec.spec_path else "spec"
    for i, sc in enumerate(ctx.spec.stress or []):
        validate_shocks(split.frame, sc.shocks, index=i, source=src)
    feats = set(ctx.features)
    w = split.w()
    sw = float(w.sum())
    base_prob = split.prob

    def summary(adverse: np.ndarray, score: np.ndarray, prob: np.ndarray | None) -> dict[str, float | None]:
        return {
            "adverse_rate": float((w * adverse).sum() / sw),
            "mean_score": float((w * score).sum() / sw),
            "mean_predicted": None if prob is None else float((w * prob).sum() / sw),
            "expected_events": None if prob is None else float((w * prob).sum()),
        }

    base = summary(split.adverse, split.score, base_prob)
    for sc in ctx.spec.stress or []:
        ctx.progress(f"temporal: stress {sc.name}")
        shocks = {k: describe(v) for k, v in sc.shocks.items()}
        not_inputs = [k for k in sc.shocks if k not in feats]
        if isinstance(ctx.model, ScoreColumn):
            out.append(
                StressScenario(
                    name=sc.name,
                    shocks=shocks,
                    not_model_inputs=not_inputs,
                    rescored=False,
                    reason="no model: the score is a precomputed column, so shocked inputs cannot be "
                    "rescored",
                    n=split.n,
                    rows_changed=None,
                    flipped_to_adverse=None,
                    flipped_to_favorable=None,
                    base=base,
                    stressed={},
                    change={},
                    air={},
                )
            )
            continue
        shocked = apply_shocks(split.frame, sc.shocks, rng=rng)
        changed = np.zeros(split.n, dtype=bool)
        for col in sc.shocks:
            a, b = split.frame[col], shocked[col]
            changed |= ~((a == b) | (a.isna() & b.isna())).to_numpy()
        score = np.asarray(ctx.model.predict_score(shocked), dtype="float64")
        adverse, prob = _decide(score, ctx)
        st = summary(adverse, score, prob)
        change = {k: (None if base[k] is None or st[k] is None else st[k] - base[k]) for k in base}  # type: ignore[operator]
        air: dict[str, dict[str, StressGroup]] = {}
        for name, pg in split.protected.items():
            size, fb = favorable_rates(split.adverse, pg.membership, sample_weight=w)
            _, fs = favorable_rates(adverse, pg.membership, sample_weight=w)
            ri = pg.reference_index
            mgs = ctx.spec.policy.min_group_size
            groups: dict[str, StressGroup] = {}
            for j, g in enumerate(pg.groups):
                ok = size[j] >= mgs and size[ri] >= mgs
                ba = _f(fb[j] / fb[ri]) if ok and fb[ri] > 0 else None
                sa = _f(fs[j] / fs[ri]) if ok and fs[ri] > 0 else None
                groups[g] = StressGroup(
                    base_air=ba if j != ri else None,
                    stressed_air=sa if j != ri else None,
                    change=None if j == ri or ba is None or sa is None else sa - ba,
                    base_favorable_rate=_f(fb[j]),
                    stressed_favorable_rate=_f(fs[j]),
                )
            air[name] = groups
        out.append(
            StressScenario(
                name=sc.name,
                shocks=shocks,
                not_model_inputs=not_inputs,
                rescored=True,
                reason=None,
                n=split.n,
                rows_changed=int(changed.sum()),
                flipped_to_adverse=int((adverse & ~split.adverse).sum()),
                flipped_to_favorable=int((~adverse & split.adverse).sum()),
                base=base,
                stressed=st,
                change=change,
                air=air,
            )
        )
    return out


# --------------------------------------------------------------------------- run


def run(ctx: AuditContext) -> SectionOutput:
    spec = ctx.spec
    if spec.date_column is None and ctx.oot is None and not spec.stress:
        raise NotApplicable("no date_column, out-of-time sample or stress scenarios in the spec")
    rng = ctx.rng(SECTION)
    _check_dates(ctx)
    rows = _pool(ctx)
    edges = decile_edges(ctx.dev.risk)
    ref = _Ref(edges, bin_counts(ctx.dev.risk, edges, sample_weight=ctx.dev.w()))
    min_rows = spec.temporal.min_period_rows

    periods = cps = regimes = vintage = None
    period = period_reason = dates_reason = None
    date_range = None
    if rows.dates is not None:
        d = rows.dates[~np.isnat(rows.dates)]
        date_range = [str(d.min())[:10], str(d.max())[:10]]
        period, period_reason, periods, codes, labels = _periods(rows, ctx, rng, ref)
        cps = _change_points(periods, alpha=min(spec.policy.significance, 0.01))
        regimes = _regimes(rows, ctx, rng, ref)
        if spec.temporal.months_on_book_column:
            vintage = _vintage(rows, ctx, codes, labels)
    else:
        dates_reason = "no date_column in the spec: periods, regimes, change points and vintages not computed"

    oot = None
    oot_reason = None
    if ctx.oot is not None:
        ctx.progress("temporal: out-of-time")
        a, b = rows.take(rows.split == 0), rows.take(rows.split == 1)
        ma, ra = _slice_metrics(a, ctx, rng, ref, min_rows=min_rows)
        mb, rb = _slice_metrics(b, ctx, rng, ref, min_rows=min_rows)
        source = (
            f"oot_dataset {spec.oot_dataset}"
            if spec.oot_dataset
            else "rows dated after the out-of-time cut-off (--oot-after / temporal.oot_after)"
        )
        oot = OutOfTime(
            source=source,
            dev=ma,
            oot=mb,
            differences=_compare(ma, mb, ra, rb),
            psi_oot_vs_dev=mb.psi_vs_dev,
        )
    else:
        oot_reason = "no out-of-time sample (give oot_dataset, temporal.oot_after or --oot-after DATE)"

    stress = stress_scenarios(ctx, rng) if spec.stress else []
    sec = TemporalSection(
        date_column=spec.date_column,
        dates_reason=dates_reason,
        period=period,
        period_reason=period_reason,
        date_range=date_range,
        min_period_rows=min_rows,
        n_bootstrap=ctx.n_boot,
        ci_method="percentile bootstrap over score-table cell counts (multinomial), seeded; differences from "
        "independent bootstraps of the two samples",
        periods=periods,
        change_points=cps,
        out_of_time=oot,
        out_of_time_reason=oot_reason,
        regimes=regimes,
        vintage=vintage,
        stress=stress,
    )
    return SectionOutput(sec, _findings(sec, ctx))


# --------------------------------------------------------------------------- findings


def _findings(sec: TemporalSection, ctx: AuditContext) -> list[Finding]:
    policy = ctx.spec.policy
    alpha = policy.significance
    out: list[Finding] = []
    oot = sec.out_of_time
    if oot is not None:
        d = oot.differences["auc"]
        if d.difference is not None and -d.difference > policy.auc_drop_max:
            sev: Severity = (
                "high"
                if d.ci is not None and d.ci[1] is not None and -d.ci[1] > policy.auc_drop_max
                else "medium"
            )
            out.append(
                finding(
                    SECTION,
                    sev,
                    "AUC falls out of time",
                    f"AUC {d.base:.3f} (development) -> {d.other:.3f} (out-of-time), "
                    f"change {d.difference:+.3f}, "
                    f"95% CI {_ci(d.ci)}",
                    metric="auc_drop",
                    value=-d.difference,
                    policy=policy,
                    threshold_name="auc_drop_max",
                )
            )
        c = oot.differences["calibration_ratio"]
        if c.other is not None and abs(c.other - 1.0) > policy.calibration_ratio_max:
            out.append(
                finding(
                    SECTION,
                    "high",
                    "Calibration breaks out of time",
                    f"out-of-time observed event rate {oot.oot.event_rate:.4f} vs mean predicted "
                    f"{oot.oot.mean_predicted:.4f} (ratio {c.other:.2f}; development ratio "
                    f"{_num(c.base)}); Jeffreys p = {_num(oot.oot.jeffreys_p, '.2g')}",
                    metric="calibration_ratio_gap",
                    value=abs(c.other - 1.0),
                    policy=policy,
                    threshold_name="calibration_ratio_max",
                )
            )
        e = oot.differences["event_rate"]
        if e.p_value is not None and e.p_value < alpha and e.difference is not None:
            out.append(
                finding(
                    SECTION,
                    "medium",
                    "Event rate shifts out of time",
                    f"event rate {e.base:.4f} (development) -> {e.other:.4f} (out-of-time), "
                    f"p = {e.p_value:.2g} ({e.test})",
                    metric="event_rate_change",
                    value=e.difference,
                    threshold=alpha,
                )
            )
    if sec.regimes is not None:
        for r in sec.regimes.regimes:
            e = r.vs_outside["event_rate"]
            if e.p_value is not None and e.p_value < alpha and e.difference is not None:
                out.append(
                    finding(
                        SECTION,
                        "medium",
                        f"Event rate differs in regime {r.name}",
                        f"event rate {e.other:.4f} in {r.name} ({r.start}..{r.end}, n={r.n}) vs {e.base:.4f} "
                        f"outside every regime, p = {e.p_value:.2g} ({e.test})",
                        metric="regime_event_rate_change",
                        value=e.difference,
                        threshold=alpha,
                    )
                )
            a = r.vs_outside["auc"]
            if a.difference is not None and -a.difference > policy.auc_drop_max:
                out.append(
                    finding(
                        SECTION,
                        "medium",
                        f"AUC lower in regime {r.name}",
                        f"AUC {a.other:.3f} in {r.name} vs {a.base:.3f} outside, "
                        f"95% CI of the change {_ci(a.ci)}",
                        metric="regime_auc_drop",
                        value=-a.difference,
                        policy=policy,
                        threshold_name="auc_drop_max",
                    )
                )
            if (
                r.calibration_ratio is not None
                and abs(r.calibration_ratio - 1) > policy.calibration_ratio_max
            ):
                out.append(
                    finding(
                        SECTION,
                        "medium",
                        f"Calibration off in regime {r.name}",
                        f"observed/predicted event rate {r.calibration_ratio:.2f} in {r.name}",
                        metric="calibration_ratio_gap",
                        value=abs(r.calibration_ratio - 1),
                        policy=policy,
                        threshold_name="calibration_ratio_max",
                    )
                )
    if sec.change_points is not None and sec.change_points.breaks:
        desc = "; ".join(
            f"{b.previous_period} -> {b.period}: {b.before_rate:.3f} -> {b.after_rate:.3f} "
            f"(p = {b.p_value:.2g})"
            for b in sec.change_points.breaks
        )
        out.append(
            finding(
                SECTION,
                "medium",
                "Change points in the event rate over time",
                f"binary segmentation finds {len(sec.change_points.breaks)} break(s): {desc}",
                metric="change_points",
                value=len(sec.change_points.breaks),
                threshold=sec.change_points.alpha,
            )
        )
    if sec.periods:
        red = [p for p in sec.periods if p.psi_vs_dev is not None and p.psi_vs_dev > policy.psi_red]
        amber = [
            p
            for p in sec.periods
            if p.psi_vs_dev is not None and policy.psi_amber < p.psi_vs_dev <= policy.psi_red
        ]
        if red:
            worst = max(red, key=lambda p: p.psi_vs_dev or 0.0)
            out.append(
                finding(
                    SECTION,
                    "medium",
                    "Score distribution shifts in some periods",
                    f"{len(red)} period(s) with score PSI vs development above the red threshold: "
                    + ", ".join(p.period for p in red[:12])
                    + f"; worst {worst.period} (PSI {worst.psi_vs_dev:.3f})",
                    metric="psi_vs_dev",
                    value=worst.psi_vs_dev,
                    policy=policy,
                    threshold_name="psi_red",
                )
            )
        elif amber:
            worst = max(amber, key=lambda p: p.psi_vs_dev or 0.0)
            out.append(
                finding(
                    SECTION,
                    "low",
                    "Score distribution drifts in some periods",
                    f"{len(amber)} period(s) with score PSI vs development above amber: "
                    + ", ".join(p.period for p in amber[:12]),
                    metric="psi_vs_dev",
                    value=worst.psi_vs_dev,
                    policy=policy,
                    threshold_name="psi_amber",
                )
            )
        weak = [p for p in sec.periods if p.auc is not None and p.auc < policy.auc_min]
        if weak:
            worst = min(weak, key=lambda p: p.auc or 1.0)
            out.append(
                finding(
                    SECTION,
                    "low",
                    "Weak discrimination in some periods",
                    f"{len(weak)} period(s) with AUC below the minimum: "
                    + ", ".join(p.period for p in weak[:12]),
                    metric="auc",
                    value=worst.auc,
                    policy=policy,
                    threshold_name="auc_min",
                )
            )
        low_air = sorted(
            {
                f"{p.period} {a}={g}"
                for p in sec.periods
                for a, gs in p.air.items()
                for g, v in gs.items()
                if v is not None and v < policy.air_min
            }
        )
        if low_air:
            out.append(
                finding(
                    SECTION,
                    "low",
                    "AIR below the screening level in some periods",
                    f"{len(low_air)} period/group pair(s) below air_min (four-fifths screen used by "
                    "analogy; not by itself a finding of unlawful discrimination): "
                    + ", ".join(low_air[:10]),
                    metric="air",
                    value=None,
                    policy=policy,
                    threshold_name="air_min",
                )
            )
        small = [p.period for p in sec.periods if p.too_small]
        if small:
            out.append(
                finding(
                    SECTION,
                    "info",
                    "Periods too small for statistics",
                    f"{len(small)} period(s) have fewer than min_period_rows = {sec.min_period_rows} "
                    "rows and "
                    "show counts only: " + ", ".join(small[:15]),
                    metric="small_periods",
                    value=len(small),
                )
            )
    for s in sec.stress:
        if not s.rescored:
            continue
        dar = s.change.get("adverse_rate")
        out.append(
            finding(
                SECTION,
                "info",
                f"Stress scenario {s.name}",
                f"shocks {', '.join(f'{k} {v}' for k, v in s.shocks.items())}: adverse rate "
                f"{_num(s.base.get('adverse_rate'))} -> {_num(s.stressed.get('adverse_rate'))}"
                + (f" ({dar:+.4f})" if dar is not None else "")
                + (
                    f"; expected events {_num(s.base.get('expected_events'), '.1f')} -> "
                    f"{_num(s.stressed.get('expected_events'), '.1f')}"
                    if s.base.get("expected_events") is not None
                    else ""
                ),
                metric="stress_adverse_rate_change",
                value=dar,
            )
        )
        for attr, groups in s.air.items():
            for g, sg in groups.items():
                if (
                    sg.stressed_air is not None
                    and sg.stressed_air < policy.air_min
                    and (sg.base_air is None or sg.base_air >= policy.air_min)
                ):
                    out.append(
                        finding(
                            SECTION,
                            "low",
                            f"AIR falls below the screen under stress: {attr}={g}",
                            f"scenario {s.name}: AIR {_num(sg.base_air)} -> {sg.stressed_air:.3f} "
                            "(screening level, "
                            "not a federal violation by itself)",
                            metric="air",
                            value=sg.stressed_air,
                            policy=policy,
                            threshold_name="air_min",
                        )
                    )
    return out


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _ci(ci: list[float | None] | None) -> str:
    if ci is None or ci[0] is None or ci[1] is None:
        return "n/a"
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


__all__ = [
    "NBER_RECESSIONS",
    "TemporalSection",
    "air_by_group",
    "choose_period",
    "default_regimes",
    "favorable_rates",
    "period_codes",
    "regime_index",
    "run",
    "stress_scenarios",
    "vintage_curve",
]
