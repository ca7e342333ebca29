"""Representation audit (REGULATORY.md §(a) 4 and 9; EU AI Act Art 10(2)(f)–(g) and 10(3)).

Per protected attribute and group, on the development sample: size, share of the sample, observed
event rate, and the missing rate of every model feature. Rows count toward groups through the
attribute's membership weights: one-hot for a collected attribute, BISG probabilities for an
estimated one (so ``n`` is then an *expected* count, REGULATORY.md §(b).4). Sample weights, when
given, multiply the membership weights.

* Missingness gap of a feature = max − min of its missing rate over groups with at least
  ``policy.min_group_size`` rows; flagged above ``policy.missing_gap_max``.
* Population benchmark (``protected[].population_shares``): gap = sample share − population share,
  and Pearson's χ² goodness-of-fit test of the (unweighted) group counts against the shares,
  renormalised over the groups both name: χ² = Σ (O − E)² / E, df = k − 1.
* Out-of-time sample (when given): group shares and event rates there, the change in share, and
  Pearson's χ² test of homogeneity of the group counts, development vs out-of-time.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from service.audits._stats import _f, chi_square_gof
from service.audits.context import AuditContext, ProtectedGroups, SectionOutput, Split
from service.config import ProtectedSpec
from service.findings import finding
from service.result import Finding, ResultModel

SECTION = "representation"


class GroupRepresentation(ResultModel):
    n: float
    share: float | None
    events: float
    event_rate: float | None
    below_min_size: bool
    population_share: float | None = None
    population_gap: float | None = None
    missing_rate: dict[str, float | None]


class MissingnessGap(ResultModel):
    feature: str
    overall_missing_rate: float
    by_group: dict[str, float | None]
    gap: float | None
    flagged: bool


class PopulationTest(ResultModel):
    groups: list[str]
    statistic: float | None
    df: int
    p_value: float | None
    groups_not_in_benchmark: list[str]
    groups_absent_from_sample: list[str] = []
    method: str


class AttributeRepresentation(ResultModel):
    name: str
    column: str | None
    reference: str
    estimated: bool
    method: str
    n_total: float
    n_missing: float
    missing_rate: float
    groups: dict[str, GroupRepresentation]
    missingness_gaps: list[MissingnessGap]
    population_test: PopulationTest | None = None
    out_of_time: OotComparison | None = None
    population_shares: dict[str, float] | None = None
    diagnostics: dict[str, object] | None = None


class OotGroup(ResultModel):
    n: float
    share: float | None
    event_rate: float | None
    share_change: float | None


class OotComparison(ResultModel):
    split: str
    n: int
    groups: dict[str, OotGroup]
    statistic: float | None
    df: int
    p_value: float | None
    method: str


class RepresentationSection(ResultModel):
    split: str
    n: int
    min_group_size: int
    missing_gap_max: float
    count_basis: str
    attributes: dict[str, AttributeRepresentation]


def group_summary(
    y: np.ndarray,
    membership: np.ndarray,
    missing: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-group weighted size, events, event rate and per-feature missing rates.

    Parameters
    ----------
    y : (n,) 0/1 outcomes, 1 = the adverse event.
    membership : (n, k) group weights (one-hot or probabilities; all-zero rows = attribute missing).
    missing : (n, f) boolean, True where a feature is missing.
    sample_weight : optional (n,) weights.

    Returns
    -------
    dict with ``n`` (k,) = Σ_i w_i m_ig, ``events`` (k,) = Σ_i w_i m_ig y_i, ``event_rate`` (k,) and
    ``missing_rate`` (k, f) = Σ_i w_i m_ig miss_if / n_g (NaN for an empty group).
    """
    m = np.asarray(membership, dtype="float64")
    if sample_weight is not None:
        m = m * np.asarray(sample_weight, dtype="float64")[:, None]
    n = m.sum(axis=0)
    events = (m * np.asarray(y, dtype="float64")[:, None]).sum(axis=0)
    mb = np.asarray(missing, dtype=bool)
    # column sums over the rows that have missing values (no BLAS: tiny products, busy machines)
    miss = (
        np.stack([m[mb[:, i]].sum(axis=0) for i in range(mb.shape[1])], axis=1)
        if mb.shape[1]
        else (np.zeros((m.shape[1], 0)))
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, events / n, np.nan)
        mrate = np.where(n[:, None] > 0, miss / n[:, None], np.nan)
    return {"n": n, "events": events, "event_rate": rate, "missing_rate": mrate}


def _attribute(
    split: Split, pg: ProtectedGroups, pspec: ProtectedSpec | None, features: list[str], ctx: AuditContext
) -> AttributeRepresentation:
    policy = ctx.spec.policy
    frame = split.frame
    missing = frame[features].isna().to_numpy() if features else np.zeros((split.n, 0), dtype=bool)
    summ = group_summary(split.y, pg.membership, missing, sample_weight=split.weight)
    w = split.w()
    total = float(w.sum())
    assigned = float(summ["n"].sum())
    # unweighted row counts per group: the basis of the size rule and the χ² test
    raw_n = pg.membership.sum(axis=0)
    groups: dict[str, GroupRepresentation] = {}
    shares = pspec.population_shares if pspec is not None and pspec.population_shares else None
    for j, g in enumerate(pg.groups):
        share = summ["n"][j] / assigned if assigned > 0 else None
        pop = shares.get(g) if shares else None
        groups[g] = GroupRepresentation(
            n=float(summ["n"][j]),
            share=_f(share),
            events=float(summ["events"][j]),
            event_rate=_f(summ["event_rate"][j]),
            below_min_size=bool(raw_n[j] < policy.min_group_size),
            population_share=pop,
            population_gap=_f(share - pop) if share is not None and pop is not None else None,
            missing_rate={f: _f(summ["missing_rate"][j, i]) for i, f in enumerate(features)},
        )
    big = raw_n >= policy.min_group_size
    gaps: list[MissingnessGap] = []
    overall = missing.mean(axis=0) if split.n else np.zeros(len(features))
    for i, f in enumerate(features):
        rates = summ["missing_rate"][:, i]
        usable = rates[big & np.isfinite(rates)]
        gap = float(usable.max() - usable.min()) if usable.size >= 2 else None
        gaps.append(
            MissingnessGap(
                feature=f,
                overall_missing_rate=float(overall[i]),
                by_group={g: _f(rates[j]) for j, g in enumerate(pg.groups)},
                gap=gap,
                flagged=gap is not None and gap > policy.missing_gap_max,
            )
        )
    gaps.sort(key=lambda r: -(r.gap or 0.0))
    test = None
    if shares:
        named = [g for g in pg.groups if g in shares]
        # a benchmark group with no row in the sample is the largest representation gap of all
        absent = [g for g in shares if g not in pg.groups]
        observed = np.concatenate([raw_n[[pg.groups.index(g) for g in named]], np.zeros(len(absent))])
        stat, p, df = chi_square_gof(observed, np.array([shares[g] for g in named + absent]))
        test = PopulationTest(
            groups=named + absent,
            statistic=_f(stat),
            df=df,
            p_value=_f(p),
            groups_not_in_benchmark=[g for g in pg.groups if g not in shares],
            groups_absent_from_sample=absent,
            method="Pearson chi-square goodness of fit on unweighted group counts"
            + (" (expected counts from BISG probabilities: approximate)" if pg.estimated else ""),
        )
    return AttributeRepresentation(
        name=pg.name,
        column=pg.column,
        reference=pg.reference,
        estimated=pg.estimated,
        method=pg.method,
        n_total=total,
        n_missing=total - assigned,
        missing_rate=(total - assigned) / total if total > 0 else 0.0,
        groups=groups,
        missingness_gaps=gaps,
        population_test=test,
        population_shares=dict(shares) if shares else None,
        diagnostics=dict(pg.diagnostics) if pg.estimated else None,
    )


def run(ctx: AuditContext) -> SectionOutput:
    split = ctx.dev
    specs = {p.name: p for p in ctx.spec.protected}
    attrs = {
        name: _attribute(split, pg, specs.get(name), list(ctx.features), ctx)
        for name, pg in split.protected.items()
    }
    section = RepresentationSection(
        split=split.name,
        n=split.n,
        min_group_size=ctx.spec.policy.min_group_size,
        missing_gap_max=ctx.spec.policy.missing_gap_max,
        count_basis="rows weighted by group membership (BISG probabilities for estimated attributes)"
        + (" times sample weights" if split.weight is not None else ""),
        attributes=attrs,
    )
    if ctx.oot is not None:
        for name, a in attrs.items():
            if name in ctx.oot.protected:
                a.out_of_time = _oot(ctx.oot, ctx.oot.protected[name], split.protected[name], a)
    return SectionOutput(section, _findings(section, ctx))


def _oot(
    split: Split, pg: ProtectedGroups, dev_pg: ProtectedGroups, dev: AttributeRepresentation
) -> OotComparison:
    """Group shares in the out-of-time sample vs development (REGULATORY.md §(a) 4: dev vs production).

    Pearson χ² test of homogeneity of the unweighted group counts in the two samples (2 × k table,
    groups empty in both dropped): χ² = Σ (O − E)² / E, E = row total · column total / n, df = k − 1.
    """
    summ = group_summary(
        split.y, pg.membership, np.zeros((split.n, 0), dtype=bool), sample_weight=split.weight
    )
    assigned = float(summ["n"].sum())
    groups = {}
    for j, g in enumerate(pg.groups):
        share = summ["n"][j] / assigned if assigned > 0 else None
        d = dev.groups[g].share if g in dev.groups else None
        groups[g] = OotGroup(
            n=float(summ["n"][j]),
            share=_f(share),
            event_rate=_f(summ["event_rate"][j]),
            share_change=_f(share - d) if share is not None and d is not None else None,
        )
    raw_dev = dict(zip(dev_pg.groups, dev_pg.membership.sum(axis=0), strict=True))
    table = np.vstack([[raw_dev.get(g, 0.0) for g in pg.groups], pg.membership.sum(axis=0)])
    table = table[:, table.sum(axis=0) > 0]
    stat: float | None = None
    p: float | None = None
    df = max(table.shape[1] - 1, 0)
    if table.shape[1] >= 2 and (table.sum(axis=1) > 0).all():
        expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
        stat = float(((table - expected) ** 2 / expected).sum())
        p = float(stats.chi2.sf(stat, df))
    return OotComparison(
        split=split.name,
        n=split.n,
        groups=groups,
        statistic=_f(stat),
        df=df,
        p_value=_f(p),
        method="Pearson chi-square test of homogeneity, development vs out-of-time unweighted group counts"
        + (" (expected counts from BISG probabilities: approximate)" if pg.estimated else ""),
    )


def _findings(sec: RepresentationSection, ctx: AuditContext) -> list[Finding]:
    policy = ctx.spec.policy
    out: list[Finding] = []
    for name, a in sec.attributes.items():
        est = " (estimated by BISG: expected count)" if a.estimated else ""
        for g, r in a.groups.items():
            if r.below_min_size:
                out.append(
                    finding(
                        SECTION,
                        "medium" if g == a.reference else "low",
                        f"Small group: {name}={g}",
                        f"group '{g}' of '{name}' has {r.n:.0f} rows{est}; its rates and tests are "
                        "unreliable",
                        metric="group_n",
                        value=r.n,
                        policy=policy,
                        threshold_name="min_group_size",
                    )
                )
        for gap in a.missingness_gaps:
            if gap.flagged:
                worst = max((v for v in gap.by_group.values() if v is not None), default=0.0)
                out.append(
                    finding(
                        SECTION,
                        "low",
                        f"Missingness differs by {name}: {gap.feature}",
                        f"the missing rate of '{gap.feature}' varies by {gap.gap:.1%} across groups of "
                        f"'{name}' "
                        f"(highest {worst:.1%}); missing values may be handled differently for some groups",
                        metric="missing_rate_gap",
                        value=gap.gap,
                        policy=policy,
                        threshold_name="missing_gap_max",
                    )
                )
        t = a.population_test
        shares = a.population_shares or {}
        for g in t.groups_absent_from_sample if t is not None else []:
            out.append(
                finding(
                    SECTION,
                    "medium",
                    f"Benchmark group absent from the sample: {name}={g}",
                    f"protected[].population_shares gives '{g}' a population share of "
                    f"{shares.get(g, 0.0):.1%} but no row of the sample belongs to it (or the label differs "
                    f"from the data's: groups present are {', '.join(a.groups)})",
                    metric="population_share",
                    value=shares.get(g),
                )
            )
        if t is not None and t.p_value is not None and t.p_value < policy.significance:
            gaps = {g: r.population_gap for g, r in a.groups.items() if r.population_gap is not None}
            g_worst = max(gaps, key=lambda k: abs(gaps[k] or 0.0)) if gaps else None
            extra = f"; largest gap {g_worst} {gaps[g_worst]:+.1%}" if g_worst else ""
            out.append(
                finding(
                    SECTION,
                    "low",
                    f"Sample differs from the population benchmark: {name}",
                    f"group shares of '{name}' differ from protected[].population_shares "
                    f"(chi-square {t.statistic:.2f}, df {t.df}, p = {t.p_value:.3g}{extra})",
                    metric="population_chi2_p",
                    value=t.p_value,
                    policy=policy,
                    threshold_name="significance",
                )
            )
        o = a.out_of_time
        if o is not None and o.p_value is not None and o.p_value < policy.significance:
            moves = {g: r.share_change for g, r in o.groups.items() if r.share_change is not None}
            g_max = max(moves, key=lambda k: abs(moves[k] or 0.0)) if moves else None
            extra = f"; largest change {g_max} {moves[g_max]:+.1%}" if g_max else ""
            out.append(
                finding(
                    SECTION,
                    "low",
                    f"Group mix shifts out of time: {name}",
                    f"group shares of '{name}' differ between the development and out-of-time samples "
                    f"(chi-square {o.statistic:.2f}, df {o.df}, p = {o.p_value:.3g}{extra}); the development "
                    "sample may not represent the population the model now scores",
                    metric="oot_share_chi2_p",
                    value=o.p_value,
                    policy=policy,
                    threshold_name="significance",
                )
            )
        if a.missing_rate > 0:
            out.append(
                finding(
                    SECTION,
                    "info" if a.missing_rate < 0.05 else "low",
                    f"Protected attribute missing: {name}",
                    f"{a.missing_rate:.1%} of rows have no value for '{name}'"
                    + (" (neither surname nor geography matched the Census tables)" if a.estimated else "")
                    + "; they count toward no group",
                    metric="attribute_missing_rate",
                    value=a.missing_rate,
                )
            )
    return out


__all__ = ["RepresentationSection", "group_summary", "run"]
