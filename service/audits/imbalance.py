"""Class-imbalance audit (REGULATORY.md §(a) 4 data, §(a) 12 limited-data cases; EU AI Act Art 10(3)).

Conventions (the event, ``y == 1``, is the adverse outcome and usually the minority class):

* ``event_rate`` = Σ w·y / Σ w; ``imbalance_ratio`` = non-events / events (majority over minority,
  ≥ 1 when events are the minority); ``events_per_variable`` = events / number of model features
  (Peduzzi et al. 1996 rule of thumb: below 10 estimates are unstable; a default, not regulation).
* Low-default portfolio warning: fewer than ``policy.low_default_events`` events overall or in any
  group with members, or an overall event rate below ``policy.low_default_rate`` (SR 11-7 on
  limited-data cases: "even more attention … to the model's limitations").
* Minority-class metrics at the decision threshold, with the event as the positive class and the
  adverse decision as the positive prediction: recall = TP / (TP + FN), precision = TP / (TP + FP),
  balanced accuracy = (recall + TN / (TN + FP)) / 2, F1; PR-AUC = average precision of the risk
  score (scikit-learn's definition), whose no-skill baseline is the event rate. 95% CIs by the
  count bootstrap of ``_stats``.
* A mitigation named in ``spec.imbalance.mitigation`` is recorded as a documented data-preparation
  choice of the developer; Assay does not verify it.
"""

from __future__ import annotations

import numpy as np

from service.audits._stats import (
    _f,
    average_precision_from_counts,
    bootstrap_counts,
    ci_pair,
    percentile_ci,
    score_table,
)
from service.audits.context import AuditContext, SectionOutput, Split
from service.findings import finding
from service.result import Finding, ResultModel

SECTION = "imbalance"
EPV_MIN = 10.0


class GroupEvents(ResultModel):
    n: float
    events: float
    event_rate: float | None
    low_default: bool


class ThresholdMetrics(ResultModel):
    n: int
    events: float
    non_events: float
    event_rate: float
    imbalance_ratio: float | None
    pr_auc: float | None
    pr_auc_ci: list[float | None] | None
    pr_auc_baseline: float
    recall: float | None
    recall_ci: list[float | None] | None
    precision: float | None
    precision_ci: list[float | None] | None
    balanced_accuracy: float | None
    balanced_accuracy_ci: list[float | None] | None
    f1: float | None
    confusion: dict[str, float]


class ImbalanceSection(ResultModel):
    n: int
    events: float
    event_rate: float
    imbalance_ratio: float | None
    n_features: int
    events_per_variable: float | None
    events_per_variable_min: float
    low_default_portfolio: bool
    low_default_reasons: list[str]
    per_group: dict[str, dict[str, GroupEvents]]
    threshold: float
    splits: dict[str, ThresholdMetrics]
    mitigation: str | None
    mitigation_note: str | None
    n_bootstrap: int


def _confusion_rates(c: np.ndarray) -> dict[str, np.ndarray]:
    """Rates from confusion cells [..., (tp, fn, fp, tn)] (vectorised over leading replicate axes)."""
    tp, fn, fp, tn = (c[..., i].astype("float64") for i in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        spec = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    return {"recall": recall, "precision": precision, "balanced_accuracy": (recall + spec) / 2, "f1": f1}


def threshold_metrics(
    y: np.ndarray,
    adverse: np.ndarray,
    risk: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    n_boot: int = 1000,
    rng: np.random.Generator,
) -> dict[str, object]:
    """Minority-class metrics at the decision threshold and PR-AUC, with count-bootstrap CIs.

    Parameters
    ----------
    y : 0/1 outcomes, 1 = the adverse event (positive class).
    adverse : bool, the adverse decision (positive prediction).
    risk : score oriented higher = riskier (for PR-AUC).
    """
    yy = np.asarray(y).astype(bool)
    dd = np.asarray(adverse).astype(bool)
    w = np.ones(yy.size) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    cell = np.where(yy, np.where(dd, 0, 1), np.where(dd, 2, 3))  # tp, fn, fp, tn
    cw = np.bincount(cell, weights=w, minlength=4)
    cn = np.bincount(cell, minlength=4)
    point = _confusion_rates(cw)
    t = score_table(risk, yy, sample_weight=sample_weight)
    ap = float(average_precision_from_counts(t.pos_w, t.neg_w))
    out: dict[str, object] = {k: _f(float(v)) for k, v in point.items()}
    out["pr_auc"] = _f(ap)
    out["confusion"] = {"tp": float(cw[0]), "fn": float(cw[1]), "fp": float(cw[2]), "tn": float(cw[3])}
    if n_boot > 0:
        mean_w = np.where(cn > 0, cw / np.maximum(cn, 1), 0.0)
        reps = bootstrap_counts(cn, n_boot, rng) * mean_w
        r = _confusion_rates(reps)
        for k in ("recall", "precision", "balanced_accuracy"):
            out[f"{k}_ci"] = ci_pair(*percentile_ci(r[k]))  # type: ignore[misc]
        cells = np.concatenate([t.pos_n, t.neg_n])
        rb = bootstrap_counts(cells, n_boot, rng)
        pw, nw = t.weighted(rb[:, : t.pos_n.size], rb[:, t.pos_n.size :])
        out["pr_auc_ci"] = ci_pair(*percentile_ci(average_precision_from_counts(pw, nw)))  # type: ignore[misc]
    else:
        for k in ("recall", "precision", "balanced_accuracy", "pr_auc"):
            out[f"{k}_ci"] = None
    return out


def _split_metrics(split: Split, ctx: AuditContext) -> ThresholdMetrics:
    w = split.w()
    events = float((w * split.y).sum())
    total = float(w.sum())
    r = threshold_metrics(
        split.y,
        split.adverse,
        split.risk,
        sample_weight=split.weight,
        n_boot=ctx.n_boot,
        rng=ctx.rng(f"{SECTION}:{split.name}"),
    )
    return ThresholdMetrics(
        n=split.n,
        events=events,
        non_events=total - events,
        event_rate=events / total,
        imbalance_ratio=_f((total - events) / events) if events > 0 else None,
        pr_auc_baseline=events / total,
        **r,  # type: ignore[arg-type]
    )


def run(ctx: AuditContext) -> SectionOutput:
    policy = ctx.spec.policy
    dev = ctx.dev
    w = dev.w()
    events = float((w * dev.y).sum())
    total = float(w.sum())
    rate = events / total
    per_group: dict[str, dict[str, GroupEvents]] = {}
    reasons: list[str] = []
    for name, pg in dev.protected.items():
        m = pg.membership * w[:, None]
        n_g = m.sum(axis=0)
        e_g = m.T @ dev.y.astype("float64")
        per_group[name] = {}
        for j, g in enumerate(pg.groups):
            low = bool(n_g[j] > 0 and e_g[j] < policy.low_default_events)
            per_group[name][g] = GroupEvents(
                n=float(n_g[j]),
                events=float(e_g[j]),
                event_rate=_f(e_g[j] / n_g[j]) if n_g[j] > 0 else None,
                low_default=low,
            )
            if low:
                reasons.append(f"{name}={g}: {e_g[j]:.0f} events")
    overall: list[str] = []
    if events < policy.low_default_events:
        overall.append(f"{events:.0f} events overall")
    if rate < policy.low_default_rate:
        overall.append(f"event rate {rate:.2%}")
    nf = len(ctx.features)
    mitigation = ctx.spec.imbalance.mitigation
    section = ImbalanceSection(
        n=dev.n,
        events=events,
        event_rate=rate,
        imbalance_ratio=_f((total - events) / events) if events > 0 else None,
        n_features=nf,
        events_per_variable=events / nf if nf else None,
        events_per_variable_min=EPV_MIN,
        low_default_portfolio=bool(overall),
        low_default_reasons=overall + reasons,
        per_group=per_group,
        threshold=ctx.spec.score.threshold,
        splits={s.name: _split_metrics(s, ctx) for s in ctx.splits()},
        mitigation=mitigation,
        mitigation_note=(
            "documented data-preparation choice stated by the developer in the spec (imbalance.mitigation); "
            "recorded, not verified by Assay. Metrics here are on the unweighted, unresampled audit sample"
        )
        if mitigation
        else None,
        n_bootstrap=ctx.n_boot,
    )
    return SectionOutput(section, _findings(section, ctx, overall, reasons))


def _findings(
    sec: ImbalanceSection, ctx: AuditContext, overall: list[str], groups: list[str]
) -> list[Finding]:
    policy = ctx.spec.policy
    out: list[Finding] = []
    if overall:
        out.append(
            finding(
                SECTION,
                "medium",
                "Low-default portfolio",
                f"few adverse events to develop or validate on ({'; '.join(overall)}); discrimination and "
                "calibration estimates are uncertain: read them with their confidence intervals",
                metric="events" if sec.events < policy.low_default_events else "event_rate",
                value=sec.events if sec.events < policy.low_default_events else sec.event_rate,
                policy=policy,
                threshold_name="low_default_events"
                if sec.events < policy.low_default_events
                else "low_default_rate",
            )
        )
    if groups:
        out.append(
            finding(
                SECTION,
                "low",
                "Few events in some groups",
                f"groups with fewer than {policy.low_default_events} events: {', '.join(groups[:8])}"
                + (" …" if len(groups) > 8 else "")
                + "; per-group error rates and AUCs for them are unreliable",
                metric="group_events",
                value=min(
                    ge.events for attr in sec.per_group.values() for ge in attr.values() if ge.low_default
                ),
                policy=policy,
                threshold_name="low_default_events",
            )
        )
    if sec.events_per_variable is not None and sec.events_per_variable < EPV_MIN:
        out.append(
            finding(
                SECTION,
                "low",
                "Few events per variable",
                f"{sec.events:.0f} events for {sec.n_features} features ({sec.events_per_variable:.1f} per "
                "variable, rule of thumb >= 10, Peduzzi et al. 1996); risk of overfitting",
                metric="events_per_variable",
                value=sec.events_per_variable,
                threshold=EPV_MIN,
            )
        )
    if sec.mitigation:
        out.append(
            finding(
                SECTION,
                "info",
                "Class-imbalance mitigation documented",
                f"the developer states this data-preparation choice: {sec.mitigation}",
                metric=None,
            )
        )
    return out


__all__ = ["ImbalanceSection", "run", "threshold_metrics"]
