"""Quality checks of the reason engine on the development data (REGULATORY.md §(c).4).

Reported as ``sections.reasons``:

* ``fidelity``: for a seeded sample of declined applicants, each reported reason group is moved to its
  reference values (its features replaced by those of each of ≤ 100 reference rows, margins averaged)
  and the change of the adverse-oriented margin Δ is measured. ``top1_toward_approval_rate`` =
  share with Δ₁ < 0; ``top1_largest_move_rate`` = share (rows with ≥ 2 reasons) where reason 1 moves the
  margin most; ``flip_rate`` = share whose decision becomes favorable when every reported group is moved.
* ``stability``: mean Jaccard similarity of the top-``max_reasons`` code sets between the engine and
  ``STABILITY_RESAMPLES`` engines whose reference sets are bootstrap resamples (seeded) of it;
  ``primary_agreement_rate`` = share with the same first reason.
* ``baseline_sensitivity``: the same comparison between reference ``marginal`` (method 1) and ``all``
  (method 2).
* ``disparity``: per protected attribute and group, the share of declined applicants whose primary
  reason is each code. A (code, group) is flagged when the group has ≥ ``policy.min_group_size``
  declined applicants, its share ≥ ``DISPARITY_MIN_SHARE`` and its share ≥ ``DISPARITY_RATIO`` × the
  reference group's share (default thresholds).
* ``coverage``: distribution of primary reasons; ``no_reason_count`` = declined rows without any positive
  reason group (a Regulation B problem: every adverse action needs specific reasons).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from service.audits.context import AuditContext
from service.findings import finding
from service.reasons.build import catalogue_for, engine_from_context
from service.reasons.engine import ReasonEngine, ReferenceSet
from service.result import Finding

QUALITY_SAMPLE = 500
DISPARITY_MAX_ROWS = 20_000
STABILITY_RESAMPLES = 5
FIDELITY_REFERENCE_ROWS = 100
FIDELITY_MIN = 0.90
STABILITY_MIN = 0.80
BASELINE_JACCARD_MIN = 0.50
DISPARITY_MIN_SHARE = 0.10
DISPARITY_RATIO = 2.0


def jaccard(a: list[str], b: list[str]) -> float:
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def top_codes(engine: ReasonEngine, G: np.ndarray) -> list[list[str]]:
    return [[engine.codes[k] for k in engine.rank(row)][: engine.max_reasons] for row in G]


def _compare(a: list[list[str]], b: list[list[str]]) -> dict[str, float | None]:
    if not a:
        return {"mean_jaccard": None, "primary_agreement_rate": None}
    jac = [jaccard(x, y) for x, y in zip(a, b, strict=True)]
    prim = [(x[:1] == y[:1]) for x, y in zip(a, b, strict=True)]
    return {"mean_jaccard": float(np.mean(jac)), "primary_agreement_rate": float(np.mean(prim))}


def fidelity(
    engine: ReasonEngine, frame: pd.DataFrame, G: np.ndarray, rng: np.random.Generator
) -> dict[str, Any]:
    """Move each reported group to the reference set's values; see the module docstring.

    "Moving group g to its reference value" replaces the group's features by those of each of (at most
    ``FIDELITY_REFERENCE_ROWS``) reference rows and averages the adverse-oriented margin, the same
    intervention the interventional attributions average over.
    """
    refrows = engine.reference.rows
    if len(refrows) > FIDELITY_REFERENCE_ROWS:
        refrows = refrows.iloc[np.sort(rng.choice(len(refrows), FIDELITY_REFERENCE_ROWS, replace=False))]
    m = len(refrows)
    groups = [[f for f in g.features if f not in engine.blocked] for g in engine.catalogue.groups]
    ranked = [engine.rank(row)[: engine.max_reasons] for row in G]
    base = engine.sign * np.asarray(engine.model.predict_margin(frame), dtype="float64")
    K = engine.max_reasons

    cols_all = list(frame.columns)
    base_cols = {c: frame[c].to_numpy() for c in cols_all}
    ref_cols = {c: refrows[c].to_numpy() for c in refrows.columns}

    def moved(rows: list[int], cols_of: list[list[str]]) -> pd.DataFrame:
        data = {}
        for c in cols_all:
            arr: np.ndarray = np.repeat(base_cols[c][rows], m)
            hit = np.array([c in cols for cols in cols_of], dtype=bool)
            if hit.any() and c in ref_cols:
                arr = arr.astype(np.result_type(arr.dtype, ref_cols[c].dtype)).reshape(len(rows), m)
                arr[hit] = ref_cols[c][None, :]
                arr = arr.reshape(-1)
            data[c] = arr
        return pd.DataFrame(data, columns=cols_all)

    delta = np.full((len(frame), K), np.nan)
    for r in range(K):
        rows = [i for i, rk in enumerate(ranked) if len(rk) > r]
        if not rows:
            continue
        big = moved(rows, [groups[ranked[i][r]] for i in rows])
        mm = engine.sign * np.asarray(engine.model.predict_margin(big), dtype="float64")
        delta[rows, r] = mm.reshape(len(rows), m).mean(axis=1) - base[rows]
    with_reason = [i for i, rk in enumerate(ranked) if rk]
    flip = None
    if with_reason:
        big = moved(with_reason, [[f for g in ranked[i] for f in groups[g]] for i in with_reason])
        _, still = engine.decide(big)
        flip = float(np.mean(~still))
    has1 = np.isfinite(delta[:, 0])
    multi = np.isfinite(delta[:, 1]) if K > 1 else np.zeros(len(frame), dtype=bool)
    largest = [bool(delta[i, 0] <= np.nanmin(delta[i])) for i in np.nonzero(multi)[0]]
    return {
        "n": int(has1.sum()),
        "reference_rows": m,
        "top1_toward_approval_rate": float(np.mean(delta[has1, 0] < 0)) if has1.any() else None,
        "top1_largest_move_rate": float(np.mean(largest)) if largest else None,
        "flip_rate": flip,
        "mean_margin_change_by_rank": [
            None if not np.isfinite(delta[:, r]).any() else float(np.nanmean(delta[:, r])) for r in range(K)
        ],
    }


def _resampled(ref: ReferenceSet, rng: np.random.Generator) -> ReferenceSet:
    n = ref.size
    counts = rng.multinomial(n, np.full(n, 1.0 / n)).astype("float64")
    w = counts if ref.weight is None else counts * ref.weight
    keep = w > 0
    return ReferenceSet(
        ref.method, ref.rows.loc[keep].reset_index(drop=True), w[keep], ref.version + "-boot", ref.description
    )


def disparity(
    ctx: AuditContext, rows: np.ndarray, primary: list[str | None], codes: list[str]
) -> dict[str, Any]:
    """Share of each primary reason by protected group among declined rows ``rows`` (dev indices)."""
    min_n = ctx.spec.policy.min_group_size
    out: dict[str, Any] = {}
    prim = np.array([p if p is not None else "(none)" for p in primary], dtype=object)
    allc = list(dict.fromkeys(codes + sorted(set(prim.tolist()) - set(codes))))
    for name, pg in ctx.dev.protected.items():
        memb = pg.membership[rows]
        groups: dict[str, Any] = {}
        shares = np.zeros((len(pg.groups), len(allc)))
        size = memb.sum(axis=0)
        for k, g in enumerate(pg.groups):
            for c, code in enumerate(allc):
                shares[k, c] = float(memb[prim == code, k].sum() / size[k]) if size[k] > 0 else np.nan
            groups[g] = {
                "n_declined": float(size[k]),
                "primary_reason_share": {
                    code: (None if not np.isfinite(shares[k, c]) else float(shares[k, c]))
                    for c, code in enumerate(allc)
                    if np.isfinite(shares[k, c]) and shares[k, c] > 0
                },
            }
        ref = pg.reference_index
        flags = []
        for k, g in enumerate(pg.groups):
            if k == ref or size[k] < min_n or size[ref] <= 0:
                continue
            for c, code in enumerate(allc):
                s, r = shares[k, c], shares[ref, c]
                if s >= DISPARITY_MIN_SHARE and s >= DISPARITY_RATIO * r:
                    flags.append(
                        {
                            "group": g,
                            "code": code,
                            "share": float(s),
                            "reference_share": float(r),
                            "ratio": None if r == 0 else float(s / r),
                        }
                    )
        out[name] = {"reference": pg.reference, "groups": groups, "flags": flags}
    return out


def reason_quality(ctx: AuditContext) -> tuple[dict[str, Any], list[Finding]]:
    """Run the reason engine on the development data and measure it (module docstring)."""
    spec = ctx.spec
    rng = ctx.rng("explanations.reasons")
    cat = catalogue_for(spec, ctx.features)
    eng = engine_from_context(ctx, catalogue=cat)
    frame = ctx.dev.frame.reset_index(drop=True)
    _, by_score = eng.decide(frame)
    declined = np.nonzero(by_score)[0]
    fast = eng.method != "permutation (shap.PermutationExplainer)"
    cap = DISPARITY_MAX_ROWS if fast else QUALITY_SAMPLE
    d_rows = declined if declined.size <= cap else np.sort(rng.choice(declined, cap, replace=False))
    res = eng.explain(frame.iloc[d_rows])
    primary = [r["reasons"][0]["code"] if r["reasons"] else None for r in res.records]
    no_reason = int(
        sum(1 for r, s in zip(res.records, res.score_adverse, strict=True) if s and not r["reasons"])
    )

    s_pos = (
        np.arange(d_rows.size)
        if d_rows.size <= QUALITY_SAMPLE
        else np.sort(rng.choice(d_rows.size, QUALITY_SAMPLE, replace=False))
    )
    sample = frame.iloc[d_rows[s_pos]].reset_index(drop=True)
    G = res.group_contrib[s_pos]
    base_top = top_codes(eng, G)
    fid = fidelity(eng, sample, G, rng) if len(sample) else {"n": 0}

    stab_runs = []
    resamples = STABILITY_RESAMPLES if fast else 1
    for _ in range(resamples):
        e2 = ReasonEngine(
            ctx.model,
            cat,
            _resampled(eng.reference, rng),
            threshold=eng.threshold,
            direction=eng.direction,
            max_reasons=eng.max_reasons,
            blocked_features=eng.blocked,
            seed=spec.seed,
            grouping=eng.grouping,
        )
        stab_runs.append(_compare(base_top, top_codes(e2, e2.group_contributions(sample))))
    stab = {
        "resamples": resamples,
        "mean_jaccard": _mean([r["mean_jaccard"] for r in stab_runs]),
        "primary_agreement_rate": _mean([r["primary_agreement_rate"] for r in stab_runs]),
    }
    other = "all" if eng.reference.method == "marginal" else "marginal"
    e_other = engine_from_context(ctx, method=other, blocked_features=eng.blocked, catalogue=cat)
    sens = {
        "compared_with": other,
        "reference_size": e_other.reference.size,
        **_compare(base_top, top_codes(e_other, e_other.group_contributions(sample))),
    }

    codes_all = eng.codes + [k.code for k in cat.knockouts]
    prim_arr = [p for p in primary if p is not None]
    coverage = {c: prim_arr.count(c) / len(prim_arr) for c in codes_all if prim_arr.count(c)}
    disp = disparity(ctx, d_rows, primary, codes_all)
    quality: dict[str, Any] = {
        "method": eng.method,
        "grouping": (
            "sum of member features' attributions (reasons.grouping: sum)"
            if eng.grouping == "sum"
            else "each group one player: group Shapley values (reasons.grouping: partition)"
        ),
        "reference": eng.reference.method,
        "reference_version": eng.reference.version,
        "reference_size": eng.reference.size,
        "reference_description": eng.reference.description,
        "model_sha256": eng.model_sha256,
        "max_reasons": eng.max_reasons,
        "blocked_features": eng.blocked,
        "excluded_features": dict(cat.excluded),
        "declined": int(declined.size),
        "explained": int(d_rows.size),
        "quality_sample": int(len(sample)),
        "no_reason_count": no_reason,
        "coverage": dict(sorted(coverage.items(), key=lambda kv: -kv[1])),
        "fidelity": fid,
        "stability": stab,
        "baseline_sensitivity": sens,
        "disparity": disp,
        "primary_reason_share_by_group": {
            f"{attr}={g}": v["primary_reason_share"]
            for attr, d in disp.items()
            for g, v in d["groups"].items()
        },
        "thresholds": {
            "fidelity_min": FIDELITY_MIN,
            "stability_min": STABILITY_MIN,
            "baseline_jaccard_min": BASELINE_JACCARD_MIN,
            "disparity_min_share": DISPARITY_MIN_SHARE,
            "disparity_ratio": DISPARITY_RATIO,
            "source": "default",
        },
    }
    return quality, _findings(quality)


def _mean(xs: list[float | None]) -> float | None:
    v = [x for x in xs if x is not None]
    return float(np.mean(v)) if v else None


def _findings(q: dict[str, Any]) -> list[Finding]:
    out: list[Finding] = []
    sec = "reasons"
    if q["no_reason_count"]:
        out.append(
            finding(
                sec,
                "high",
                "Declined applicants without a reason",
                f"{q['no_reason_count']} declined applicant(s) have no reason group with a positive "
                "contribution against the reference set; Regulation B requires specific reasons",
                metric="no_reason_count",
                value=q["no_reason_count"],
            )
        )
    if q["blocked_features"]:
        out.append(
            finding(
                sec,
                "info",
                "Proxy-flagged features never given as reasons",
                "The proxy audit flagged " + ", ".join(q["blocked_features"]) + "; their attributions "
                "are left out of every reason group (consider removing them from the model)",
            )
        )
    t1 = q["fidelity"].get("top1_toward_approval_rate")
    if t1 is not None and t1 < FIDELITY_MIN:
        out.append(
            finding(
                sec,
                "medium",
                "Reason fidelity below the default minimum",
                f"Moving the first reason to its reference value moved the score toward approval for "
                f"{t1:.0%} of sampled declined applicants",
                metric="top1_toward_approval_rate",
                value=t1,
                threshold=FIDELITY_MIN,
            )
        )
    sj = q["stability"]["mean_jaccard"]
    if sj is not None and sj < STABILITY_MIN:
        out.append(
            finding(
                sec,
                "low",
                "Reasons unstable under resampling of the reference set",
                f"Mean top-{q['max_reasons']} Jaccard {sj:.2f} across bootstrap reference sets",
                metric="stability_mean_jaccard",
                value=sj,
                threshold=STABILITY_MIN,
            )
        )
    bj = q["baseline_sensitivity"]["mean_jaccard"]
    if bj is not None and bj < BASELINE_JACCARD_MIN:
        out.append(
            finding(
                sec,
                "low",
                "Reasons depend strongly on the reference set",
                f"Mean top-{q['max_reasons']} Jaccard {bj:.2f} between reference '{q['reference']}' and "
                f"'{q['baseline_sensitivity']['compared_with']}' (comment 9(b)(2)-5 methods 1 and 2)",
                metric="baseline_mean_jaccard",
                value=bj,
                threshold=BASELINE_JACCARD_MIN,
            )
        )
    for attr, d in q["disparity"].items():
        for fl in d["flags"]:
            out.append(
                finding(
                    sec,
                    "medium",
                    f"Primary reason {fl['code']} concentrates in {attr}={fl['group']}",
                    f"{fl['share']:.0%} of declined {attr}={fl['group']} applicants get {fl['code']} as "
                    f"their first reason vs {fl['reference_share']:.0%} of the reference group "
                    f"{d['reference']}; check that the factor is not a proxy for {attr}",
                    metric="primary_reason_share",
                    value=fl["share"],
                    threshold=DISPARITY_MIN_SHARE,
                )
            )
    return out


__all__ = ["disparity", "fidelity", "jaccard", "reason_quality"]
