"""Change points in the per-period event rate by binary segmentation (Scott & Knott 1974; Vostrikova 1981).

Method (documented in the README, ``temporal`` section):

1. The series is the per-period (weighted) event counts e_i and row counts n_i, in time order.
2. For a segment [a, b) the binomial log-likelihood at its pooled rate p = Σe/Σn is
   LL = Σe·ln p + (Σn − Σe)·ln(1 − p). For every split point k with at least ``min_size`` periods on
   each side, G(k) = 2·(LL[a,k) + LL[k,b) − LL[a,b)) is the likelihood-ratio statistic of "one
   rate" against "a step at k".
3. The best split over all current segments is tested: the statistic is divided by the
   over-dispersion factor φ = max(1, X²/(m − s)) of the segmentation that would result (Pearson X²
   of the period counts around their segment rates, m periods, s segments; quasi-binomial), and
   its χ²(1) p-value is multiplied by the number of candidate split points in that segment
   (Bonferroni, because the split was chosen as the maximum).
4. The split is kept when that adjusted p-value is below ``alpha``; then repeat on the new
   segments, up to ``max_breaks``. Stop at the first rejected split.

A break at index k means the rate changes between period k − 1 and period k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Break:
    index: int
    before_rate: float
    after_rate: float
    statistic: float
    dispersion: float
    p_value: float


def _ll(e: float, n: float) -> float:
    if n <= 0:
        return 0.0
    p = e / n
    out = 0.0
    if e > 0:
        out += e * np.log(p)
    if n - e > 0:
        out += (n - e) * np.log1p(-p)
    return float(out)


def _dispersion(events: np.ndarray, totals: np.ndarray, cuts: list[int]) -> float:
    bounds = [0, *sorted(cuts), events.size]
    x2 = 0.0
    for a, b in zip(bounds, bounds[1:], strict=False):
        e, n = events[a:b], totals[a:b]
        p = e.sum() / n.sum() if n.sum() > 0 else 0.0
        if 0 < p < 1:
            x2 += float((((e - n * p) ** 2) / (n * p * (1 - p)))[n > 0].sum())
    df = int((totals > 0).sum()) - (len(bounds) - 1)
    return max(1.0, x2 / df) if df > 0 else 1.0


def binary_segmentation(
    events: np.ndarray,
    totals: np.ndarray,
    *,
    alpha: float = 0.01,
    min_size: int = 2,
    max_breaks: int = 5,
) -> list[Break]:
    """Change points of a binomial rate series (see the module docstring for the method).

    Parameters
    ----------
    events, totals : per-period (weighted) event counts and row counts, in time order.
    alpha : family-wise level of each split test (after the Bonferroni factor).
    min_size : minimum number of periods on each side of a break.
    max_breaks : at most this many breaks.

    Returns
    -------
    list of :class:`Break`, sorted by index.
    """
    e = np.asarray(events, dtype="float64")
    n = np.asarray(totals, dtype="float64")
    m = e.size
    cuts: list[int] = []
    found: list[Break] = []
    ce = np.concatenate([[0.0], np.cumsum(e)])
    cn = np.concatenate([[0.0], np.cumsum(n)])
    while len(cuts) < max_breaks:
        bounds = [0, *sorted(cuts), m]
        best: tuple[float, int, int] | None = None  # (G, k, candidates)
        for a, b in zip(bounds, bounds[1:], strict=False):
            ks = range(a + min_size, b - min_size + 1)
            if len(ks) == 0:
                continue
            whole = _ll(ce[b] - ce[a], cn[b] - cn[a])
            for k in ks:
                g = 2.0 * (_ll(ce[k] - ce[a], cn[k] - cn[a]) + _ll(ce[b] - ce[k], cn[b] - cn[k]) - whole)
                if best is None or g > best[0]:
                    best = (g, k, len(ks))
        if best is None or best[0] <= 0:
            break
        g, k, cands = best
        phi = _dispersion(e, n, [*cuts, k])
        p = min(1.0, float(stats.chi2.sf(g / phi, 1)) * cands)
        if p >= alpha:
            break
        cuts.append(k)
        found.append(Break(k, float("nan"), float("nan"), float(g), float(phi), p))
    # report the rates of the final segments on either side of each break
    final = [0, *sorted(cuts), m]
    out = []
    for br in sorted(found, key=lambda b: b.index):
        i = final.index(br.index)
        a, k, b = final[i - 1], final[i], final[i + 1]
        before = (ce[k] - ce[a]) / max(cn[k] - cn[a], 1e-300)
        after = (ce[b] - ce[k]) / max(cn[b] - cn[k], 1e-300)
        out.append(Break(br.index, float(before), float(after), br.statistic, br.dispersion, br.p_value))
    return out


__all__ = ["Break", "binary_segmentation"]
