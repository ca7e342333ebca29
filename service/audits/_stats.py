"""Shared statistics for every audit: score tables, count bootstrap, tests, binning, PSI.

Conventions
-----------
* Scores are oriented so that **higher = riskier** before they reach these helpers
  (``AuditContext.risk`` does that); the event (``y == 1``) is the adverse outcome.
* Confidence intervals come from one bootstrap that resamples **counts, not rows**: data are first
  reduced to a table of cells (score bin × outcome, or group × outcome × decision), then each
  replicate draws the cell counts from a multinomial with the observed proportions. That is the
  ordinary nonparametric bootstrap whenever the statistic depends on the data only through the
  cell counts (true for AUC, KS, PR-AUC when cells are the distinct scores, and for every rate of a
  confusion table), and it costs O(cells) per replicate instead of O(rows).
  With more than ``max_bins`` distinct scores, cells are score quantile bins; the point estimate is
  still computed exactly from the rows, only the CI uses the binned table.
* Sample weights: a replicate's weighted count in a cell = resampled count × the cell's mean weight.
* Percentile CIs at 95% by default; ``None`` when fewer than half the replicates are defined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

FloatArray = np.ndarray


# --------------------------------------------------------------------------- bootstrap


def bootstrap_counts(
    counts: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
    *,
    stratified: bool = False,
) -> np.ndarray:
    """Multinomial bootstrap replicates of a table of non-negative integer counts.

    Parameters
    ----------
    counts : array of shape (K,) or (S, K).
    n_boot : number of replicates.
    rng : the seeded generator.
    stratified : if True and ``counts`` is 2-D, each row (stratum, e.g. a group) is resampled
        with its own total, so group sizes stay fixed; otherwise the whole table is one sample.

    Returns
    -------
    ndarray of shape (n_boot, *counts.shape), integer counts.
    """
    c = np.asarray(counts, dtype=np.int64)
    if c.ndim == 1 or not stratified:
        flat = c.reshape(-1)
        total = int(flat.sum())
        if total == 0:
            return np.zeros((n_boot, *c.shape), dtype=np.int64)
        reps = rng.multinomial(total, flat / total, size=n_boot)
        return reps.reshape((n_boot, *c.shape))
    out = np.zeros((n_boot, *c.shape), dtype=np.int64)
    for s in range(c.shape[0]):
        total = int(c[s].sum())
        if total:
            out[:, s, :] = rng.multinomial(total, c[s] / total, size=n_boot)
    return out


def percentile_ci(
    reps: np.ndarray, *, level: float = 0.95, axis: int = 0
) -> tuple[np.ndarray, np.ndarray] | tuple[float | None, float | None]:
    """Percentile interval over ``axis``; NaN replicates are ignored, ``None``/NaN if mostly undefined."""
    r = np.asarray(reps, dtype="float64")
    alpha = (1 - level) / 2
    finite = np.isfinite(r)
    ok = finite.mean(axis=axis) >= 0.5
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo = np.nanquantile(np.where(finite, r, np.nan), alpha, axis=axis)
            hi = np.nanquantile(np.where(finite, r, np.nan), 1 - alpha, axis=axis)
    lo = np.where(ok, lo, np.nan)
    hi = np.where(ok, hi, np.nan)
    if np.ndim(lo) == 0:
        return (_f(float(lo)), _f(float(hi)))
    return lo, hi


def _f(x: float | np.floating | None) -> float | None:
    """A JSON-safe float: None for NaN/inf."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def ci_pair(lo: float | None, hi: float | None) -> list[float | None] | None:
    return None if lo is None or hi is None else [lo, hi]


# --------------------------------------------------------------------------- score tables


@dataclass(frozen=True)
class ScoreTable:
    """Scores reduced to ordered cells: ``values`` ascending, event/non-event counts per cell."""

    values: np.ndarray  # representative score per cell (ascending)
    pos_n: np.ndarray  # integer count of events
    neg_n: np.ndarray  # integer count of non-events
    pos_w: np.ndarray  # weighted count of events
    neg_w: np.ndarray  # weighted count of non-events
    exact: bool  # True when cells are the distinct score values

    def weighted(self, pos_n: np.ndarray, neg_n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted counts for resampled integer counts (cell mean weight × count)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            wp = np.where(self.pos_n > 0, self.pos_w / np.maximum(self.pos_n, 1), 0.0)
            wn = np.where(self.neg_n > 0, self.neg_w / np.maximum(self.neg_n, 1), 0.0)
        return pos_n * wp, neg_n * wn


def score_table(
    score: np.ndarray,
    y: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    max_bins: int = 4000,
) -> ScoreTable:
    """Reduce (score, y) to cells; exact (distinct values) when there are at most ``max_bins``."""
    return _score_table(score, y, sample_weight, max_bins)[0]


def first_of_runs(srt: np.ndarray) -> np.ndarray:
    """Mask of the first element of each run of equal values in a sorted array (its distinct values)."""
    new = np.empty(srt.size, dtype=bool)
    if srt.size:
        new[0] = True
        np.not_equal(srt[1:], srt[:-1], out=new[1:])
    return new


def quantile_edges(x: np.ndarray, max_bins: int) -> np.ndarray:
    """The distinct inner quantile edges of ``max_bins`` equal-count cells of ``x`` (NaN-free). The
    quantiles are order statistics: the same from a sorted copy, and faster to select there."""
    return np.unique(np.quantile(x, np.linspace(0, 1, max_bins + 1)[1:-1]))


def _score_table(
    score: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None, max_bins: int
) -> tuple[ScoreTable, int | None]:
    """``score_table`` and the number of distinct scores when it was counted on the way (NaN-free
    input; ``None`` when binning was decided without counting)."""
    tables, distinct = _score_tables(score, y, [sample_weight], max_bins)
    return tables[0], distinct


def _score_tables(
    score: np.ndarray, y: np.ndarray, sample_weights: list[np.ndarray | None], max_bins: int
) -> tuple[list[ScoreTable], int | None]:
    """``[score_table(score, y, sample_weight=w, max_bins=max_bins) for w in sample_weights]``, the
    cells found once (they depend on the scores only), and the distinct count as in ``_score_table``."""
    s = np.asarray(score, dtype="float64")
    yy = np.asarray(y).astype(bool)
    if s.size <= max_bins or np.isnan(s).any():
        uniq, inv = np.unique(s, return_inverse=True)
        exact = uniq.size <= max_bins
        srt = s
        distinct: int | None = None if np.isnan(s).any() else int(uniq.size)
    else:
        # One sort (no argsort) tells exact from binned; np.unique's inverse is only needed when exact,
        # and then the distinct values are few, so searchsorted gives the same inverse cheaply.
        srt = np.sort(s)
        new = first_of_runs(srt)
        distinct = int(np.count_nonzero(new))
        exact = distinct <= max_bins
        if exact:
            uniq = srt[new]
            inv = np.searchsorted(uniq, s)
    if exact:
        values, idx, k = uniq, inv, uniq.size
    else:
        edges = quantile_edges(srt, max_bins)
        idx = np.searchsorted(edges, s, side="left")
        k = edges.size + 1
        sums = np.bincount(idx, weights=s, minlength=k)
        cnt = np.bincount(idx, minlength=k)
        values = np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)
    i_pos, i_neg = idx[yy], idx[~yy]
    pos_n = np.bincount(i_pos, minlength=k)
    neg_n = np.bincount(i_neg, minlength=k)
    keep = (pos_n + neg_n) > 0
    tables = []
    for sample_weight in sample_weights:
        w = np.ones_like(s) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
        pos_w = np.bincount(i_pos, weights=w[yy], minlength=k)
        neg_w = np.bincount(i_neg, weights=w[~yy], minlength=k)
        tables.append(ScoreTable(values[keep], pos_n[keep], neg_n[keep], pos_w[keep], neg_w[keep], exact))
    return tables, distinct


def auc_from_counts(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """ROC AUC from per-cell counts in ascending score order (ties within a cell count 1/2).

    Works on the last axis, so ``pos``/``neg`` may carry leading replicate axes.
    """
    pos = np.asarray(pos, dtype="float64")
    neg = np.asarray(neg, dtype="float64")
    P = pos.sum(axis=-1)
    N = neg.sum(axis=-1)
    neg_below = np.cumsum(neg, axis=-1) - neg
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((P > 0) & (N > 0), num / (P * N), np.nan)


def ks_from_counts(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Kolmogorov–Smirnov distance between the event and non-event score distributions."""
    pos = np.asarray(pos, dtype="float64")
    neg = np.asarray(neg, dtype="float64")
    P = pos.sum(axis=-1, keepdims=True)
    N = neg.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.abs(np.cumsum(pos, axis=-1) / P - np.cumsum(neg, axis=-1) / N)
        out = d.max(axis=-1)
    return np.where((P[..., 0] > 0) & (N[..., 0] > 0), out, np.nan)


def average_precision_from_counts(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Average precision (PR-AUC as scikit-learn defines it) from ascending-order cell counts."""
    pos = np.asarray(pos, dtype="float64")[..., ::-1]
    neg = np.asarray(neg, dtype="float64")[..., ::-1]
    tp = np.cumsum(pos, axis=-1)
    fp = np.cumsum(neg, axis=-1)
    P = tp[..., -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall_step = pos / P
        ap = (recall_step * precision).sum(axis=-1)
    return np.where(P[..., 0] > 0, ap, np.nan)


# --------------------------------------------------------------------------- tests


def two_proportion_z_test(x1: float, n1: float, x2: float, n2: float) -> float | None:
    """Two-sided p-value of H0: p1 == p2 with the pooled-variance z statistic."""
    if n1 <= 0 or n2 <= 0:
        return None
    p = (x1 + x2) / (n1 + n2)
    if p <= 0 or p >= 1:
        return 1.0 if x1 / n1 == x2 / n2 else None
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    z = (x1 / n1 - x2 / n2) / se
    return float(2 * stats.norm.sf(abs(z)))


def fisher_exact_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided Fisher exact p-value of the 2×2 table [[x1, n1-x1], [x2, n2-x2]]."""
    res = stats.fisher_exact([[int(x1), int(n1 - x1)], [int(x2), int(n2 - x2)]], alternative="two-sided")
    return float(res.pvalue)


def proportion_test(x1: float, n1: float, x2: float, n2: float) -> tuple[float | None, str]:
    """Fisher exact when any expected cell count is below 5, else the two-proportion z test."""
    if n1 <= 0 or n2 <= 0:
        return None, "undefined"
    p = (x1 + x2) / (n1 + n2)
    expected = [n1 * p, n1 * (1 - p), n2 * p, n2 * (1 - p)]
    if min(expected) < 5:
        return fisher_exact_p(round(x1), round(n1), round(x2), round(n2)), "fisher_exact"
    return two_proportion_z_test(x1, n1, x2, n2), "two_proportion_z"


def benjamini_hochberg(pvalues: np.ndarray | list[float | None]) -> np.ndarray:
    """Benjamini–Hochberg q-values; NaN/None p-values stay NaN and do not count as tests."""
    p = np.array([np.nan if v is None else v for v in pvalues], dtype="float64")
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv, kind="mergesort")
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


def hosmer_lemeshow(
    y: np.ndarray, p: np.ndarray, *, groups: int = 10, sample_weight: np.ndarray | None = None
) -> dict[str, object]:
    """Hosmer–Lemeshow test over deciles of predicted probability.

    HL = Σ_k (O_k − E_k)² / (E_k (1 − E_k / n_k)),  df = g − 2 (REGULATORY.md §(d)).
    Returns the decile table (n, mean predicted, observed rate) and the statistic and p-value.
    """
    pr = np.asarray(p, dtype="float64")
    yy = np.asarray(y, dtype="float64")
    w = np.ones_like(pr) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    order = np.argsort(pr, kind="mergesort")
    cw = np.cumsum(w[order])
    bin_of_sorted = np.minimum((cw / cw[-1] * groups - 1e-12).astype(int), groups - 1)
    bins = np.empty_like(bin_of_sorted)
    bins[order] = bin_of_sorted
    n = np.bincount(bins, weights=w, minlength=groups)
    e = np.bincount(bins, weights=w * pr, minlength=groups)
    o = np.bincount(bins, weights=w * yy, minlength=groups)
    used = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = (o - e) ** 2 / (e * (1 - e / n))
    terms = terms[used & np.isfinite(terms)]
    g = int(used.sum())
    stat = float(terms.sum()) if terms.size else None
    pval = float(stats.chi2.sf(stat, g - 2)) if stat is not None and g > 2 else None
    table = [
        {
            "bin": int(k + 1),
            "n": float(n[k]),
            "mean_predicted": _f(e[k] / n[k]),
            "observed_rate": _f(o[k] / n[k]),
            "events": float(o[k]),
        }
        for k in range(groups)
        if used[k]
    ]
    return {"table": table, "statistic": stat, "df": g - 2, "p_value": pval}


def jeffreys_p_value(defaults: float, n: float, pd_estimate: float) -> float | None:
    """One-sided Jeffreys test (ECB 2019): p = F_Beta(D + ½, N − D + ½)(PD); small p ⇒ PD too low."""
    if n <= 0:
        return None
    return float(stats.beta.cdf(pd_estimate, defaults + 0.5, n - defaults + 0.5))


def weighted_mean_var(x: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float, float]:
    """(sum of weights, weighted mean, unbiased-style weighted variance with frequency weights)."""
    x = np.asarray(x, dtype="float64")
    ww = np.ones_like(x) if w is None else np.asarray(w, dtype="float64")
    sw = float(ww.sum())
    if sw <= 0:
        return 0.0, float("nan"), float("nan")
    m = float((ww * x).sum() / sw)
    v = float((ww * (x - m) ** 2).sum() / (sw - 1)) if sw > 1 else float("nan")
    return sw, m, v


# --------------------------------------------------------------------------- binning and PSI


def decile_edges(x: np.ndarray, *, n_bins: int = 10) -> np.ndarray:
    """Unique interior quantile edges e1<…<ek of the reference (NaNs ignored)."""
    v = np.asarray(x, dtype="float64")
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.array([], dtype="float64")
    return quantile_edges(v, n_bins)


def bin_counts(x: np.ndarray, edges: np.ndarray, *, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Counts in bins (−∞,e1], (e1,e2], …, (ek,∞) (SPEC.md §3); NaNs are not counted."""
    v = np.asarray(x, dtype="float64")
    ok = np.isfinite(v)
    idx = np.searchsorted(edges, v[ok], side="left")
    w = None if sample_weight is None else np.asarray(sample_weight, dtype="float64")[ok]
    return np.bincount(idx, weights=w, minlength=edges.size + 1).astype("float64")


def psi(expected: np.ndarray, actual: np.ndarray, *, floor: float = 1e-4) -> float | None:
    """Population stability index Σ (a − e)·ln(a / e) over bins, proportions floored at ``floor``."""
    e = np.asarray(expected, dtype="float64")
    a = np.asarray(actual, dtype="float64")
    if e.sum() <= 0 or a.sum() <= 0:
        return None
    ep = np.maximum(e / e.sum(), floor)
    ap = np.maximum(a / a.sum(), floor)
    return float(((ap - ep) * np.log(ap / ep)).sum())


def safe_ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0 or not math.isfinite(num) or not math.isfinite(den):
        return None
    return float(num / den)


__all__ = [
    "ScoreTable",
    "auc_from_counts",
    "average_precision_from_counts",
    "benjamini_hochberg",
    "bin_counts",
    "bootstrap_counts",
    "ci_pair",
    "decile_edges",
    "fisher_exact_p",
    "hosmer_lemeshow",
    "jeffreys_p_value",
    "percentile_ci",
    "proportion_test",
    "psi",
    "safe_ratio",
    "score_table",
    "two_proportion_z_test",
    "weighted_mean_var",
]


# --------------------------------------------------------------------------- association (data audits)


def contingency_from_membership(
    codes: np.ndarray, membership: np.ndarray, *, sample_weight: np.ndarray | None = None
) -> np.ndarray:
    """(categories × groups) table Σ_i w_i·m_ig over rows of each category code (codes 0..K−1).

    With one-hot ``membership`` these are ordinary counts; with BISG probabilities each row counts
    toward every group with its probability (CFPB 2014 weighting).
    """
    c = np.asarray(codes, dtype=np.int64)
    m = np.asarray(membership, dtype="float64")
    if sample_weight is not None:
        m = m * np.asarray(sample_weight, dtype="float64")[:, None]
    k = int(c.max()) + 1 if c.size else 0
    cols = [np.bincount(c, weights=m[:, j], minlength=k) for j in range(m.shape[1])]
    return np.column_stack(cols) if cols else np.zeros((k, 0))


def cramers_v(table: np.ndarray) -> float | None:
    """Cramér's V = √(χ² / (n·(min(r, c) − 1))), χ² of independence without continuity correction.

    Empty rows/columns are dropped first; ``None`` when fewer than two rows or columns remain.
    (Cramér 1946, §21.9; same as ``scipy.stats.contingency.association(method="cramer")``.)
    """
    t = np.asarray(table, dtype="float64")
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    if t.shape[0] < 2 or t.shape[1] < 2:
        return None
    n = t.sum()
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / n
    chi2 = float(((t - expected) ** 2 / expected).sum())
    return _f(math.sqrt(chi2 / (n * (min(t.shape) - 1))))


def correlation_ratio(
    x: np.ndarray, membership: np.ndarray, *, sample_weight: np.ndarray | None = None
) -> float | None:
    """Correlation ratio η = √(Σ_g n_g (x̄_g − x̄)² / Σ_i w_i (x_i − x̄)²) (Pearson 1903).

    ``membership`` (n, k) weights assign rows to groups (one-hot or probabilities); NaN ``x`` rows are
    dropped. ``None`` when x is constant or fewer than two groups have weight.
    """
    xv = np.asarray(x, dtype="float64")
    m = np.asarray(membership, dtype="float64")
    w = np.ones_like(xv) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    ok = np.isfinite(xv) & (m.sum(axis=1) > 0)
    xv, m, w = xv[ok], m[ok] * w[ok, None], w[ok]
    ng = m.sum(axis=0)
    if (ng > 0).sum() < 2:
        return None
    mean = float((m.sum(axis=1) * xv).sum() / m.sum())
    ss_tot = float((m.sum(axis=1) * (xv - mean) ** 2).sum())
    if ss_tot <= 0:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        gm = np.where(ng > 0, (m * xv[:, None]).sum(axis=0) / ng, mean)
    ss_between = float((ng * (gm - mean) ** 2).sum())
    return _f(math.sqrt(min(max(ss_between / ss_tot, 0.0), 1.0)))


def normalized_mutual_info(table: np.ndarray) -> float | None:
    """Normalised mutual information NMI = I(X; G) / ((H(X) + H(G)) / 2) of a contingency table.

    Natural logs; the arithmetic-mean normalisation of ``sklearn.metrics.normalized_mutual_info_score``
    (Strehl & Ghosh 2002; Vinh et al. 2010). ``None`` for an empty table; 1.0 when both are constant.
    """
    t = np.asarray(table, dtype="float64")
    n = t.sum()
    if n <= 0:
        return None
    p = t / n
    px = p.sum(axis=1)
    pg = p.sum(axis=0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / np.outer(px, pg)[nz])).sum())
    hx = float(-(px[px > 0] * np.log(px[px > 0])).sum())
    hg = float(-(pg[pg > 0] * np.log(pg[pg > 0])).sum())
    if hx == 0 and hg == 0:
        return 1.0
    denom = (hx + hg) / 2
    return _f(min(max(mi / denom, 0.0), 1.0)) if denom > 0 else None


def chi_square_gof(
    observed: np.ndarray, expected_shares: np.ndarray
) -> tuple[float | None, float | None, int]:
    """Pearson χ² goodness of fit of counts to shares: χ² = Σ (O − E)² / E, E = n·share/Σshare, df = k − 1."""
    o = np.asarray(observed, dtype="float64")
    s = np.asarray(expected_shares, dtype="float64")
    n = o.sum()
    k = o.size
    if k < 2 or n <= 0 or s.sum() <= 0 or (s <= 0).any():
        return None, None, max(k - 1, 0)
    e = n * s / s.sum()
    stat = float(((o - e) ** 2 / e).sum())
    return stat, float(stats.chi2.sf(stat, k - 1)), k - 1


__all__ += [
    "chi_square_gof",
    "contingency_from_membership",
    "correlation_ratio",
    "cramers_v",
    "normalized_mutual_info",
]
