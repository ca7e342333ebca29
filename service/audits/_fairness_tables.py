"""Grouped count tables and their count bootstrap for the fairness audit (private helper).

Every fairness metric of a group depends on the data only through

* the 2×2 confusion table of observed outcome × decision (cell ``c = 2·y + adverse``:
  0 = TN, 1 = FP, 2 = FN, 3 = TP), weighted by ``membership × sample_weight``;
* per score bin and outcome: counts and weighted sums of 1, risk, risk² (for the SMD and the
  per-group AUC bootstrap);
* the group's exact score table (for the exact per-group AUC).

So the data are reduced to those tables once (O(n)), and the 1,000 bootstrap replicates resample
the tables' integer counts (multinomial, stratified by group: group sizes stay fixed), never the
rows. Membership is one-hot for observed attributes (a fast path on integer codes) or BISG
probabilities (weights in [0, 1]; a row then belongs fractionally to every group it may be in, and
the integer count of a cell is the number of rows with positive membership in it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.audits._stats import auc_from_counts, bootstrap_counts

# confusion cell index c = 2*y + adverse
TN, FP, FN, TP = 0, 1, 2, 3


@dataclass(frozen=True)
class GroupTables:
    """Count tables of k groups (row ``g`` of each array is group ``g``)."""

    n: np.ndarray  # (k,) rows in the group (Σ membership)
    cells_n: np.ndarray  # (k, 4) integer rows with positive membership per confusion cell
    cells_w: np.ndarray  # (k, 4) weighted count per confusion cell (membership × weight)
    sum_x: np.ndarray  # (k,) Σ m·w·(risk − centre)
    sum_x2: np.ndarray  # (k,) Σ m·w·(risk − centre)²
    sum_p: np.ndarray | None  # (k,) Σ m·w·prob, None without probabilities
    auc: np.ndarray  # (k,) exact weighted AUC of risk within the group (NaN when undefined)
    auc_binned: np.ndarray  # (k,) the same AUC from the binned table (for re-centring the CI)
    bins_n: np.ndarray  # (k, 2, B) integer counts per outcome × score bin
    bins_w: np.ndarray  # (k, 2, B) weighted counts
    bins_x: np.ndarray  # (k, 2, B) weighted Σ (risk − centre)
    bins_x2: np.ndarray  # (k, 2, B) weighted Σ (risk − centre)²

    @property
    def k(self) -> int:
        return int(self.n.shape[0])


def _is_one_hot(membership: np.ndarray) -> bool:
    m = membership
    return bool(np.all((m == 0) | (m == 1)) and np.all(m.sum(axis=1) <= 1))


def _codes(membership: np.ndarray) -> np.ndarray:
    return np.where(membership.sum(axis=1) > 0, membership.argmax(axis=1), -1).astype(np.int64)


@dataclass(frozen=True)
class Rows:
    """Per-row arrays shared by every group table of one split (computed once, O(n log n))."""

    y: np.ndarray  # int64 0/1
    cell: np.ndarray  # confusion cell 2·y + adverse
    w: np.ndarray  # frequency weights (ones without weights)
    weighted: bool  # False when w is all ones (weighted counts = integer counts)
    wx: np.ndarray  # w·(risk − centre)
    wx2: np.ndarray  # w·(risk − centre)²
    wp: np.ndarray | None  # w·prob
    nb: int  # number of score bins
    yb: np.ndarray  # y·nb + score bin
    order: np.ndarray  # argsort(risk), stable
    vid_s: np.ndarray  # distinct-value id of each row in sorted order
    y_s: np.ndarray
    w_s: np.ndarray


def prepare_rows(
    y: np.ndarray,
    adverse: np.ndarray,
    risk: np.ndarray,
    *,
    prob: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    n_bins: int = 32,
) -> Rows:
    """Sort once, bin the pooled score into ``n_bins`` quantile bins, and precompute weighted sums."""
    yy = np.asarray(y).astype(np.int64)
    aa = np.asarray(adverse).astype(np.int64)
    r = np.asarray(risk, dtype="float64")
    n_rows = r.shape[0]
    weighted = sample_weight is not None
    w = np.ones(n_rows) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    order = np.argsort(r, kind="stable")
    r_s = r[order]
    # centre the score so that Σx² − (Σx)²/n does not lose digits on large-valued scores
    centre = float(np.average(r, weights=w)) if w.sum() > 0 else 0.0
    x = r - centre
    wx = w * x
    # global score bins (quantiles of the pooled score); values equal to an edge fall left
    if n_rows:
        pos = np.linspace(0, n_rows - 1, n_bins + 1)[1:-1].round().astype(np.int64)
        edges = np.unique(r_s[pos])
    else:
        edges = np.array([], dtype="float64")
    nb = edges.size + 1
    bin_idx = np.searchsorted(edges, r, side="left")
    # distinct-value id of every row in sorted order (ties share an id)
    vid_s = np.cumsum(np.r_[True, r_s[1:] != r_s[:-1]]) - 1 if n_rows else np.zeros(0, dtype=np.int64)
    return Rows(
        y=yy,
        cell=2 * yy + aa,
        w=w,
        weighted=weighted,
        wx=wx,
        wx2=wx * x,
        wp=None if prob is None else w * np.asarray(prob, dtype="float64"),
        nb=nb,
        yb=yy * nb + bin_idx,
        order=order,
        vid_s=vid_s,
        y_s=yy[order],
        w_s=w[order],
    )


def group_tables(
    y: np.ndarray,
    adverse: np.ndarray,
    risk: np.ndarray,
    membership: np.ndarray,
    *,
    prob: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    n_bins: int = 32,
    codes: np.ndarray | None = None,
    rows: Rows | None = None,
) -> GroupTables:
    """Reduce rows to the per-group count tables described in the module docstring.

    ``codes`` (hard group index per row, −1 = missing) may be given instead of a one-hot
    ``membership`` (which is then only read for its number of columns); ``rows`` is
    :func:`prepare_rows` of the same data when the caller already has it (one sort per split).
    """
    if rows is None:
        rows = prepare_rows(y, adverse, risk, prob=prob, sample_weight=sample_weight, n_bins=n_bins)
    m = np.asarray(membership, dtype="float64")
    k = m.shape[1]
    nb, w = rows.nb, rows.w

    one_hot = codes is not None or _is_one_hot(m)
    cells_n = np.zeros((k, 4), dtype=np.int64)
    cells_w = np.zeros((k, 4))
    bins_n = np.zeros((k, 2, nb), dtype=np.int64)
    bins_w = np.zeros((k, 2, nb))
    bins_x = np.zeros((k, 2, nb))
    bins_x2 = np.zeros((k, 2, nb))
    auc = np.full(k, np.nan)
    if one_hot:
        if codes is None:
            codes = _codes(m)
        codes = np.asarray(codes, dtype=np.int64)
        if (codes < 0).any():
            ok = codes >= 0
            c_ok, cell, yb = codes[ok], rows.cell[ok], rows.yb[ok]
            w_ok, wx, wx2 = w[ok], rows.wx[ok], rows.wx2[ok]
            wp = None if rows.wp is None else rows.wp[ok]
        else:  # no missing values: skip the copies
            c_ok, cell, yb, w_ok, wx, wx2, wp = codes, rows.cell, rows.yb, w, rows.wx, rows.wx2, rows.wp
        key = c_ok * 4 + cell
        cells_n[:] = np.bincount(key, minlength=4 * k).reshape(k, 4)
        cells_w[:] = (
            np.bincount(key, weights=w_ok, minlength=4 * k).reshape(k, 4) if rows.weighted else cells_n
        )
        key2 = c_ok * (2 * nb) + yb
        size = 2 * nb * k
        bins_n[:] = np.bincount(key2, minlength=size).reshape(k, 2, nb)
        bins_w[:] = (
            np.bincount(key2, weights=w_ok, minlength=size).reshape(k, 2, nb) if rows.weighted else bins_n
        )
        bins_x[:] = np.bincount(key2, weights=wx, minlength=size).reshape(k, 2, nb)
        bins_x2[:] = np.bincount(key2, weights=wx2, minlength=size).reshape(k, 2, nb)
        n = cells_n.sum(axis=1).astype("float64")
        sum_p = None if wp is None else np.bincount(c_ok, weights=wp, minlength=k)
        # exact AUC: rows of each group in score order come from one stable sort by group code
        # (int16 keys: numpy's stable argsort is then a radix sort, O(n))
        codes_s = codes[rows.order].astype(np.int16 if k < 32767 else np.int64)
        by_group = np.argsort(codes_s, kind="stable")
        bounds = np.searchsorted(codes_s[by_group], np.arange(-1, k + 1))
        for g in range(k):
            sl = by_group[bounds[g + 1] : bounds[g + 2]]
            auc[g] = _exact_auc(rows.vid_s[sl], rows.y_s[sl], rows.w_s[sl])
    else:
        n = m.sum(axis=0)
        sum_p = None if rows.wp is None else (m * rows.wp[:, None]).sum(axis=0)
        for g in range(k):
            mg = m[:, g]
            sel = mg > 0
            mgs = mg[sel]
            wg = mgs * w[sel]
            cells_n[g] = np.bincount(rows.cell[sel], minlength=4)
            cells_w[g] = np.bincount(rows.cell[sel], weights=wg, minlength=4)
            key2 = rows.yb[sel]
            bins_n[g] = np.bincount(key2, minlength=2 * nb).reshape(2, nb)
            bins_w[g] = np.bincount(key2, weights=wg, minlength=2 * nb).reshape(2, nb)
            bins_x[g] = np.bincount(key2, weights=mgs * rows.wx[sel], minlength=2 * nb).reshape(2, nb)
            bins_x2[g] = np.bincount(key2, weights=mgs * rows.wx2[sel], minlength=2 * nb).reshape(2, nb)
            mg_s = mg[rows.order]
            sel_s = mg_s > 0
            auc[g] = _exact_auc(rows.vid_s[sel_s], rows.y_s[sel_s], (mg_s * rows.w_s)[sel_s])
    sum_x = bins_x.sum(axis=(1, 2))
    sum_x2 = bins_x2.sum(axis=(1, 2))
    auc_binned = auc_from_counts(bins_w[:, 1, :], bins_w[:, 0, :])
    return GroupTables(
        n, cells_n, cells_w, sum_x, sum_x2, sum_p, auc, auc_binned, bins_n, bins_w, bins_x, bins_x2
    )


def _exact_auc(vid: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Weighted ROC AUC (ties count ½) of rows already in ascending score order, ``vid`` = value id."""
    if vid.size == 0:
        return float("nan")
    starts = np.flatnonzero(np.r_[True, vid[1:] != vid[:-1]])
    pos = np.add.reduceat(w * y, starts)
    neg = np.add.reduceat(w * (1 - y), starts)
    return float(auc_from_counts(pos, neg))


# --------------------------------------------------------------------------- metrics from tables


def confusion_rates(cw: np.ndarray) -> dict[str, np.ndarray]:
    """Rates from weighted confusion counts ``cw[..., 4]`` (NaN where a denominator is 0)."""
    tn, fp, fn, tp = (cw[..., i] for i in (TN, FP, FN, TP))
    total = tn + fp + fn + tp
    adverse = fp + tp
    events = fn + tp
    nonevents = tn + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        ar = np.where(total > 0, adverse / total, np.nan)
        return {
            "adverse_rate": ar,
            "favorable_rate": 1.0 - ar,
            "true_positive_rate": np.where(events > 0, tp / events, np.nan),
            "false_positive_rate": np.where(nonevents > 0, fp / nonevents, np.nan),
            "false_negative_rate": np.where(events > 0, fn / events, np.nan),
            "precision": np.where(adverse > 0, tp / adverse, np.nan),
        }


def smd_from_sums(sw: np.ndarray, sx: np.ndarray, sx2: np.ndarray, ref: int) -> tuple[np.ndarray, np.ndarray]:
    """SMD of every group vs group ``ref`` on the last axis, and the pooled SD.

    SMD = (μ_g − μ_c) / σ_pooled, σ²_pooled = ((n_g − 1)s_g² + (n_c − 1)s_c²) / (n_g + n_c − 2)
    (REGULATORY.md b.3), with frequency weights (n = Σ w, s² = Σ w (x − μ)² / (n − 1)).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(sw > 0, sx / sw, np.nan)
        ss = np.maximum(sx2 - sw * mu**2, 0.0)  # Σ w (x − μ)²
        ss_r, sw_r, mu_r = ss[..., ref : ref + 1], sw[..., ref : ref + 1], mu[..., ref : ref + 1]
        df = sw + sw_r - 2
        pooled = np.sqrt(np.where(df > 0, (ss + ss_r) / df, np.nan))
        smd = np.where(pooled > 0, (mu - mu_r) / pooled, np.nan)
    return smd, pooled


@dataclass
class Replicates:
    """Bootstrap replicates, each (n_boot, k)."""

    rates: dict[str, np.ndarray]
    air: np.ndarray
    smd: np.ndarray
    auc: np.ndarray


def bootstrap_tables(
    t: GroupTables, ref: int, n_boot: int, rng: np.random.Generator, *, active: np.ndarray | None = None
) -> Replicates:
    """Stratified multinomial bootstrap of the confusion and score-bin tables (counts, not rows).

    A replicate's weighted count in a cell is its resampled count × the cell's mean weight
    (``_stats`` convention). Groups are resampled independently with their sizes fixed. Only the
    ``active`` groups (and the reference) are resampled; the others get NaN replicates.
    """
    k_all = t.k
    act = np.ones(k_all, dtype=bool) if active is None else np.asarray(active, dtype=bool).copy()
    act[ref] = True
    idx = np.flatnonzero(act)
    sub = GroupTables(*(None if v is None else v[idx] for v in _fields(t)))  # type: ignore[arg-type]
    reps = _bootstrap_active(sub, int(np.searchsorted(idx, ref)), n_boot, rng)
    if idx.size == k_all:
        return reps

    def embed(a: np.ndarray) -> np.ndarray:
        full = np.full((n_boot, k_all), np.nan)
        full[:, idx] = a
        return full

    rates = {k: embed(v) for k, v in reps.rates.items()}
    return Replicates(rates, embed(reps.air), embed(reps.smd), embed(reps.auc))


def _fields(t: GroupTables) -> list:
    return [getattr(t, f) for f in t.__dataclass_fields__]


def _bootstrap_active(t: GroupTables, ref: int, n_boot: int, rng: np.random.Generator) -> Replicates:
    reps_c = bootstrap_counts(t.cells_n, n_boot, rng, stratified=True)  # (B, k, 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_w = np.where(t.cells_n > 0, t.cells_w / np.maximum(t.cells_n, 1), 0.0)
    rates = confusion_rates(reps_c * mean_w)
    fav = rates["favorable_rate"]
    with np.errstate(invalid="ignore", divide="ignore"):
        air = fav / fav[:, ref : ref + 1]
        air = np.where(np.isfinite(air), air, np.nan)
    k, _, nb = t.bins_n.shape
    flat = t.bins_n.reshape(k, 2 * nb)
    reps_b = bootstrap_counts(flat, n_boot, rng, stratified=True).astype("float64")  # (B, k, 2nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.maximum(flat, 1)
        mw = np.where(flat > 0, t.bins_w.reshape(k, -1) / denom, 0.0)
        mx = np.where(flat > 0, t.bins_x.reshape(k, -1) / denom, 0.0)
        mx2 = np.where(flat > 0, t.bins_x2.reshape(k, -1) / denom, 0.0)
    rw = reps_b * mw
    sw = rw.sum(axis=-1)
    sx = (reps_b * mx).sum(axis=-1)
    sx2 = (reps_b * mx2).sum(axis=-1)
    smd, _ = smd_from_sums(sw, sx, sx2, ref)
    rw3 = rw.reshape(n_boot, k, 2, nb)
    auc = auc_from_counts(rw3[:, :, 1, :], rw3[:, :, 0, :])
    return Replicates(rates, air, smd, auc)


__all__ = [
    "FN",
    "FP",
    "TN",
    "TP",
    "GroupTables",
    "Replicates",
    "Rows",
    "bootstrap_tables",
    "confusion_rates",
    "group_tables",
    "prepare_rows",
    "smd_from_sums",
]
