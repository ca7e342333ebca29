"""Section ``reasons`` (reason-engine quality): fidelity, baseline sensitivity and disparity, recomputed here.

Anchors: for the additive (logistic-regression) German model, moving a group to the reference rows'
values changes the margin by exactly minus its attribution, averaged over the reference; pandas
crosstabs of the primary reasons; Jaccard similarities computed from two independently built engines.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from service.audits import explanations
from service.audits.context import NotApplicable
from service.config import load_spec
from service.inputs.prepare import prepare
from service.reasons.build import engine_from_context
from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def german():
    ctx = prepare(load_spec(FIXTURES / "german_credit" / "audit.yaml")).context
    out = explanations.run_reasons(ctx)
    return ctx, out.section.model_dump(mode="json"), out.findings


def test_fidelity_is_exact_for_an_additive_model(german):
    ctx, sec, _ = german
    eng = engine_from_context(ctx, blocked_features=[])
    res = eng.explain(ctx.dev.frame)
    declined = np.nonzero(res.score_adverse)[0]
    G = res.group_contrib[declined]
    top = [
        sorted([g for g in range(G.shape[1]) if G[i, g] > 0], key=lambda g: -G[i, g]) for i in range(len(G))
    ]
    fid = sec["fidelity"]
    assert sec["declined"] == len(declined) == fid["n"]  # German: every declined row is in the sample
    assert fid["reference_rows"] == eng.reference.size <= 100
    for r in range(4):
        want = np.mean([-G[i, t[r]] for i, t in enumerate(top) if len(t) > r])
        assert fid["mean_margin_change_by_rank"][r] == pytest.approx(want, abs=1e-9)
    assert fid["top1_toward_approval_rate"] == 1.0 and fid["top1_largest_move_rate"] == 1.0


def test_disparity_shares_match_a_crosstab(german):
    ctx, sec, findings = german
    eng = engine_from_context(ctx, blocked_features=[])
    res = eng.explain(ctx.dev.frame)
    rows = [i for i, r in enumerate(res.records) if res.score_adverse[i]]
    prim = pd.Series([res.records[i]["reasons"][0]["code"] for i in rows])
    sex = pd.Series(ctx.dev.frame["sex"].to_numpy()[rows])
    tab = pd.crosstab(sex, prim, normalize="index")
    for g in ("male", "female"):
        got = sec["disparity"]["sex"]["groups"][g]["primary_reason_share"]
        want = {c: v for c, v in tab.loc[g].items() if v > 0}
        assert got.keys() == want.keys()
        for c in want:
            assert got[c] == pytest.approx(want[c], abs=1e-12)
        assert sec["primary_reason_share_by_group"][f"sex={g}"] == got
    for fl in sec["disparity"]["sex"]["flags"]:
        s, r = tab.loc[fl["group"], fl["code"]], tab.loc["male"].get(fl["code"], 0.0)
        assert s >= 0.10 and s >= 2 * r
    assert all(f.section == "reasons" for f in findings)


def test_baseline_sensitivity_matches_two_engines(german):
    ctx, sec, _ = german
    a = engine_from_context(ctx, method="marginal", blocked_features=[])
    b = engine_from_context(ctx, method="all", blocked_features=[])
    frame = ctx.dev.frame[a.decide(ctx.dev.frame)[1]]
    ta = [{x["code"] for x in r["reasons"]} for r in a.explain(frame).records]
    tb = [{x["code"] for x in r["reasons"]} for r in b.explain(frame).records]
    jac = np.mean([len(x & y) / len(x | y) if x | y else 1.0 for x, y in zip(ta, tb, strict=True)])
    bs = sec["baseline_sensitivity"]
    assert bs["compared_with"] == "all" and bs["reference_size"] == ctx.dev.n
    assert bs["mean_jaccard"] == pytest.approx(jac, abs=1e-12)
    assert 0.0 <= sec["stability"]["mean_jaccard"] <= 1.0 and sec["stability"]["resamples"] == 5
    assert sec["no_reason_count"] == 0
    assert sum(sec["coverage"].values()) == pytest.approx(1.0)


def test_reasons_section_not_applicable_without_catalogue(german):
    ctx, _, _ = german
    spec2 = ctx.spec.model_copy(update={"reason_codes": None})
    with pytest.raises(NotApplicable, match="reason_codes"):
        explanations.run_reasons(dataclasses.replace(ctx, spec=spec2, results={}))
