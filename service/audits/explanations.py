"""Section ``explanations``: SHAP attributions of the model's raw margin, globally and by group.

Scale and sign: every value is a contribution to the model's **raw margin (log-odds) oriented
toward the adverse outcome** (negated when ``score.direction: higher_is_safer``), so a positive
value pushes an applicant toward decline/flag. Log-odds contributions are additive; probability
contributions are not (REGULATORY.md §(c).5).

* Method by model family: path-dependent TreeSHAP for LightGBM/XGBoost (LightGBM ``pred_contrib``,
  identical to ``shap.TreeExplainer(model)``), exact linear contributions ``β·(T(x) − mean T)`` against
  the whole development sample for linear models, shap's permutation estimate otherwise.
* On a seeded random sample of the development rows (size reported, all rows when
  ``n ≤ SAMPLE_MAX``).
* ``features.<f>.mean_abs_shap`` = weighted mean |φ_f| with a 95% percentile bootstrap CI (rows
  resampled as multinomial counts, ``ctx.n_boot`` replicates); ``mean_shap`` the signed mean.
* ``attributes.<a>.groups.<g>.mean_shap.<f>``: membership-weighted mean φ_f in each protected group
  (BISG probabilities for an estimated attribute); ``top_differences``: the features whose mean
  contribution differs most from the reference group (``difference = group − reference``).
* ``monotone.<f>``: Spearman ρ between a feature's value and its contribution; a declared
  ``increasing_risk`` feature should have ρ > 0, ``decreasing_risk`` ρ < 0. Contradicted when ρ has the
  wrong sign and |ρ| ≥ ``MONOTONE_RHO_MIN`` (default threshold).

Section ``reasons`` (:func:`run_reasons`, registered right after this one): the adverse-action
reason engine's quality checks on the development data (service/reasons/quality.py), when the spec
gives ``reason_codes``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats

from service.audits._stats import percentile_ci
from service.audits.context import AuditContext, NotApplicable, SectionOutput
from service.errors import InputError
from service.findings import finding
from service.result import Finding, ResultModel

SAMPLE_MAX = 2000
TOP_DIFFERENCES = 5
MONOTONE_RHO_MIN = 0.10
SCALE_NOTE = (
    "contributions to the model's raw margin (log-odds of the adverse outcome); positive values push "
    "toward the adverse decision; values add up to margin − base_value"
)


class FeatureImportance(ResultModel):
    rank: int
    mean_abs_shap: float
    mean_abs_shap_ci: list[float | None] | None
    mean_shap: float


class GroupShap(ResultModel):
    n: float
    mean_shap: dict[str, float | None]


class ShapDifference(ResultModel):
    group: str
    feature: str
    group_mean: float
    reference_mean: float
    difference: float


class AttributeShap(ResultModel):
    reference: str
    estimated: bool
    groups: dict[str, GroupShap]
    top_differences: list[ShapDifference]


class MonotoneCheck(ResultModel):
    declared: str
    spearman_rho: float | None
    n: int
    contradicts: bool | None
    status: str


class ExplanationsSection(ResultModel):
    method: str
    scale: str
    scale_note: str
    sample_size: int
    population_size: int
    base_value: float
    features: dict[str, FeatureImportance]
    attributes: dict[str, AttributeShap]
    monotone: dict[str, MonotoneCheck]
    monotone_rho_min: float


class ReasonsSection(BaseModel):
    """Free-form quality report of the reason engine (keys documented in service/reasons/quality.py)."""

    model_config = ConfigDict(extra="allow")


# --------------------------------------------------------------------------- pure statistics


def mean_abs_with_ci(
    values: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    n_boot: int = 1000,
    random_state: np.random.Generator | int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted mean |φ| per column and its 95% percentile bootstrap CI.

    Rows are resampled with multinomial counts (the ordinary row bootstrap), so each replicate is a
    matrix product ``counts @ |φ|``. Returns (mean_abs (p,), lo (p,), hi (p,)); CI NaN when n_boot = 0.
    """
    A = np.abs(np.asarray(values, dtype="float64"))
    n, p = A.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    point = (w @ A) / w.sum()
    if n_boot <= 0 or n < 2:
        nan = np.full(p, np.nan)
        return point, nan, nan
    rng = (
        random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    )
    reps = np.empty((n_boot, p))
    chunk = max(1, 2_000_000 // n)
    for s in range(0, n_boot, chunk):
        k = min(chunk, n_boot - s)
        c = rng.multinomial(n, np.full(n, 1.0 / n), size=k) * w
        reps[s : s + k] = (c @ A) / c.sum(axis=1, keepdims=True)
    lo, hi = percentile_ci(reps, axis=0)
    return point, np.asarray(lo, dtype="float64"), np.asarray(hi, dtype="float64")


def group_mean_shap(
    values: np.ndarray,
    membership: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(k, p) membership-weighted mean φ per group and (k,) weighted group sizes (NaN for empty groups)."""
    n = values.shape[0]
    w = np.ones(n) if sample_weight is None else sample_weight
    W = membership * w[:, None]
    size = W.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (W.T @ values) / size[:, None]
    means[size <= 0] = np.nan
    return means, size


def monotone_check(
    x: np.ndarray,
    phi: np.ndarray,
    declared: str,
    *,
    rho_min: float = MONOTONE_RHO_MIN,
) -> MonotoneCheck:
    """Spearman ρ(x, φ); ``increasing_risk`` expects ρ > 0.

    Contradiction when the sign is wrong and |ρ| ≥ rho_min.
    """
    ok = np.isfinite(x) & np.isfinite(phi)
    n = int(ok.sum())
    if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(phi[ok]) == 0:
        return MonotoneCheck(
            declared=declared,
            spearman_rho=None,
            n=n,
            contradicts=None,
            status="undefined: the feature or its contribution is constant in the sample",
        )
    rho = float(stats.spearmanr(x[ok], phi[ok]).statistic)
    want = 1.0 if declared == "increasing_risk" else -1.0
    bad = rho * want < 0 and abs(rho) >= rho_min
    status = "contradicts the declared direction" if bad else "consistent with the declared direction"
    return MonotoneCheck(declared=declared, spearman_rho=rho, n=n, contradicts=bool(bad), status=status)


# --------------------------------------------------------------------------- the audit


def explain_sample(ctx: AuditContext, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str]:
    """(φ (n, p) toward adverse, base (n,), method) for ``frame`` with the model's family method."""
    from service.reasons.explainers import make_attributor, model_family, path_dependent_tree

    family = model_family(ctx.model)
    sign = 1.0 if ctx.spec.score.direction == "higher_is_riskier" else -1.0
    if family == "tree":
        phi, base = path_dependent_tree(ctx.model, frame)
        method = f"path-dependent TreeSHAP ({ctx.model.kind} pred_contrib, equal to shap.TreeExplainer)"
    else:
        att = make_attributor(ctx.model, ctx.dev.frame, seed=ctx.seed)
        phi = att.attribute(frame)
        base = np.full(len(frame), att.expected_value)
        method = (
            f"{att.method} against the mean of the development data"
            if family == "linear"
            else f"{att.method}, {att.reference_size} background rows"
        )
    return sign * phi, sign * base, method


def run(ctx: AuditContext) -> SectionOutput:
    from service.reasons.explainers import model_family

    family = model_family(ctx.model)
    if family == "none":
        raise NotApplicable("no model was given (score.column), so there is nothing to explain")
    feats = list(ctx.features)
    for f in ctx.spec.monotone or {}:
        if f not in feats:
            raise InputError(
                f"monotone declares feature '{f}', which is not a model feature",
                file=str(ctx.spec.spec_path or "spec"),
                field=f"monotone.{f}",
                expected="model features only: " + ", ".join(feats[:30]),
            )
    dev = ctx.dev
    rng = ctx.rng("explanations")
    n = dev.n
    idx = np.arange(n) if n <= SAMPLE_MAX else np.sort(rng.choice(n, SAMPLE_MAX, replace=False))
    frame = dev.frame.iloc[idx]
    w = None if dev.weight is None else dev.weight[idx]
    ctx.progress(f"explanations: attributions for {idx.size} rows")
    phi, base, method = explain_sample(ctx, frame)

    point, lo, hi = mean_abs_with_ci(phi, sample_weight=w, n_boot=ctx.n_boot, random_state=rng)
    wv = np.ones(idx.size) if w is None else w
    signed = (wv @ phi) / wv.sum()
    order = np.lexsort((np.arange(len(feats)), -point))
    rank = np.empty(len(feats), dtype=int)
    rank[order] = np.arange(1, len(feats) + 1)
    features = {
        f: FeatureImportance(
            rank=int(rank[j]),
            mean_abs_shap=float(point[j]),
            mean_abs_shap_ci=None if not np.isfinite(lo[j]) else [float(lo[j]), float(hi[j])],
            mean_shap=float(signed[j]),
        )
        for j, f in enumerate(feats)
    }
    features = dict(sorted(features.items(), key=lambda kv: kv[1].rank))

    attributes: dict[str, AttributeShap] = {}
    for name, pg in dev.protected.items():
        means, size = group_mean_shap(phi, pg.membership[idx], sample_weight=w)
        ref = pg.reference_index
        groups = {
            g: GroupShap(
                n=float(size[k]),
                mean_shap={
                    f: (None if not np.isfinite(means[k, j]) else float(means[k, j]))
                    for j, f in enumerate(feats)
                },
            )
            for k, g in enumerate(pg.groups)
        }
        diffs: list[ShapDifference] = []
        for k, g in enumerate(pg.groups):
            if k == ref or size[k] <= 0 or size[ref] <= 0:
                continue
            d = means[k] - means[ref]
            for j in np.lexsort((np.arange(len(feats)), -np.abs(d)))[:TOP_DIFFERENCES]:
                diffs.append(
                    ShapDifference(
                        group=g,
                        feature=feats[j],
                        group_mean=float(means[k, j]),
                        reference_mean=float(means[ref, j]),
                        difference=float(d[j]),
                    )
                )
        attributes[name] = AttributeShap(
            reference=pg.reference, estimated=pg.estimated, groups=groups, top_differences=diffs
        )

    monotone: dict[str, MonotoneCheck] = {}
    for f, declared in (ctx.spec.monotone or {}).items():
        j = feats.index(f)
        x = pd.to_numeric(frame[f], errors="coerce").to_numpy(dtype="float64")
        if pd.to_numeric(frame[f], errors="coerce").notna().sum() < frame[f].notna().sum():
            monotone[f] = MonotoneCheck(
                declared=declared,
                spearman_rho=None,
                n=0,
                contradicts=None,
                status="not checked: the feature is not numeric",
            )
            continue
        monotone[f] = monotone_check(x, phi[:, j], declared)

    section = ExplanationsSection(
        method=method,
        scale="log_odds",
        scale_note=SCALE_NOTE,
        sample_size=int(idx.size),
        population_size=int(n),
        base_value=float((wv @ base) / wv.sum()),
        features=features,
        attributes=attributes,
        monotone=monotone,
        monotone_rho_min=MONOTONE_RHO_MIN,
    )
    return SectionOutput(section, _findings(section))


def run_reasons(ctx: AuditContext) -> SectionOutput:
    """Section ``reasons``: quality of the adverse-action reasons on the development data."""
    from service.reasons.explainers import model_family
    from service.reasons.quality import reason_quality

    if ctx.spec.reason_codes is None:
        raise NotApplicable("the spec gives no reason catalogue (reason_codes)")
    if model_family(ctx.model) == "none":
        raise NotApplicable("no model was given (score.column), so reasons cannot be attributed")
    ctx.progress("reasons: engine quality checks")
    quality, findings = reason_quality(ctx)
    return SectionOutput(ReasonsSection(**quality), findings)


def _findings(sec: ExplanationsSection) -> list[Finding]:
    out: list[Finding] = []
    for f, m in sec.monotone.items():
        if m.contradicts:
            out.append(
                finding(
                    "explanations",
                    "medium",
                    f"Effect of {f} contradicts its declared direction",
                    f"'{f}' is declared {m.declared} in the spec, but the Spearman correlation "
                    "between its value and "
                    f"its SHAP contribution toward the adverse outcome is {m.spearman_rho:+.2f} "
                    f"on {m.n} sampled rows",
                    metric="spearman_rho",
                    value=m.spearman_rho,
                    threshold=sec.monotone_rho_min,
                )
            )
    return out


__all__ = [
    "ExplanationsSection",
    "ReasonsSection",
    "run_reasons",
    "explain_sample",
    "group_mean_shap",
    "mean_abs_with_ci",
    "monotone_check",
    "run",
]
