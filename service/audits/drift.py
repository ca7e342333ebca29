"""Drift audit (SPEC.md §5 ``sections.drift``): the out-of-time sample against the development sample.

The development split is profiled exactly as a monitor's reference profile would be
(:mod:`service.monitoring.profile`, kept exact here because both samples are in memory) and the
out-of-time split is compared with it as one monitoring window (:mod:`service.monitoring.window`,
where the PSI/CSI, KS, Wasserstein, Jensen–Shannon and chi-square conventions are stated).
Ongoing monitoring of input and output stability is part of outcomes analysis under SR 26-2 (which
replaced SR 11-7 on 17 Apr 2026; REGULATORY.md) and OCC 2011-12.

Needs an out-of-time sample (``oot_dataset`` or ``temporal.oot_after``); otherwise "not run".
"""

from __future__ import annotations

from typing import Any

from service.audits.context import AuditContext, NotApplicable, SectionOutput
from service.monitoring.profile import build_profile
from service.monitoring.window import (
    CONVENTIONS,
    CategoricalDrift,
    DriftSummary,
    NumericDrift,
    PredictionDrift,
    WindowAccumulator,
    window_alerts,
)
from service.result import ResultModel


class DriftSection(ResultModel):
    reference: str
    current: str
    n_reference: int
    n_current: int
    conventions: dict[str, str]
    features: dict[str, NumericDrift | CategoricalDrift]
    score: NumericDrift | None
    summary: DriftSummary
    prediction: PredictionDrift | None
    fairness: dict[str, Any]


def run(ctx: AuditContext) -> SectionOutput:
    if ctx.oot is None:
        raise NotApplicable("no out-of-time sample: give oot_dataset or temporal.oot_after to compare with")
    dev, oot = ctx.dev, ctx.oot
    ctx.progress("drift: profiling the development sample")
    prof = build_profile(
        dev.frame,
        ctx.features,
        score=dev.score,
        adverse=dev.adverse,
        protected=dev.protected,
        sample_weight=dev.weight,
        kinds=_kinds(ctx),
        source={"split": "dev"},
        exact_max_unique=10**9,  # both samples are in memory: keep the reference ECDF exactly
    )
    acc = WindowAccumulator(prof, keep_values=True)
    codes = {k: v.codes for k, v in oot.protected.items() if k in prof.fairness}
    acc.update(oot.frame, score=oot.score, adverse=oot.adverse, codes=codes, sample_weight=oot.weight)
    policy = ctx.spec.policy
    block = acc.drift(policy)
    fair = acc.fairness(policy, n_boot=ctx.n_boot, rng=ctx.rng("drift"))
    sec = DriftSection(
        reference="dev",
        current="oot",
        n_reference=dev.n,
        n_current=oot.n,
        conventions=CONVENTIONS,
        features=block.features,
        score=block.score,
        summary=block.summary,
        prediction=acc.prediction(),
        fairness={"attributes": {k: v.model_dump(mode="json") for k, v in fair.items()}},
    )
    # fairness findings belong to the fairness audit; here only the drift ones
    return SectionOutput(sec, window_alerts(block, {}, policy, section="drift"))


def _kinds(ctx: AuditContext) -> dict[str, str]:
    out: dict[str, str] = {}
    for col, kind in (ctx.spec.dtypes or {}).items():
        if kind in ("numeric", "categorical"):
            out[col] = kind
    return out


__all__ = ["DriftSection", "run"]
