"""Fairness audit (REGULATORY.md §(b) b.2–b.4; SPEC.md §5 ``sections.fairness``).

Conventions: the **reference** group is the spec's control group; ratios are group / reference and
differences are group − reference. ``adverse`` is the model's decision (decline / flag) and
``y == 1`` the observed adverse event (default, fraud, ...), so for the confusion rates the
"positive" prediction is the adverse decision and the "positive" outcome the event:

* adverse_rate = share with an adverse decision; favorable_rate = 1 − adverse_rate;
* AIR = favorable_rate(group) / favorable_rate(reference) — the adverse impact ratio, the
  "four-fifths" screen of 29 CFR 1607.4(D) used in fair lending by analogy (REGULATORY.md b.2).
  It is a disparate-impact screen (Fair Housing Act, state law, EU AI Act Art 10(2)(f)), **not** a
  federal ECOA test: the Reg B effects-test language was removed effective 21 Jul 2026;
* shortfall = additional favorable decisions the group needs for AIR to reach ``policy.air_min``:
  ⌈air_min · FR_ref · n_g − favorable_g⌉, 0 when already there (REGULATORY.md b.2 "shortfall",
  adapted from parity to the policy ratio; ``shortfall_parity`` is the b.2 parity version);
* SMD of the risk score (higher = riskier) = (μ_g − μ_ref) / σ_pooled (REGULATORY.md b.3):
  positive means the group is scored as riskier;
* true_positive_rate = P(adverse | event), false_positive_rate = P(adverse | no event),
  false_negative_rate = P(favorable | event), precision = P(event | adverse), AUC within the group.

Significance: AIR by Fisher's exact test when an expected cell is below 5, else the two-proportion
z test (the test used is reported); FPR and FNR gaps the same way; SMD by the pooled two-sample t
test. Benjamini–Hochberg q-values across every (attribute or intersection, group, metric) test of
the split; findings use q, never the raw p. CIs: 95% percentile bootstrap over count tables
(``_fairness_tables``), seeded from ``ctx.rng("fairness")``.

Weights: ``membership`` (one-hot, or BISG probabilities: CFPB 2014 probability weighting,
REGULATORY.md b.4) × the spec's sample weight, treated as frequency weights everywhere, so a row of
weight 2 counts as two rows (the bootstrap resamples observed rows, so only CIs differ from the
duplicated-rows data). Groups below ``policy.min_group_size`` rows keep ``n`` and have every metric
suppressed (null, ``suppressed: true``); they are excluded from tests and summaries.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from service.audits._fairness_tables import (
    FN,
    FP,
    TP,
    GroupTables,
    Replicates,
    Rows,
    bootstrap_tables,
    confusion_rates,
    group_tables,
    prepare_rows,
    smd_from_sums,
)
from service.audits._stats import _f, benjamini_hochberg, percentile_ci, proportion_test
from service.audits.context import AuditContext, NotApplicable, ProtectedGroups, SectionOutput, Split
from service.config import PolicySpec
from service.findings import finding
from service.result import Finding, ResultModel

RATE_METRICS = (
    "adverse_rate",
    "favorable_rate",
    "true_positive_rate",
    "false_positive_rate",
    "false_negative_rate",
    "precision",
)
COMPARED = (*RATE_METRICS, "auc", "smd_score_mean")
CI_METHOD = (
    "95% percentile bootstrap, multinomial resampling of each group's count tables (confusion cells; "
    "32 pooled-score quantile bins × outcome, cell sums of score and score², for AUC and SMD), "
    "groups resampled independently with sizes fixed; "
    "AUC intervals are re-centred on the exact AUC (bin discretisation shift removed); seeded"
)


class GroupCalibration(ResultModel):
    observed_rate: float | None
    mean_predicted: float | None
    ratio: float | None
    difference: float | None


class GroupFairness(ResultModel):
    n: float
    weighted_n: float
    events: float | None = None
    suppressed: bool = False
    suppressed_reason: str | None = None
    favorable_rate: float | None = None
    adverse_rate: float | None = None
    adverse_rate_ci: list[float | None] | None = None
    air: float | None = None
    air_ci: list[float | None] | None = None
    air_p_value: float | None = None
    air_q_value: float | None = None
    air_test: str | None = None
    shortfall: float | None = None
    shortfall_parity: float | None = None
    smd: float | None = None
    smd_ci: list[float | None] | None = None
    smd_p_value: float | None = None
    smd_q_value: float | None = None
    true_positive_rate: float | None = None
    true_positive_rate_ci: list[float | None] | None = None
    false_positive_rate: float | None = None
    false_positive_rate_ci: list[float | None] | None = None
    false_positive_rate_p_value: float | None = None
    false_positive_rate_q_value: float | None = None
    false_positive_rate_test: str | None = None
    false_negative_rate: float | None = None
    false_negative_rate_ci: list[float | None] | None = None
    false_negative_rate_p_value: float | None = None
    false_negative_rate_q_value: float | None = None
    false_negative_rate_test: str | None = None
    precision: float | None = None
    precision_ci: list[float | None] | None = None
    auc: float | None = None
    auc_ci: list[float | None] | None = None
    calibration: GroupCalibration | None = None
    differences: dict[str, float | None] = {}
    ratios: dict[str, float | None] = {}
    undefined: dict[str, str] = {}


class FairnessSummary(ResultModel):
    """Between-group disparities over the groups not suppressed (fairlearn's ``between_groups``)."""

    groups_compared: list[str]
    demographic_parity_difference: float | None
    demographic_parity_ratio: float | None
    equalized_odds_difference: float | None
    equalized_odds_ratio: float | None
    false_positive_rate_ratio: float | None
    false_negative_rate_ratio: float | None
    min_air: float | None
    max_abs_smd: float | None
    undefined: dict[str, str] = {}


class AttributeFairness(ResultModel):
    reference: str
    reference_note: str | None = None
    estimated: bool = False
    method: str = "observed"
    attributes: list[str] | None = None
    groups: dict[str, GroupFairness]
    summary: FairnessSummary


class SplitFairness(ResultModel):
    n: int
    attributes: dict[str, AttributeFairness]
    intersections: AttributeFairness | None = None
    tests: int


class FairnessSection(ResultModel):
    split: str
    decision: str
    n_bootstrap: int
    ci_method: str
    significance_tests: str
    multiple_testing: str
    score_kind: str
    thresholds: dict[str, dict[str, Any]]
    n: int
    tests: int
    attributes: dict[str, AttributeFairness]
    intersections: AttributeFairness | None = None
    intersections_reason: str | None = None
    splits: dict[str, SplitFairness] = {}


# --------------------------------------------------------------------------- pure computation


def group_fairness(
    y: np.ndarray,
    adverse: np.ndarray,
    risk: np.ndarray,
    membership: np.ndarray | None,
    groups: list[str],
    *,
    reference: str,
    prob: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    air_min: float = 0.8,
    min_group_size: int = 30,
    n_boot: int = 1000,
    rng: np.random.Generator,
    n_bins: int = 32,
    codes: np.ndarray | None = None,
    rows: Rows | None = None,
) -> dict[str, GroupFairness]:
    """Fairness metrics of every group against the reference group, with CIs and raw p-values.

    Parameters
    ----------
    y : 0/1 observed outcome, 1 = the adverse event.
    adverse : boolean decision, True = adverse (decline / flag).
    risk : score oriented higher = riskier (the SMD and AUC are computed on it).
    membership : (n, k) group weights, one-hot or BISG probabilities; column order = ``groups``.
        May be None when ``codes`` is given.
    reference : the control group's label (must be in ``groups``).
    prob : P(event) per row, for calibration by group; None when the score is not a probability.
    sample_weight : frequency weights, multiplied into ``membership``.
    codes : hard group index per row (−1 = missing), a faster equivalent of a one-hot membership.
    rows : ``prepare_rows`` of the same data if already computed (shared by the blocks of a split).

    Returns
    -------
    dict group → :class:`GroupFairness` (q-values are filled later, across the whole split).

    Notes
    -----
    AIR = FR_g / FR_ref (29 CFR 1607.4(D), by analogy; REGULATORY.md b.2);
    SMD = (μ_g − μ_ref)/σ_pooled (REGULATORY.md b.3); FPR = FP/(FP+TN), FNR = FN/(FN+TP),
    TPR = 1 − FNR, precision = TP/(TP+FP), with the adverse decision as the positive prediction.
    """
    if reference not in groups:
        raise ValueError(f"reference group {reference!r} is not one of the groups {groups}")
    if codes is not None:
        c = np.asarray(codes)
        if c.shape != (len(y),) or (c.size and (c.min() < -1 or c.max() >= len(groups))):
            raise ValueError(f"codes must be {len(y)} integers in [-1, {len(groups) - 1}]")
        m = np.zeros((0, len(groups)))
    elif membership is None:
        raise ValueError("give either membership or codes")
    else:
        m = np.asarray(membership, dtype="float64")
        if m.ndim != 2 or m.shape != (len(y), len(groups)):
            raise ValueError(
                f"membership must have shape (n_rows, n_groups) = ({len(y)}, {len(groups)}); got {m.shape}"
            )
    ref = groups.index(reference)
    t = group_tables(
        y, adverse, risk, m, prob=prob, sample_weight=sample_weight, n_bins=n_bins, codes=codes, rows=rows
    )
    rates = confusion_rates(t.cells_w)
    sw = t.cells_w.sum(axis=1)
    smd, _pooled = smd_from_sums(sw, t.sum_x, t.sum_x2, ref)
    fav = rates["favorable_rate"]
    with np.errstate(invalid="ignore", divide="ignore"):
        air = np.where(fav[ref] > 0, fav / fav[ref], np.nan)
    keep = t.n >= min_group_size
    reps = bootstrap_tables(t, ref, n_boot, rng, active=keep) if n_boot > 0 else None
    cis = _all_cis(reps)

    out: dict[str, GroupFairness] = {}
    ref_n = t.n[ref]
    for g, name in enumerate(groups):
        out[name] = _one_group(
            t, g, ref, rates, air, smd, cis, keep, fav, sw, prob is not None, air_min, min_group_size, ref_n
        )
    return out


def _all_cis(reps: Replicates | None) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Percentile intervals of every metric for all groups at once (one quantile call per metric)."""
    if reps is None:
        return None
    mats = {**reps.rates, "air": reps.air, "smd": reps.smd, "auc": reps.auc}
    out = {}
    for k, v in mats.items():
        lo, hi = percentile_ci(v, axis=0)
        out[k] = (np.asarray(lo, dtype="float64"), np.asarray(hi, dtype="float64"))
    return out


def _ci(cis: dict[str, tuple[np.ndarray, np.ndarray]] | None, key: str, g: int, shift: float = 0.0):
    if cis is None:
        return None
    lo, hi = _f(cis[key][0][g]), _f(cis[key][1][g])
    if lo is None or hi is None:
        return None
    return [lo + shift, hi + shift]


def _one_group(
    t: GroupTables,
    g: int,
    ref: int,
    rates: dict[str, np.ndarray],
    air: np.ndarray,
    smd: np.ndarray,
    cis: dict[str, tuple[np.ndarray, np.ndarray]] | None,
    keep: np.ndarray,
    fav: np.ndarray,
    sw: np.ndarray,
    has_prob: bool,
    air_min: float,
    min_group_size: int,
    ref_n: float,
) -> GroupFairness:
    cw = t.cells_w
    events = float(cw[g, FN] + cw[g, TP])
    base: dict[str, Any] = {"n": float(t.n[g]), "weighted_n": float(sw[g]), "events": events}
    if not keep[g]:
        return GroupFairness(
            **base,
            suppressed=True,
            suppressed_reason=f"n = {t.n[g]:g} is below policy.min_group_size = {min_group_size}; "
            "metrics suppressed",
        )
    undefined: dict[str, str] = {}
    vals: dict[str, Any] = {k: _f(rates[k][g]) for k in RATE_METRICS}
    nonevents = float(sw[g] - events)
    adverse_w = float(cw[g, FP] + cw[g, TP])
    if events == 0:
        undefined["true_positive_rate"] = "no observed events in the group (denominator 0)"
        undefined["false_negative_rate"] = "no observed events in the group (denominator 0)"
    if nonevents == 0:
        undefined["false_positive_rate"] = "no observed non-events in the group (denominator 0)"
    if adverse_w == 0:
        undefined["precision"] = "no adverse decisions in the group (denominator 0)"
    auc = _f(t.auc[g])
    if auc is None:
        undefined["auc"] = "AUC needs both events and non-events in the group"
    ref_ok = bool(keep[ref])
    out = GroupFairness(**base, **vals, auc=auc)
    if cis is not None:
        out.adverse_rate_ci = _ci(cis, "adverse_rate", g)
        for k in ("true_positive_rate", "false_positive_rate", "false_negative_rate", "precision"):
            if vals[k] is not None:
                setattr(out, f"{k}_ci", _ci(cis, k, g))
        if auc is not None:
            shift = float(t.auc[g] - t.auc_binned[g]) if np.isfinite(t.auc_binned[g]) else 0.0
            out.auc_ci = _ci(cis, "auc", g, shift)
    if has_prob and t.sum_p is not None and sw[g] > 0:
        obs = events / float(sw[g])
        pred = float(t.sum_p[g] / sw[g])
        out.calibration = GroupCalibration(
            observed_rate=_f(obs),
            mean_predicted=_f(pred),
            ratio=_f(obs / pred) if pred > 0 else None,
            difference=_f(obs - pred),
        )
    if not ref_ok:
        reason = f"the reference group has n = {t.n[ref]:g} < policy.min_group_size; comparisons suppressed"
        for k in ("air", "smd", "shortfall"):
            undefined[k] = reason
        out.undefined = undefined
        return out
    # comparisons with the reference
    if fav[ref] == 0:
        undefined["air"] = "the reference group has no favorable decisions (denominator 0)"
    else:
        out.air = _f(air[g])
        if cis is not None:
            out.air_ci = [1.0, 1.0] if g == ref else _ci(cis, "air", g)
        target = air_min * float(fav[ref]) * float(sw[g])
        need = target - float(fav[g] * sw[g])
        out.shortfall = float(max(0, math.ceil(need - 1e-9)))
        need_parity = float(fav[ref] * sw[g]) - float(fav[g] * sw[g])
        out.shortfall_parity = float(max(0, math.ceil(need_parity - 1e-9)))
    out.smd = _f(smd[g])
    if out.smd is None:
        undefined["smd"] = "pooled standard deviation of the score is 0 or undefined"
    elif cis is not None:
        out.smd_ci = [0.0, 0.0] if g == ref else _ci(cis, "smd", g)
    if g != ref:
        fav_g, fav_r = float(fav[g] * sw[g]), float(fav[ref] * sw[ref])
        out.air_p_value, out.air_test = _test(fav_g, float(sw[g]), fav_r, float(sw[ref]))
        ne_g, ne_r = float(cw[g, 0] + cw[g, FP]), float(cw[ref, 0] + cw[ref, FP])
        if ne_g > 0 and ne_r > 0:
            out.false_positive_rate_p_value, out.false_positive_rate_test = _test(
                float(cw[g, FP]), ne_g, float(cw[ref, FP]), ne_r
            )
        ev_r = float(cw[ref, FN] + cw[ref, TP])
        if events > 0 and ev_r > 0:
            out.false_negative_rate_p_value, out.false_negative_rate_test = _test(
                float(cw[g, FN]), events, float(cw[ref, FN]), ev_r
            )
        if out.smd is not None and sw[g] + sw[ref] > 2:
            tstat = out.smd / math.sqrt(1 / sw[g] + 1 / sw[ref])
            out.smd_p_value = float(2 * stats.t.sf(abs(tstat), sw[g] + sw[ref] - 2))
    # differences and ratios for every compared metric
    diffs: dict[str, float | None] = {}
    ratios: dict[str, float | None] = {}
    ref_vals = {k: _f(rates[k][ref]) for k in RATE_METRICS}
    ref_vals["auc"] = _f(t.auc[ref])
    vals["auc"] = auc
    for k in (*RATE_METRICS, "auc"):
        a, b = vals[k], ref_vals[k]
        if a is None or b is None:
            diffs[k] = ratios[k] = None
            undefined.setdefault(f"differences.{k}", f"{k} undefined in the group or the reference")
            continue
        diffs[k] = a - b
        if b == 0:
            ratios[k] = None
            undefined[f"ratios.{k}"] = f"reference {k} is 0 (denominator 0)"
        else:
            ratios[k] = a / b
    out.differences, out.ratios, out.undefined = diffs, ratios, undefined
    return out


def _test(x1: float, n1: float, x2: float, n2: float) -> tuple[float | None, str | None]:
    p, name = proportion_test(x1, n1, x2, n2)
    return _f(p), (None if name == "undefined" else name)


def summarise(groups: dict[str, GroupFairness]) -> FairnessSummary:
    """fairlearn-style between-group disparities (max − min, min / max) over unsuppressed groups."""
    live = {k: v for k, v in groups.items() if not v.suppressed}
    undefined: dict[str, str] = {}

    def spread(attr: str) -> tuple[float | None, float | None]:
        vals = [getattr(v, attr) for v in live.values()]
        if len(vals) < 2 or any(x is None for x in vals):
            undefined[attr] = "needs two or more groups with the rate defined"
            return None, None
        lo, hi = min(vals), max(vals)
        return hi - lo, (lo / hi if hi > 0 else None)

    dp_d, dp_r = spread("favorable_rate")
    tpr_d, tpr_r = spread("true_positive_rate")
    fpr_d, fpr_r = spread("false_positive_rate")
    _fnr_d, fnr_r = spread("false_negative_rate")
    eo_d = None if tpr_d is None or fpr_d is None else max(tpr_d, fpr_d)
    eo_r = None if tpr_r is None or fpr_r is None else min(tpr_r, fpr_r)
    airs = [v.air for v in live.values() if v.air is not None]
    smds = [abs(v.smd) for v in live.values() if v.smd is not None]
    return FairnessSummary(
        groups_compared=list(live),
        demographic_parity_difference=dp_d,
        demographic_parity_ratio=dp_r,
        equalized_odds_difference=eo_d,
        equalized_odds_ratio=eo_r,
        false_positive_rate_ratio=fpr_r,
        false_negative_rate_ratio=fnr_r,
        min_air=min(airs) if airs else None,
        max_abs_smd=max(smds) if smds else None,
        undefined=undefined,
    )


def intersect(attrs: list[ProtectedGroups]) -> tuple[list[str], np.ndarray | None, str, np.ndarray | None]:
    """Intersectional groups of several attributes: labels "a=x|b=y", membership, reference, codes.

    Observed attributes give hard ``codes`` (−1 where any attribute is missing) and no membership;
    when any attribute is estimated (BISG) the membership is the product of the memberships and
    ``codes`` is None. Cells with no rows are dropped; the reference cell comes first.
    """
    reference = "|".join(f"{pg.name}={pg.reference}" for pg in attrs)
    if not any(pg.estimated for pg in attrs):
        combined = np.zeros(attrs[0].codes.shape[0], dtype=np.int64)
        missing = np.zeros(combined.shape[0], dtype=bool)
        all_labels = [""]
        sep = ""
        for pg in attrs:
            c = np.asarray(pg.codes, dtype=np.int64)
            missing |= c < 0
            combined = combined * len(pg.groups) + np.maximum(c, 0)
            all_labels = [f"{a}{sep}{pg.name}={g}" for a in all_labels for g in pg.groups]
            sep = "|"
        combined[missing] = -1
        counts = np.bincount(combined[~missing], minlength=len(all_labels))
        ref_i = all_labels.index(reference)
        idx = np.array([ref_i] + [int(i) for i in np.flatnonzero(counts > 0) if i != ref_i], dtype=np.int64)
        remap = np.full(len(all_labels) + 1, -1, dtype=np.int64)
        remap[idx] = np.arange(idx.size)
        return [all_labels[i] for i in idx], None, reference, remap[combined]  # -1 indexes the last slot
    labels = [""]
    mem = np.ones((attrs[0].membership.shape[0], 1))
    sep = ""
    for pg in attrs:
        labels = [f"{a}{sep}{pg.name}={g}" for a in labels for g in pg.groups]
        mem = (mem[:, :, None] * pg.membership[:, None, :]).reshape(mem.shape[0], -1)
        sep = "|"
    present = mem.sum(axis=0) > 0
    ref_i = labels.index(reference)
    present[ref_i] = True
    idx = np.array([ref_i] + [int(i) for i in np.flatnonzero(present) if i != ref_i], dtype=np.int64)
    return [labels[i] for i in idx], mem[:, idx], reference, None


# --------------------------------------------------------------------------- the audit


def _block(
    split: Split,
    groups: list[str],
    membership: np.ndarray | None,
    reference: str,
    policy: PolicySpec,
    n_boot: int,
    rng: np.random.Generator,
    *,
    codes: np.ndarray | None,
    rows: Rows,
    **extra: Any,
) -> AttributeFairness:
    res = group_fairness(
        split.y,
        split.adverse,
        split.risk,
        membership,
        groups,
        reference=reference,
        prob=split.prob,
        sample_weight=split.weight,
        air_min=policy.air_min,
        min_group_size=policy.min_group_size,
        n_boot=n_boot,
        rng=rng,
        codes=codes,
        rows=rows,
    )
    return AttributeFairness(reference=reference, groups=res, summary=summarise(res), **extra)


def split_fairness(split: Split, policy: PolicySpec, n_boot: int, rng: np.random.Generator) -> SplitFairness:
    """Every attribute, the intersection of all attributes, and BH q-values across the split's tests."""
    attrs: dict[str, AttributeFairness] = {}
    # one sort and one binning of the score, shared by every block of the split
    rows = prepare_rows(split.y, split.adverse, split.risk, prob=split.prob, sample_weight=split.weight)
    for name, pg in split.protected.items():
        attrs[name] = _block(
            split,
            pg.groups,
            pg.membership,
            pg.reference,
            policy,
            n_boot,
            rng,
            codes=None if pg.estimated else pg.codes,
            rows=rows,
            estimated=pg.estimated,
            method=pg.method,
        )
    inter = None
    if len(split.protected) >= 2:
        pgs = list(split.protected.values())
        labels, mem, ref, codes = intersect(pgs)
        ref, note = _intersection_reference(labels, mem, codes, ref, policy.min_group_size)
        inter = _block(
            split,
            labels,
            mem,
            ref,
            policy,
            n_boot,
            rng,
            codes=codes,
            rows=rows,
            estimated=any(p.estimated for p in pgs),
            method="product of memberships" if any(p.estimated for p in pgs) else "observed",
            attributes=[p.name for p in pgs],
            reference_note=note,
        )
    tests = _apply_bh([*attrs.values(), *([inter] if inter else [])])
    # summaries read q-free fields only; recompute after BH for completeness of shape
    return SplitFairness(n=split.n, attributes=attrs, intersections=inter, tests=tests)


def _intersection_reference(
    labels: list[str],
    mem: np.ndarray | None,
    codes: np.ndarray | None,
    natural: str,
    min_group_size: int,
) -> tuple[str, str | None]:
    """The cell of all reference groups, or the largest cell when that one is below ``min_group_size``.

    Sizes are row counts (Σ membership), as for suppression.
    Without the fallback a small all-reference cell (German credit: 28 domestic men aged 26-75)
    would suppress every intersectional comparison.
    """
    if codes is not None:
        n = np.bincount(codes[codes >= 0], minlength=len(labels)).astype("float64")
    else:
        assert mem is not None
        n = mem.sum(axis=0)
    i = labels.index(natural)
    if n[i] >= min_group_size:
        return natural, None
    j = int(np.argmax(n))
    if n[j] < min_group_size:
        return natural, None
    return labels[j], (
        f"the cell of all reference groups ({natural}) has n = {float(n[i]):g} < policy.min_group_size = "
        f"{min_group_size}; the largest cell ({labels[j]}, n = {float(n[j]):g}) is the reference instead"
    )


_TESTED = ("air", "smd", "false_positive_rate", "false_negative_rate")


def _apply_bh(blocks: list[AttributeFairness]) -> int:
    """Benjamini–Hochberg q-values across every (block, group, metric) test; returns the test count."""
    slots: list[tuple[GroupFairness, str]] = []
    pvals: list[float | None] = []
    for b in blocks:
        for gf in b.groups.values():
            for m in _TESTED:
                p = getattr(gf, f"{m}_p_value")
                if p is not None:
                    slots.append((gf, m))
                    pvals.append(p)
    q = benjamini_hochberg(pvals)
    for (gf, m), qv in zip(slots, q, strict=True):
        setattr(gf, f"{m}_q_value", _f(qv))
    return len(slots)


def run(ctx: AuditContext) -> SectionOutput:
    if not ctx.dev.protected:
        raise NotApplicable("no protected attributes in the spec (key 'protected')")
    policy = ctx.spec.policy
    rng = ctx.rng("fairness")
    ctx.progress("fairness: dev")
    dev = split_fairness(ctx.dev, policy, ctx.n_boot, rng)
    splits: dict[str, SplitFairness] = {}
    if ctx.oot is not None:
        ctx.progress("fairness: oot")
        splits["oot"] = split_fairness(ctx.oot, policy, ctx.n_boot, rng)
    names = ("air_min", "smd_max", "min_group_size", "significance", "error_rate_gap_max")
    sec = FairnessSection(
        split="dev",
        decision=f"adverse when score {'>=' if ctx.spec.score.direction == 'higher_is_riskier' else '<'} "
        f"{ctx.spec.score.threshold:g}",
        n_bootstrap=ctx.n_boot,
        ci_method=CI_METHOD,
        significance_tests="AIR, FPR and FNR gaps: Fisher exact when an expected cell count is < 5, else "
        "two-proportion z (pooled); SMD: pooled two-sample t test; each group vs the reference",
        multiple_testing="Benjamini-Hochberg q-values across all (attribute or intersection, group, metric) "
        "tests of the split; findings use q",
        score_kind=ctx.score_kind,
        thresholds={k: {"value": getattr(policy, k), "source": policy.source(k)} for k in names},
        n=dev.n,
        tests=dev.tests,
        attributes=dev.attributes,
        intersections=dev.intersections,
        intersections_reason=None if dev.intersections else "one protected attribute only; no intersections",
        splits=splits,
    )
    return SectionOutput(sec, _findings(sec, policy))


def _findings(sec: FairnessSection, policy: PolicySpec) -> list[Finding]:
    out: list[Finding] = []
    alpha = policy.significance
    blocks: list[tuple[str, AttributeFairness]] = list(sec.attributes.items())
    if sec.intersections is not None:
        blocks.append(("intersection", sec.intersections))
    suppressed: list[str] = []
    undefined: list[str] = []
    for attr, b in blocks:
        for g, gf in b.groups.items():
            label = g if attr == "intersection" else f"{attr}={g}"
            if g == b.reference:
                continue
            if gf.suppressed:
                suppressed.append(f"{label} (n = {gf.n:g})")
                continue
            undefined += [f"{label}: {k} ({why})" for k, why in gf.undefined.items() if "." not in k]
            if gf.air is not None and gf.air < policy.air_min:
                q = gf.air_q_value
                sig = q is not None and q < alpha
                ci = ""
                if gf.air_ci and None not in gf.air_ci:
                    ci = f", 95% CI {gf.air_ci[0]:.3f}–{gf.air_ci[1]:.3f}"
                qs = "n/a" if q is None else f"{q:.3g}"
                text = (
                    f"AIR {gf.air:.3f}{ci} for {label} vs {b.reference} (favorable rate "
                    f"{gf.favorable_rate:.4f} vs {b.groups[b.reference].favorable_rate:.4f}); "
                    f"{'statistically significant' if sig else 'NOT statistically significant'} "
                    f"(BH q = {qs}, {gf.air_test}); shortfall {gf.shortfall:g} favorable decisions to reach "
                    f"the threshold. A disparate-impact screen (FHA, state law, EU AI Act Art 10); not a "
                    f"federal ECOA violation finding (Reg B effects test removed 21 Jul 2026)"
                )
                out.append(
                    finding(
                        "fairness",
                        "high" if sig else "medium",
                        f"Adverse impact ratio below threshold ({label})",
                        text,
                        metric="air",
                        value=gf.air,
                        policy=policy,
                        threshold_name="air_min",
                    )
                )
            if gf.smd is not None and abs(gf.smd) > policy.smd_max:
                q = gf.smd_q_value
                qs = "n/a" if q is None else f"{q:.3g}"
                sig = q is not None and q < alpha
                out.append(
                    finding(
                        "fairness",
                        "medium" if sig else "low",
                        f"Score mean differs by group ({label})",
                        f"SMD {gf.smd:+.3f} for {label} vs {b.reference} (positive = scored riskier; "
                        f"BH q = {qs}, {'significant' if sig else 'not significant'})",
                        metric="smd",
                        value=gf.smd,
                        policy=policy,
                        threshold_name="smd_max",
                    )
                )
            for m, short in (("false_positive_rate", "FPR"), ("false_negative_rate", "FNR")):
                d = gf.differences.get(m)
                if d is not None and abs(d) > policy.error_rate_gap_max:
                    q = getattr(gf, f"{m}_q_value")
                    qs = "n/a" if q is None else f"{q:.3g}"
                    sig = q is not None and q < alpha
                    out.append(
                        finding(
                            "fairness",
                            "medium" if sig else "low",
                            f"{short} gap ({label})",
                            f"{short} {getattr(gf, m):.4f} for {label} vs "
                            f"{getattr(b.groups[b.reference], m):.4f} for {b.reference} "
                            f"(difference {d:+.4f}; BH q = {qs}, "
                            f"{'significant' if sig else 'not significant'})",
                            metric=f"{m}_difference",
                            value=d,
                            policy=policy,
                            threshold_name="error_rate_gap_max",
                        )
                    )
    if suppressed:
        out.append(
            finding(
                "fairness",
                "info",
                "Small groups: fairness metrics suppressed",
                f"{len(suppressed)} group(s) below the minimum size report n only: "
                + "; ".join(suppressed[:20]),
                metric="suppressed_groups",
                value=float(len(suppressed)),
                policy=policy,
                threshold_name="min_group_size",
            )
        )
    if undefined:
        out.append(
            finding(
                "fairness",
                "info",
                "Undefined fairness statistics",
                f"{len(undefined)} statistic(s) are null: " + "; ".join(undefined[:20]),
                metric="undefined_statistics",
                value=float(len(undefined)),
            )
        )
    return out


__all__ = ["FairnessSection", "group_fairness", "intersect", "run", "split_fairness", "summarise"]
