"""Performance audit (REGULATORY.md §(a) 7, §(d); SR 26-2 §V outcomes analysis).

Per split (``dev`` = the audit dataset, ``oot`` = out-of-time when given): discrimination (AUC,
Gini = 2·AUC − 1, KS, PR-AUC = average precision) and, when the score is a probability,
calibration (Brier, log loss, calibration-in-the-large with a Jeffreys test, decile table with the
Hosmer–Lemeshow test). 95% CIs by the count bootstrap of ``_stats`` (percentile method).
"""

from __future__ import annotations

import numpy as np

from service.audits._stats import (
    _f,
    _score_tables,
    auc_from_counts,
    average_precision_from_counts,
    ci_pair,
    hosmer_lemeshow,
    jeffreys_p_value,
    ks_from_counts,
    percentile_ci,
    score_table,
)
from service.audits.context import AuditContext, SectionOutput, Split
from service.findings import finding
from service.result import Finding, ResultModel

CI_BINS = 4000  # score cells of the bootstrap table (score_table's default)


class CalibrationBin(ResultModel):
    bin: int
    n: float
    mean_predicted: float | None
    observed_rate: float | None
    events: float


class Calibration(ResultModel):
    deciles: list[CalibrationBin]
    hosmer_lemeshow: float | None
    hosmer_lemeshow_df: int
    hosmer_lemeshow_p: float | None
    observed_rate: float
    mean_predicted: float
    calibration_ratio: float | None
    jeffreys_p: float | None


class SplitPerformance(ResultModel):
    n: int
    events: float
    event_rate: float
    auc: float | None
    auc_ci: list[float | None] | None
    gini: float | None
    gini_ci: list[float | None] | None
    ks: float | None
    ks_ci: list[float | None] | None
    pr_auc: float | None
    pr_auc_ci: list[float | None] | None
    brier: float | None = None
    brier_ci: list[float | None] | None = None
    log_loss: float | None = None
    log_loss_ci: list[float | None] | None = None
    adverse_rate: float
    calibration: Calibration | None = None


class PerformanceSection(ResultModel):
    score_kind: str
    direction: str
    threshold: float
    n_bootstrap: int
    ci_method: str
    splits: dict[str, SplitPerformance]
    auc_drop_oot: float | None = None


def score_metrics(
    y: np.ndarray,
    risk: np.ndarray,
    prob: np.ndarray | None,
    *,
    sample_weight: np.ndarray | None = None,
    n_boot: int = 1000,
    rng: np.random.Generator,
) -> dict[str, object]:
    """Discrimination and loss metrics with bootstrap CIs for one sample.

    Parameters
    ----------
    y : 0/1 outcomes, 1 = the adverse event.
    risk : score oriented higher = riskier.
    prob : predicted probability of the event, or None when the score is not a probability.
    """
    yy = np.asarray(y).astype(np.int8)
    w = sample_weight
    loss_cells = None
    losses = None
    if prob is not None:
        p = np.clip(np.asarray(prob, dtype="float64"), 1e-15, 1 - 1e-15)
        ww = np.ones_like(p) if w is None else np.asarray(w, dtype="float64")
        brier_i = (p - yy) ** 2
        ll_i = -(yy * np.log(p) + (1 - yy) * np.log1p(-p))
        losses = (_f((ww * brier_i).sum() / ww.sum()), _f((ww * ll_i).sum() / ww.sum()))
        # per-cell sums of the losses, so the bootstrap can resample them with the counts; the cells
        # depend on the scores only, so the three tables are binned once
        (t, tb, tl), _ = _score_tables(risk, yy, [w, ww * brier_i, ww * ll_i], CI_BINS)
        loss_cells = (tb, tl)
    else:
        t = score_table(risk, yy, sample_weight=w, max_bins=CI_BINS)
    P, N = float(t.pos_w.sum()), float(t.neg_w.sum())
    out: dict[str, object] = {}
    if P > 0 and N > 0:
        # point estimates always from the exact (distinct-score) table; only the CI uses a binned one
        te = t if t.exact else score_table(risk, yy, sample_weight=w, max_bins=yy.size + 1)
        auc = float(auc_from_counts(te.pos_w, te.neg_w))
        ks = float(ks_from_counts(te.pos_w, te.neg_w))
        ap = float(average_precision_from_counts(te.pos_w, te.neg_w))
    else:
        auc = ks = ap = float("nan")
    out.update(auc=_f(auc), gini=_f(2 * auc - 1), ks=_f(ks), pr_auc=_f(ap))
    if losses is not None:
        out["brier"], out["log_loss"] = losses

    if n_boot > 0 and P > 0 and N > 0:
        reps = _bootstrap(t, loss_cells, n_boot, rng)
        for key, vals in reps.items():
            lo, hi = percentile_ci(vals)
            out[f"{key}_ci"] = ci_pair(lo, hi)  # type: ignore[arg-type]
    return out


def _bootstrap(t, loss_cells, n_boot: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    k = t.pos_n.size
    counts = np.concatenate([t.pos_n, t.neg_n])
    total = counts.sum()
    out: dict[str, list[np.ndarray]] = {}
    chunk = max(1, min(n_boot, 2_000_000 // max(2 * k, 1)))  # bound memory on fine tables
    done = 0
    while done < n_boot:
        m = min(chunk, n_boot - done)
        rep = rng.multinomial(total, counts / total, size=m)
        pn, nn = rep[:, :k], rep[:, k:]
        pw, nw = t.weighted(pn, nn)
        auc = auc_from_counts(pw, nw)
        out.setdefault("auc", []).append(auc)
        out.setdefault("gini", []).append(2 * auc - 1)
        out.setdefault("ks", []).append(ks_from_counts(pw, nw))
        out.setdefault("pr_auc", []).append(average_precision_from_counts(pw, nw))
        if loss_cells is not None:
            tb, tl = loss_cells
            wsum = pw.sum(axis=1) + nw.sum(axis=1)
            for key, tt in (("brier", tb), ("log_loss", tl)):
                lp, ln = tt.weighted(pn, nn)
                out.setdefault(key, []).append((lp.sum(axis=1) + ln.sum(axis=1)) / wsum)
        done += m
    return {key: np.concatenate(v) for key, v in out.items()}


def calibration(y: np.ndarray, prob: np.ndarray, *, sample_weight: np.ndarray | None = None) -> Calibration:
    """Decile calibration table, Hosmer–Lemeshow, calibration-in-the-large and the Jeffreys test."""
    hl = hosmer_lemeshow(y, prob, groups=10, sample_weight=sample_weight)
    w = np.ones_like(prob) if sample_weight is None else sample_weight
    sw = float(w.sum())
    obs = float((w * y).sum() / sw)
    pred = float((w * prob).sum() / sw)
    return Calibration(
        deciles=[CalibrationBin(**row) for row in hl["table"]],  # type: ignore[arg-type, union-attr, attr-defined]
        hosmer_lemeshow=hl["statistic"],  # type: ignore[arg-type]
        hosmer_lemeshow_df=hl["df"],  # type: ignore[arg-type]
        hosmer_lemeshow_p=hl["p_value"],  # type: ignore[arg-type]
        observed_rate=obs,
        mean_predicted=pred,
        calibration_ratio=_f(obs / pred) if pred > 0 else None,
        jeffreys_p=jeffreys_p_value(float((w * y).sum()), sw, pred),
    )


def split_performance(split: Split, ctx: AuditContext, rng: np.random.Generator) -> SplitPerformance:
    m = score_metrics(split.y, split.risk, split.prob, sample_weight=split.weight, n_boot=ctx.n_boot, rng=rng)
    w = split.w()
    events = float((w * split.y).sum())
    perf = SplitPerformance(
        n=split.n,
        events=events,
        event_rate=events / float(w.sum()),
        adverse_rate=float((w * split.adverse).sum() / w.sum()),
        **{k: m.get(k) for k in ("auc", "gini", "ks", "pr_auc", "brier", "log_loss")},  # type: ignore[arg-type]
        **{f"{k}_ci": m.get(f"{k}_ci") for k in ("auc", "gini", "ks", "pr_auc", "brier", "log_loss")},  # type: ignore[arg-type]
    )
    if split.prob is not None:
        perf.calibration = calibration(split.y, split.prob, sample_weight=split.weight)
    return perf


def run(ctx: AuditContext) -> SectionOutput:
    rng = ctx.rng("performance")
    splits = {}
    for s in ctx.splits():
        ctx.progress(f"performance: {s.name}")
        splits[s.name] = split_performance(s, ctx, rng)
    drop = None
    if "oot" in splits and splits["dev"].auc is not None and splits["oot"].auc is not None:
        drop = splits["dev"].auc - splits["oot"].auc
    sec = PerformanceSection(
        score_kind=ctx.score_kind,
        direction=ctx.spec.score.direction,
        threshold=ctx.spec.score.threshold,
        n_bootstrap=ctx.n_boot,
        ci_method="percentile bootstrap over score-table cell counts (multinomial), seeded",
        splits=splits,
        auc_drop_oot=_f(drop) if drop is not None else None,
    )
    return SectionOutput(sec, _findings(sec, ctx))


def _findings(sec: PerformanceSection, ctx: AuditContext) -> list[Finding]:
    policy = ctx.spec.policy
    out: list[Finding] = []
    label = {"dev": "development", "oot": "out-of-time"}
    for name, sp in sec.splits.items():
        if sp.auc is not None and sp.auc < policy.auc_min:
            out.append(
                finding(
                    "performance",
                    "high",
                    f"Weak discrimination ({label.get(name, name)})",
                    f"AUC {sp.auc:.3f} on the {label.get(name, name)} sample is below the minimum",
                    metric="auc",
                    value=sp.auc,
                    policy=policy,
                    threshold_name="auc_min",
                )
            )
        cal = sp.calibration
        if cal is not None and cal.calibration_ratio is not None:
            gap = abs(cal.calibration_ratio - 1.0)
            if gap > policy.calibration_ratio_max:
                out.append(
                    finding(
                        "performance",
                        "medium",
                        f"Calibration-in-the-large off ({label.get(name, name)})",
                        f"observed event rate {cal.observed_rate:.4f} vs mean predicted "
                        f"{cal.mean_predicted:.4f} (ratio {cal.calibration_ratio:.3f})",
                        metric="calibration_ratio_gap",
                        value=gap,
                        policy=policy,
                        threshold_name="calibration_ratio_max",
                    )
                )
            if cal.hosmer_lemeshow_p is not None and cal.hosmer_lemeshow_p < 0.01:
                out.append(
                    finding(
                        "performance",
                        "low",
                        f"Hosmer–Lemeshow rejects calibration ({label.get(name, name)})",
                        f"HL = {cal.hosmer_lemeshow:.2f} on {cal.hosmer_lemeshow_df} df, p = "
                        f"{cal.hosmer_lemeshow_p:.2g}; HL over-rejects on large samples, "
                        "read with the decile table",
                        metric="hosmer_lemeshow_p",
                        value=cal.hosmer_lemeshow_p,
                        threshold=0.01,
                    )
                )
    if sec.auc_drop_oot is not None and sec.auc_drop_oot > policy.auc_drop_max:
        out.append(
            finding(
                "performance",
                "medium",
                "Discrimination falls out of time",
                f"AUC drops by {sec.auc_drop_oot:.3f} from development to out-of-time",
                metric="auc_drop",
                value=sec.auc_drop_oot,
                policy=policy,
                threshold_name="auc_drop_max",
            )
        )
    return out
