"""One monitoring window against a stored :class:`~service.monitoring.profile.ReferenceProfile`.

Conventions (SPEC.md §3, stated again in every window result under ``conventions``):

* **PSI** = Σ (a − e)·ln(a / e) over the reference bins, a and e the current and reference
  proportions, each floored at 1e-4 (:func:`service.audits._stats.psi`). Numeric bins are the unique
  reference deciles e1<…<ek as (−∞,e1], (e1,e2], …, (ek,∞); categorical bins are the reference
  categories plus one bin for every unseen category together. Missing values are not in any bin
  (missing-rate drift is reported separately). **CSI** is the same index per characteristic (feature).
  Traffic lights: green < ``psi_amber`` (default 0.10) ≤ amber < ``psi_red`` (default 0.25) ≤ red.
* **KS** = sup_x |F_cur(x) − F_ref(x)| and **Wasserstein** W1 = ∫ |F_cur − F_ref| dx (Kantorovich
  1942; the definitions of ``scipy.stats.ks_2samp`` / ``wasserstein_distance``), F_ref being the
  profile's sketch. ``wasserstein_normed`` = W1 / σ_ref (population σ, floored at 0.001 as evidently
  does). ``ks_p_value`` is the two-sided asymptotic Smirnov p-value ``kstwo.sf(D, round(n·m/(n+m)))``.
  ``method`` = "exact" when the window is held in memory (KS and W1 exact against the reference
  sketch, exactly the reference when ``sketch_exact``), "binned" when streamed: current values are
  counted in the sketch intervals (KS still exact against the sketch; W1 exact except inside an
  interval where the two CDFs cross, where F_cur is taken as linear).
* **Jensen–Shannon distance** = sqrt(½ KL(p‖m) + ½ KL(q‖m)), m = (p+q)/2, natural log
  (``scipy.spatial.distance.jensenshannon``) over the categorical bins, unfloored.
  **chi2** = Σ (O − E)²/E with E = reference share × current n over the reference categories,
  plus the unseen bin when it is non-empty (its reference share floored at 1e-4); df = bins − 1.
* **Fairness drift**: AIR = favorable_rate(group)/favorable_rate(reference) in the window, 95%
  percentile bootstrap CI over per-group counts (group sizes fixed), p-value of the difference in
  favorable rates (Fisher exact when an expected cell < 5, else two-proportion z); ``shortfall`` =
  ⌈air_min · FR_ref · n_g − favorable_g⌉ (0 when already there), as in the fairness audit. An alert needs
  AIR < ``air_min`` **and** p < ``significance``: a practical and a statistical criterion. AIR below
  0.8 is a screening signal (four-fifths rule, 29 CFR 1607.4(D)), not a finding of a violation.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from service.audits._stats import (
    _f,
    bootstrap_counts,
    ci_pair,
    percentile_ci,
    proportion_test,
    psi,
    two_proportion_z_test,
)
from service.config import PolicySpec
from service.findings import finding
from service.monitoring.profile import (
    UNSEEN,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    category_counts,
    numeric_values,
)
from service.result import Finding, ResultModel

PSI_FLOOR = 1e-4

CONVENTIONS = {
    "psi": "sum((a-e)*ln(a/e)) over reference decile bins (-inf,e1],(e1,e2],...,(ek,inf) or reference "
    "categories + one unseen bin; proportions floored at 1e-4; missing values excluded",
    "csi": "PSI per characteristic (feature), same bins",
    "ks": "sup |F_cur - F_ref| against the reference sketch; p-value asymptotic Smirnov",
    "wasserstein": "integral |F_cur - F_ref| dx; wasserstein_normed divides by the reference population std",
    "js": "Jensen-Shannon distance, natural log, unfloored proportions over the categorical bins",
    "chi2": "Pearson chi-square of current counts vs reference shares x current n",
    "air": "favorable_rate(group)/favorable_rate(reference); alert when air < air_min and p < significance",
}


class NumericDrift(ResultModel):
    kind: Literal["numeric"] = "numeric"
    n: float
    missing_rate: float | None
    reference_missing_rate: float | None
    missing_rate_difference: float | None
    missing_p_value: float | None
    psi: float | None
    traffic_light: str | None
    reference_shares: list[float]
    current_shares: list[float]
    ks: float | None
    ks_p_value: float | None
    wasserstein: float | None
    wasserstein_normed: float | None
    mean: float | None
    reference_mean: float | None
    method: str


class CategoricalDrift(ResultModel):
    kind: Literal["categorical"] = "categorical"
    n: float
    missing_rate: float | None
    reference_missing_rate: float | None
    missing_rate_difference: float | None
    missing_p_value: float | None
    psi: float | None
    traffic_light: str | None
    categories: list[str]
    reference_shares: list[float]
    current_shares: list[float]
    js: float | None
    chi2: float | None
    chi2_df: int | None
    chi2_p_value: float | None
    new_categories: list[str]
    unseen_share: float


class GroupWindow(ResultModel):
    n: float
    share: float | None
    reference_share: float | None
    favorable_rate: float | None
    adverse_rate: float | None
    air: float | None
    air_ci: list[float | None] | None
    air_p_value: float | None
    test: str | None
    reference_air: float | None
    air_change: float | None
    shortfall: float | None = None
    alert: bool


class AttributeWindow(ResultModel):
    reference: str
    groups: dict[str, GroupWindow]


class PredictionDrift(ResultModel):
    mean_score: float | None
    reference_mean_score: float | None
    adverse_rate: float | None
    reference_adverse_rate: float | None
    adverse_rate_difference: float | None
    adverse_rate_p_value: float | None


class DriftSummary(ResultModel):
    n_features: int
    n_amber: int
    n_red: int
    drifted_share: float | None
    max_psi_feature: str | None
    max_psi: float | None


class DriftBlock(ResultModel):
    features: dict[str, NumericDrift | CategoricalDrift]
    score: NumericDrift | None
    summary: DriftSummary


class WindowPerformance(ResultModel):
    n: int
    events: float
    event_rate: float | None
    auc: float | None
    auc_ci: list[float | None] | None
    gini: float | None
    ks: float | None
    brier: float | None = None
    calibration: dict[str, Any] | None = None
    labels_received_at: str | None = None


class WindowResult(ResultModel):
    window: dict[str, Any]
    conventions: dict[str, str]
    rows: int
    drift: DriftBlock
    prediction: PredictionDrift | None
    fairness: dict[str, Any]
    performance: WindowPerformance | None = None
    alerts: list[Finding]
    trend: dict[str, Any] | None = None


# --------------------------------------------------------------------------- distances


def _ref_masses(cdf: np.ndarray) -> np.ndarray:
    return np.diff(np.concatenate([[0.0], cdf]))


def ks_wasserstein_exact(
    ref_values: np.ndarray,
    ref_cdf: np.ndarray,
    x: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    linear: bool = False,
) -> tuple[float | None, float | None]:
    """Exact KS and W1 between a (weighted) sample and the reference sketch (values, cdf).

    ``linear=False``: the reference is the discrete distribution with that CDF (an exact ECDF).
    ``linear=True`` (a quantile sketch of a continuous reference): W1 uses the piecewise-linear
    reference quantile function through the sketch points, W1 = ∫₀¹ |Q_cur(p) − Q_ref(p)| dp.
    """
    ok = np.isfinite(x)
    v = x[ok]
    if v.size == 0 or ref_values.size == 0:
        return None, None
    vw = np.ones(v.size) if sample_weight is None else np.asarray(sample_weight, dtype="float64")[ok]
    order = np.argsort(v, kind="mergesort")
    v, vw = v[order], vw[order]
    vcum = np.cumsum(vw) / vw.sum()
    allv = np.union1d(ref_values, v)
    iu = np.searchsorted(ref_values, allv, side="right")
    iv = np.searchsorted(v, allv, side="right")
    fu = np.where(iu > 0, ref_cdf[np.maximum(iu - 1, 0)], 0.0)
    fv = np.where(iv > 0, vcum[np.maximum(iv - 1, 0)], 0.0)
    d = np.abs(fu - fv)
    ks = float(d.max())
    w1 = float((d[:-1] * np.diff(allv)).sum())
    if linear and ref_values.size > 1:
        w1 = _w1_quantile_linear(ref_values, ref_cdf, v, vcum)
    return ks, w1


def _abs_linear_integral(da: np.ndarray, db: np.ndarray, h: np.ndarray) -> np.ndarray:
    """∫ over an interval of length h of |d(t)| where d goes linearly from da to db."""
    same = da * db >= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        cross = h * (da**2 + db**2) / (2 * np.abs(da - db))
    return np.where(same, h * np.abs(da + db) / 2, np.nan_to_num(cross))


def _w1_quantile_linear(u: np.ndarray, cdf: np.ndarray, v_sorted: np.ndarray, vcum: np.ndarray) -> float:
    p_ref = np.concatenate([[0.0], cdf]) if cdf[0] > 0 else cdf
    q_ref = np.concatenate([[u[0]], u]) if cdf[0] > 0 else u
    brk = np.union1d(p_ref, np.concatenate([[0.0], vcum]))
    brk = brk[(brk >= 0) & (brk <= 1)]
    a, b = brk[:-1], brk[1:]
    mid = (a + b) / 2
    qc = v_sorted[np.minimum(np.searchsorted(vcum, mid, side="left"), v_sorted.size - 1)]
    ra = np.interp(a, p_ref, q_ref)
    rb = np.interp(b, p_ref, q_ref)
    return float(_abs_linear_integral(qc - ra, qc - rb, b - a).sum())


def ks_wasserstein_binned(
    ref_values: np.ndarray,
    ref_cdf: np.ndarray,
    cnt: np.ndarray,
    sums: np.ndarray,
    eq: np.ndarray,
    *,
    linear: bool = False,
) -> tuple[float | None, float | None]:
    """KS and W1 from current counts in the sketch intervals (−∞,u0], (u0,u1], …, (u_last,∞).

    ``cnt``/``sums`` are the (weighted) count and sum of values per interval (K+1 of them), ``eq``
    the count equal to each sketch value (K). KS is exact against the sketch; W1 is exact except in
    an interval where the two CDFs cross, where the current CDF is taken as linear.
    """
    total = cnt.sum()
    k = ref_values.size
    if total <= 0 or k == 0:
        return None, None
    c = np.cumsum(cnt)[:k] / total  # F_cur(u_j)
    left = c - eq / total  # F_cur(u_j−)
    g = ref_cdf
    cand = [left[0], np.abs(c - g).max(), abs(c[-1] - 1.0)]
    if k > 1:
        cand.append(np.abs(left[1:] - g[:-1]).max())
    ks = float(max(cand))
    u = ref_values
    w1 = (u[0] * cnt[0] - sums[0]) / total + (sums[k] - u[-1] * cnt[k]) / total
    if k > 1:
        h = np.diff(u)
        inner_cnt = cnt[1:k]
        inner_sum = sums[1:k]
        area = c[:-1] * h + (u[1:] * inner_cnt - inner_sum) / total  # ∫ F_cur over (u_j, u_{j+1}]
        lvl = g[:-1]
        lo, hi = c[:-1], left[1:]
        above = lo >= lvl
        below = hi <= lvl
        cross = ~(above | below)
        contrib = np.where(above, area - lvl * h, lvl * h - area)
        with np.errstate(invalid="ignore", divide="ignore"):
            lin = h * ((lvl - lo) ** 2 + (hi - lvl) ** 2) / (2 * np.maximum(hi - lo, 1e-300))
        contrib = np.where(cross, lin, contrib)
        if linear:  # reference CDF linear between sketch points
            ref_area = h * (g[:-1] + g[1:]) / 2
            signed = area - ref_area
            da, db = lo - g[:-1], hi - g[1:]
            lin2 = _abs_linear_integral(da, db, h)
            contrib = np.where(da * db >= 0, np.abs(signed), lin2)
        w1 += float(np.maximum(contrib, 0.0).sum())
    return ks, float(w1)


def ks_p_value(d: float | None, n_ref: float, n_cur: float) -> float | None:
    """Two-sided asymptotic Smirnov p-value, as ``scipy.stats.ks_2samp(method="asymp")``."""
    if d is None or n_ref <= 0 or n_cur <= 0:
        return None
    m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
    return float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))


def js_distance(p: np.ndarray, q: np.ndarray) -> float | None:
    """Jensen–Shannon distance (natural log) between two count or share vectors."""
    p = np.asarray(p, dtype="float64")
    q = np.asarray(q, dtype="float64")
    if p.sum() <= 0 or q.sum() <= 0:
        return None
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return float(np.sqrt(max((kl_p + kl_q) / 2, 0.0)))


def chi_square(observed: np.ndarray, ref_counts: np.ndarray) -> tuple[float | None, int | None, float | None]:
    """Pearson chi-square of observed counts against reference shares (unseen bin floored, see module doc)."""
    o = np.asarray(observed, dtype="float64")
    e = np.asarray(ref_counts, dtype="float64")
    if o.sum() <= 0 or e.sum() <= 0:
        return None, None, None
    share = e / e.sum()
    keep = share > 0
    if o[-1] > 0 and not keep[-1]:  # a non-empty unseen bin: floor its reference share
        share[-1] = PSI_FLOOR
        share = share / share.sum()
        keep[-1] = True
    o, share = o[keep], share[keep]
    exp = share * o.sum()
    stat = float(((o - exp) ** 2 / exp).sum())
    df = int(keep.sum() - 1)
    if df < 1:
        return None, None, None
    return stat, df, float(stats.chi2.sf(stat, df))


def traffic_light(value: float | None, policy: PolicySpec) -> str | None:
    if value is None:
        return None
    return "red" if value >= policy.psi_red else "amber" if value >= policy.psi_amber else "green"


def _shares(c: np.ndarray) -> list[float]:
    t = c.sum()
    return (c / t).tolist() if t > 0 else [0.0] * c.size


def _missing(n: float, miss: float, ref_n: float, ref_miss: float) -> tuple[Any, Any, Any, Any]:
    rate = miss / n if n > 0 else None
    ref_rate = ref_miss / ref_n if ref_n > 0 else None
    diff = rate - ref_rate if rate is not None and ref_rate is not None else None
    p = two_proportion_z_test(miss, n, ref_miss, ref_n) if n > 0 and ref_n > 0 else None
    return _f(rate), _f(ref_rate), _f(diff), _f(p)


# --------------------------------------------------------------------------- accumulators


class NumericAccumulator:
    """Mergeable counts of one numeric column against its reference profile (streaming-safe)."""

    def __init__(self, prof: NumericProfile, *, keep_values: bool = False) -> None:
        self.prof = prof
        self.edges = np.asarray(prof.edges, dtype="float64")
        self.u = np.asarray(prof.sketch_values, dtype="float64")
        self.cdf = np.asarray(prof.sketch_cdf, dtype="float64")
        k = self.u.size
        self.n = 0.0
        self.missing = 0.0
        self.wsum = 0.0
        self.psi_counts = np.zeros(self.edges.size + 1)
        self.cnt = np.zeros(k + 1)
        self.sums = np.zeros(k + 1)
        self.eq = np.zeros(k)
        self.keep_values = keep_values
        self.values: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []

    def update(self, x: np.ndarray, w: np.ndarray | None = None) -> None:
        # Sort the chunk once and locate the (few) edges and sketch points in it: O(n log n) with
        # numpy's vectorised sort is ~6x faster than searching every row among 1000 sketch points.
        ok = np.isfinite(x)
        v = x[ok]
        if w is None:
            self.n += float(x.size)
            self.missing += float(x.size - v.size)
            vs = np.sort(v)
            ws = None
            cw = None
        else:
            self.n += float(w.sum())
            self.missing += float(w[~ok].sum())
            vw = w[ok]
            order = np.argsort(v, kind="stable")
            vs, ws = v[order], vw[order]
            cw = np.concatenate([[0.0], np.cumsum(ws)])
        if self.keep_values:  # kept sorted: the exact KS/W1 then sorts already-sorted runs
            self.values.append(vs)
            self.weights.append(np.ones(vs.size) if ws is None else ws)
        if vs.size == 0:
            return

        def mass(pos: np.ndarray) -> np.ndarray:  # (weighted) number of sorted values before each pos
            return pos.astype("float64") if cw is None else cw[pos]

        bounds = np.concatenate([[0], np.searchsorted(vs, self.edges, "right"), [vs.size]])
        self.psi_counts += np.diff(mass(bounds))  # bins (-inf,e1], (e1,e2], ..., (ek,inf)
        cs = np.concatenate([[0.0], np.cumsum(vs if ws is None else vs * ws)])
        self.wsum += float(cs[-1])
        k = self.u.size
        if k == 0:
            return
        right = np.searchsorted(vs, self.u, "right")  # values <= u_j
        left = np.searchsorted(vs, self.u, "left")  # values < u_j
        pos = np.concatenate([[0], right, [vs.size]])
        # interval j = (u_{j-1}, u_j] for j < k, (u_{k-1}, inf) for j = k (searchsorted "left" on u)
        self.cnt += np.diff(mass(pos))
        self.sums += np.diff(cs[pos])
        self.eq += mass(right) - mass(left)

    def result(self, policy: PolicySpec) -> NumericDrift:
        p = self.prof
        value = psi(np.asarray(p.counts), self.psi_counts, floor=PSI_FLOOR)
        present = self.n - self.missing
        if self.keep_values and self.values:
            v = np.concatenate(self.values)
            ks, w1 = ks_wasserstein_exact(
                self.u, self.cdf, v, sample_weight=np.concatenate(self.weights), linear=not p.sketch_exact
            )
            method = "exact"
        else:
            ks, w1 = ks_wasserstein_binned(
                self.u, self.cdf, self.cnt, self.sums, self.eq, linear=not p.sketch_exact
            )
            method = "binned"
        norm = max(p.std or 0.0, 0.001)
        mr, rmr, md, mp = _missing(self.n, self.missing, p.n, p.missing)
        return NumericDrift(
            n=self.n,
            missing_rate=mr,
            reference_missing_rate=rmr,
            missing_rate_difference=md,
            missing_p_value=mp,
            psi=_f(value),
            traffic_light=traffic_light(_f(value), policy),
            reference_shares=_shares(np.asarray(p.counts)),
            current_shares=_shares(self.psi_counts),
            ks=_f(ks),
            ks_p_value=ks_p_value(ks, p.n - p.missing, present),
            wasserstein=_f(w1),
            wasserstein_normed=_f(w1 / norm) if w1 is not None else None,
            mean=_f(self.wsum / present) if present > 0 else None,
            reference_mean=p.mean,
            method=method if p.sketch_exact else f"{method} (reference quantile sketch)",
        )


class CategoricalAccumulator:
    """Counts per reference category plus one unseen bin; remembers the unseen category names."""

    def __init__(self, prof: CategoricalProfile) -> None:
        self.prof = prof
        self.index = {c: i for i, c in enumerate(prof.categories)}
        self.counts = np.zeros(len(prof.categories) + 1)
        self.new: dict[str, float] = {}
        self.n = 0.0
        self.missing = 0.0

    def update(self, s: pd.Series, w: np.ndarray | None = None) -> None:
        counts, missing = category_counts(s, w)
        self.n += float(len(s) if w is None else w.sum())
        self.missing += missing
        for c, n in counts.items():
            i = self.index.get(c)
            if i is None:
                self.counts[-1] += n
                self.new[c] = self.new.get(c, 0.0) + n
            else:
                self.counts[i] += n

    def result(self, policy: PolicySpec) -> CategoricalDrift:
        p = self.prof
        ref = np.append(np.asarray(p.counts, dtype="float64"), 0.0)
        value = psi(ref, self.counts, floor=PSI_FLOOR)
        chi, df, pv = chi_square(self.counts, ref)
        mr, rmr, md, mp = _missing(self.n, self.missing, p.n, p.missing)
        tot = self.counts.sum()
        return CategoricalDrift(
            n=self.n,
            missing_rate=mr,
            reference_missing_rate=rmr,
            missing_rate_difference=md,
            missing_p_value=mp,
            psi=_f(value),
            traffic_light=traffic_light(_f(value), policy),
            categories=[*p.categories, UNSEEN],
            reference_shares=_shares(ref),
            current_shares=_shares(self.counts),
            js=js_distance(ref, self.counts),
            chi2=_f(chi),
            chi2_df=df,
            chi2_p_value=_f(pv),
            new_categories=sorted(self.new, key=lambda c: -self.new[c])[:50],
            unseen_share=float(self.counts[-1] / tot) if tot > 0 else 0.0,
        )


class WindowAccumulator:
    """Everything a window needs, accumulated chunk by chunk (flat memory when ``keep_values`` is off)."""

    def __init__(self, profile: ReferenceProfile, *, keep_values: bool = False) -> None:
        self.profile = profile
        self.features: dict[str, NumericAccumulator | CategoricalAccumulator] = {}
        for name, fp in profile.features.items():
            if isinstance(fp, NumericProfile):
                self.features[name] = NumericAccumulator(fp, keep_values=keep_values)
            else:
                self.features[name] = CategoricalAccumulator(fp)
        self.score = NumericAccumulator(profile.score, keep_values=keep_values) if profile.score else None
        self.rows = 0
        self.adv_n = 0.0
        self.adv_w = 0.0
        # per attribute: (n per group, favorable per group, integer n, integer favorable)
        self.groups: dict[str, list[np.ndarray]] = {}

    def update(
        self,
        frame: pd.DataFrame,
        *,
        score: np.ndarray | None = None,
        adverse: np.ndarray | None = None,
        codes: dict[str, np.ndarray] | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        """Add one chunk. ``codes`` maps attribute → group index per row in the profile's group order."""
        self.rows += len(frame)
        w = sample_weight
        for name, acc in self.features.items():
            if isinstance(acc, NumericAccumulator):
                acc.update(numeric_values(frame[name]), w)
            else:
                acc.update(frame[name], w)
        if self.score is not None and score is not None:
            self.score.update(np.asarray(score, dtype="float64"), w)
        if adverse is not None:
            ww = np.ones(len(frame)) if w is None else w
            adv = np.asarray(adverse, dtype=bool)
            self.adv_n += float(ww.sum())
            self.adv_w += float(ww[adv].sum())
            for attr, c in (codes or {}).items():
                k = len(self.profile.fairness[attr].groups)
                ok = c >= 0
                fav = ~adv
                acc_g = self.groups.setdefault(attr, [np.zeros(k) for _ in range(4)])
                acc_g[0] += np.bincount(c[ok], weights=ww[ok], minlength=k)
                acc_g[1] += np.bincount(c[ok & fav], weights=ww[ok & fav], minlength=k)
                acc_g[2] += np.bincount(c[ok], minlength=k)
                acc_g[3] += np.bincount(c[ok & fav], minlength=k)

    def drift(self, policy: PolicySpec) -> DriftBlock:
        feats = {name: acc.result(policy) for name, acc in self.features.items()}
        psis = {k: v.psi for k, v in feats.items() if v.psi is not None}
        worst = max(psis, key=lambda k: psis[k]) if psis else None
        n_amber = sum(1 for v in feats.values() if v.traffic_light == "amber")
        n_red = sum(1 for v in feats.values() if v.traffic_light == "red")
        return DriftBlock(
            features=feats,
            score=self.score.result(policy) if self.score is not None else None,
            summary=DriftSummary(
                n_features=len(feats),
                n_amber=n_amber,
                n_red=n_red,
                drifted_share=(n_amber + n_red) / len(feats) if feats else None,
                max_psi_feature=worst,
                max_psi=psis.get(worst) if worst else None,
            ),
        )

    def prediction(self) -> PredictionDrift | None:
        p = self.profile
        if self.adv_n <= 0 and self.score is None:
            return None
        rate = self.adv_w / self.adv_n if self.adv_n > 0 else None
        ref_rate = p.adverse_rate
        diff = rate - ref_rate if rate is not None and ref_rate is not None else None
        pv = None
        if rate is not None and ref_rate is not None:
            pv = two_proportion_z_test(self.adv_w, self.adv_n, ref_rate * p.n_rows, p.n_rows)
        mean = None
        if self.score is not None:
            present = self.score.n - self.score.missing
            mean = self.score.wsum / present if present > 0 else None
        return PredictionDrift(
            mean_score=_f(mean),
            reference_mean_score=p.score.mean if p.score else None,
            adverse_rate=_f(rate),
            reference_adverse_rate=ref_rate,
            adverse_rate_difference=_f(diff),
            adverse_rate_p_value=_f(pv),
        )

    def fairness(
        self, policy: PolicySpec, *, n_boot: int, rng: np.random.Generator
    ) -> dict[str, AttributeWindow]:
        out: dict[str, AttributeWindow] = {}
        for attr, ap in self.profile.fairness.items():
            if attr not in self.groups:
                continue
            n, fav, n_int, fav_int = self.groups[attr]
            names = list(ap.groups)
            r = names.index(ap.reference)
            total = n.sum()
            with np.errstate(invalid="ignore", divide="ignore"):
                rate = np.where(n > 0, fav / n, np.nan)
            reps = None
            if n_boot > 0:
                table = np.stack([fav_int, n_int - fav_int], axis=1)
                b = bootstrap_counts(table, n_boot, rng, stratified=True).astype("float64")
                with np.errstate(invalid="ignore", divide="ignore"):
                    br = b[:, :, 0] / b.sum(axis=2)
                    reps = br / br[:, [r]]
            groups = {}
            for i, g in enumerate(names):
                air = rate[i] / rate[r] if np.isfinite(rate[r]) and rate[r] > 0 else np.nan
                pv, test = (None, None)
                if i != r and n[i] > 0 and n[r] > 0:
                    pv, test = proportion_test(fav[i], n[i], fav[r], n[r])
                ci: list[float | None] | None = None
                if reps is not None and i == r and np.isfinite(air):
                    ci = [1.0, 1.0]  # the reference group, as the fairness audit reports it
                if reps is not None and i != r and np.isfinite(air):
                    lo, hi = percentile_ci(reps[:, i])  # type: ignore[misc]
                    ci = ci_pair(lo, hi)  # type: ignore[arg-type]
                ref_air = ap.groups[g].air
                alert = bool(
                    i != r
                    and np.isfinite(air)
                    and air < policy.air_min
                    and pv is not None
                    and pv < policy.significance
                    and n[i] >= policy.min_group_size
                )
                short = None
                if np.isfinite(rate[r]) and rate[r] > 0:
                    need = policy.air_min * float(rate[r]) * float(n[i]) - float(fav[i])
                    short = float(max(0, math.ceil(need - 1e-9)))
                groups[g] = GroupWindow(
                    n=float(n[i]),
                    share=_f(n[i] / total) if total > 0 else None,
                    reference_share=ap.groups[g].share,
                    favorable_rate=_f(rate[i]),
                    adverse_rate=_f(1 - rate[i]),
                    air=_f(air),
                    air_ci=ci,
                    air_p_value=_f(pv) if pv is not None else None,
                    test=test,
                    reference_air=ref_air,
                    air_change=_f(air - ref_air) if ref_air is not None and np.isfinite(air) else None,
                    shortfall=short,
                    alert=alert,
                )
            out[attr] = AttributeWindow(reference=ap.reference, groups=groups)
        return out


# --------------------------------------------------------------------------- alerts


def window_alerts(
    drift: DriftBlock, fairness: dict[str, AttributeWindow], policy: PolicySpec, section: str = "drift"
) -> list[Finding]:
    """Findings for red/amber PSI, new categories, missing-rate jumps and significant AIR shortfalls."""
    out: list[Finding] = []
    items: list[tuple[str, NumericDrift | CategoricalDrift]] = list(drift.features.items())
    if drift.score is not None:
        items.append(("score", drift.score))
    for name, d in items:
        label = "the score" if name == "score" else f"feature '{name}'"
        if d.traffic_light in ("red", "amber") and d.psi is not None:
            red = d.traffic_light == "red"
            out.append(
                finding(
                    section,
                    ("high" if name == "score" else "medium") if red else "low",
                    f"{'Significant' if red else 'Moderate'} population shift in {label}",
                    f"PSI {d.psi:.3f} ({d.traffic_light}) against the reference profile",
                    metric="psi",
                    value=d.psi,
                    policy=policy,
                    threshold_name="psi_red" if red else "psi_amber",
                )
            )
        if isinstance(d, CategoricalDrift) and d.new_categories:
            out.append(
                finding(
                    section,
                    "low",
                    f"New categories in feature '{name}'",
                    f"{len(d.new_categories)} value(s) not seen in the reference "
                    f"({', '.join(d.new_categories[:5])}), {d.unseen_share:.1%} of the window",
                    metric="unseen_share",
                    value=d.unseen_share,
                )
            )
        if (
            d.missing_rate_difference is not None
            and d.missing_rate_difference > policy.missing_gap_max
            and (d.missing_p_value or 1.0) < policy.significance
        ):
            out.append(
                finding(
                    section,
                    "medium",
                    f"Missing-rate increase in {label}",
                    f"missing rate {d.missing_rate:.1%} vs {d.reference_missing_rate:.1%} in the reference",
                    metric="missing_rate_difference",
                    value=d.missing_rate_difference,
                    policy=policy,
                    threshold_name="missing_gap_max",
                )
            )
    for attr, aw in fairness.items():
        for g, gw in aw.groups.items():
            if gw.alert and gw.air is not None:
                out.append(
                    finding(
                        "fairness",
                        "high",
                        f"Adverse impact ratio below the threshold for {attr}={g}",
                        f"AIR {gw.air:.3f}{_ci_text(gw.air_ci)} vs reference group '{aw.reference}', "
                        f"p = {gw.air_p_value:.3g}, n = {gw.n:,.0f}; reference-profile AIR "
                        f"{'n/a' if gw.reference_air is None else format(gw.reference_air, '.3f')}; "
                        f"shortfall {gw.shortfall or 0:,.0f} favorable decisions. A screening signal for "
                        "fair-lending review (four-fifths rule, 29 CFR 1607.4(D)), not a legal finding",
                        metric="air",
                        value=gw.air,
                        policy=policy,
                        threshold_name="air_min",
                    )
                )
    return out


def _ci_text(ci: list[float | None] | None) -> str:
    if not ci or any(v is None for v in ci):
        return ""
    return f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})"


def fairness_as_dict(fairness: dict[str, AttributeWindow]) -> dict[str, Any]:
    return {"attributes": {k: v.model_dump(mode="json") for k, v in fairness.items()}}


__all__ = [
    "CONVENTIONS",
    "AttributeWindow",
    "CategoricalAccumulator",
    "CategoricalDrift",
    "DriftBlock",
    "NumericAccumulator",
    "NumericDrift",
    "PredictionDrift",
    "WindowAccumulator",
    "WindowPerformance",
    "WindowResult",
    "chi_square",
    "fairness_as_dict",
    "js_distance",
    "ks_p_value",
    "ks_wasserstein_binned",
    "ks_wasserstein_exact",
    "traffic_light",
    "window_alerts",
]
