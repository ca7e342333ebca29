"""Reason engine: exact linear reasons, interventional TreeSHAP vs shap, sign convention, knockouts,
exclusions, ties, reference sets and bad applicants.

Independent anchors: the logistic-regression pipeline's own coefficients and transform (β·(T(x) −
mean_ref T(x)) summed per catalogue group, computed here), ``shap.TreeExplainer(model, data=R,
feature_perturbation="interventional")``, LightGBM's raw margins and numpy selections of the
reference set.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import yaml

from service.config import load_spec, parse_spec
from service.errors import InputError
from service.inputs.models import load_model
from service.inputs.prepare import prepare
from service.reasons.build import catalogue_for, engine_from_context
from service.reasons.catalogue import parse_catalogue
from service.reasons.engine import ReasonEngine, reference_set
from service.reasons.service import build_engine, explain, records_to_csv
from tests.conftest import FIXTURES

HERE = Path(__file__).parent
TOL = 1e-9
TOL_TREE = 1e-6


def _shap():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import shap
    return shap


def _shap_interventional(booster, R: np.ndarray, X: np.ndarray) -> np.ndarray:
    """shap's interventional TreeSHAP against ALL of R (a bare array would be subsampled to 100 rows)."""
    shap = _shap()
    masker = shap.maskers.Independent(R, max_samples=len(R))
    expl = shap.TreeExplainer(booster, data=masker, feature_perturbation="interventional", model_output="raw")
    return np.asarray(expl.shap_values(X))


@pytest.fixture(scope="module")
def german_ctx():
    return prepare(load_spec(FIXTURES / "german_credit" / "audit.yaml")).context


@pytest.fixture(scope="module")
def german_engine(german_ctx):
    return engine_from_context(german_ctx, blocked_features=[])


@pytest.fixture(scope="module")
def taiwan_ctx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("taiwan_reasons")
    d = yaml.safe_load((FIXTURES / "taiwan" / "audit.yaml").read_text())
    pd.read_csv(FIXTURES / "taiwan" / "taiwan_credit.csv").iloc[:6000].to_csv(tmp / "data.csv", index=False)
    d.update(
        dataset="data.csv",
        model=str(FIXTURES / "taiwan" / "model.txt"),
        reason_codes=str(HERE / "taiwan_reasons.yaml"),
    )
    (tmp / "spec.yaml").write_text(yaml.safe_dump(d))
    return prepare(load_spec(tmp / "spec.yaml")).context


def _marginal_mask(score: np.ndarray, thr: float) -> np.ndarray:
    fav = score < thr
    dist = thr - score
    return fav & (dist <= np.quantile(dist[fav], 0.10))


def test_marginal_reference_is_first_decile_of_favorable_distance(german_ctx, german_engine):
    mask = _marginal_mask(german_ctx.dev.score, 0.5)
    ref = german_engine.reference
    assert ref.method == "marginal" and ref.size == int(mask.sum()) > 0
    pd.testing.assert_frame_equal(
        ref.rows, german_ctx.dev.frame.loc[mask, german_ctx.features].reset_index(drop=True)
    )
    assert ref.version.startswith("marginal-")
    # the version is a content hash: same rows same version, another method another version
    again = reference_set(
        german_ctx.dev.frame,
        german_ctx.dev.score,
        features=german_ctx.features,
        threshold=0.5,
        direction="higher_is_riskier",
    )
    assert again.version == ref.version
    allref = reference_set(
        german_ctx.dev.frame,
        german_ctx.dev.score,
        features=german_ctx.features,
        threshold=0.5,
        direction="higher_is_riskier",
        method="all",
    )
    assert allref.size == german_ctx.dev.n and allref.version != ref.version


@pytest.mark.parametrize("method", ["marginal", "all"])
def test_linear_reasons_equal_exact_group_contributions(german_ctx, method):
    """Reasons = β_k·(T_k(x) − mean_ref T_k) summed per catalogue group, positive ones ranked, ≤ 4."""
    eng = engine_from_context(german_ctx, method=method, blocked_features=[])
    est = german_ctx.model.estimator
    pre, lr = est[:-1], est[-1]
    frame = german_ctx.dev.frame
    mask = _marginal_mask(german_ctx.dev.score, 0.5) if method == "marginal" else np.ones(len(frame), bool)
    T = pre.transform(frame[german_ctx.features])
    T = T.toarray() if hasattr(T, "toarray") else np.asarray(T)
    contrib = (T - T[mask].mean(axis=0)) * lr.coef_[0]
    names = list(pre.get_feature_names_out())
    cat = yaml.safe_load((FIXTURES / "german_credit" / "reasons.yaml").read_text())
    G = np.column_stack(
        [
            contrib[
                :,
                [
                    k
                    for k, nm in enumerate(names)
                    if any(nm == f"num__{f}" or nm.startswith(f"cat__{f}_") for f in g["features"])
                ],
            ].sum(axis=1)
            for g in cat["groups"]
        ]
    )
    codes = [g["code"] for g in cat["groups"]]
    res = eng.explain(frame)
    declined = german_ctx.dev.score >= 0.5
    assert [r["decision"] == "adverse" for r in res.records] == declined.tolist()
    for i, r in enumerate(res.records):
        if not declined[i]:
            assert r["reasons"] == []
            continue
        order = [k for k in np.argsort(-G[i], kind="stable") if G[i, k] > 0][:4]
        assert [x["code"] for x in r["reasons"]] == [codes[k] for k in order]
        np.testing.assert_allclose([x["contribution"] for x in r["reasons"]], G[i, order], atol=TOL)
        assert r["reference_version"] == eng.reference.version
        assert r["model_sha256"] == german_ctx.model.sha256
        assert all(x["code"] != "AGE" for x in r["reasons"])


def test_tree_interventional_matches_shap_and_sums_to_margin_gap(taiwan_ctx):
    eng = engine_from_context(taiwan_ctx, blocked_features=[])
    R = eng.reference.rows.to_numpy(dtype="float64")
    X = taiwan_ctx.dev.frame[taiwan_ctx.features].iloc[:25]
    ours = eng.attributor.attribute(X)
    ref = _shap_interventional(taiwan_ctx.model.booster, R, X.to_numpy(dtype="float64"))
    np.testing.assert_allclose(ours, ref, atol=TOL_TREE)
    raw = taiwan_ctx.model.booster.predict(X.to_numpy(dtype="float64"), raw_score=True)
    mean_ref = taiwan_ctx.model.booster.predict(R, raw_score=True).mean()
    np.testing.assert_allclose(ours.sum(axis=1), raw - mean_ref, atol=1e-9)
    assert eng.attributor.expected_value == pytest.approx(mean_ref, abs=1e-9)


def test_tree_pred_contrib_path_dependent_matches_shap(taiwan_ctx):
    from service.reasons.explainers import path_dependent_tree

    X = taiwan_ctx.dev.frame.iloc[:200]
    phi, base = path_dependent_tree(taiwan_ctx.model, X)
    sv = np.asarray(
        _shap()
        .TreeExplainer(taiwan_ctx.model.booster)
        .shap_values(X[taiwan_ctx.features].to_numpy(dtype="float64"))
    )
    np.testing.assert_allclose(phi, sv, atol=TOL_TREE)


def test_taiwan_reasons_exclude_protected_and_follow_groups(taiwan_ctx):
    eng = engine_from_context(taiwan_ctx, blocked_features=[])
    frame = taiwan_ctx.dev.frame.iloc[:800]
    res = eng.explain(frame)
    phi = eng.attributor.attribute(frame)
    cat = yaml.safe_load((HERE / "taiwan_reasons.yaml").read_text())
    feats = taiwan_ctx.features
    for i, r in enumerate(res.records):
        if r["decision"] != "adverse":
            assert r["reasons"] == []
            continue
        sums = {g["code"]: phi[i, [feats.index(f) for f in g["features"]]].sum() for g in cat["groups"]}
        want = sorted((c for c in sums if sums[c] > 0), key=lambda c: -sums[c])[:4]
        assert [x["code"] for x in r["reasons"]] == want
        assert r["reasons"], "a declined applicant against the marginal reference always has a positive group"


def test_sign_convention_with_a_probability_of_good_model(tmp_path):
    """A model of P(good) with ``higher_is_safer``: reasons must still point at what makes applicants bad."""
    rng = np.random.default_rng(11)
    n = 3000
    df = pd.DataFrame(
        {
            "late_payments": rng.poisson(1.0, n).astype(float),
            "income": rng.normal(50, 15, n),
            "noise": rng.normal(size=n),
        }
    )
    logit_bad = -1.5 + 1.2 * df.late_payments - 0.04 * (df.income - 50)
    df["bad"] = (rng.random(n) < 1 / (1 + np.exp(-logit_bad))).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 7, "seed": 1},
        lgb.Dataset(df[["late_payments", "income", "noise"]], 1 - df["bad"]),
        60,
    )
    booster.save_model(str(tmp_path / "good.txt"))
    df.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "cat.yaml").write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "code": "DELINQ",
                        "statement": "Delinquent past or present credit obligations",
                        "features": ["late_payments"],
                    },
                    {
                        "code": "INCOME",
                        "statement": "Income insufficient for amount of credit requested",
                        "features": ["income"],
                    },
                    {"code": "OTHER", "statement": "Other factor", "features": ["noise"]},
                ]
            }
        )
    )
    spec = parse_spec(
        {
            "model_name": "pgood",
            "dataset": "d.csv",
            "model": "good.txt",
            "target": "bad",
            "score": {"direction": "higher_is_safer", "threshold": 0.7},
            "reason_codes": "cat.yaml",
        },
        base_dir=tmp_path,
    )
    ctx = prepare(spec).context
    eng = engine_from_context(ctx, blocked_features=[])
    res = eng.explain(ctx.dev.frame)
    p_good = booster.predict(df[["late_payments", "income", "noise"]])
    assert [r["decision"] == "adverse" for r in res.records] == (p_good < 0.7).tolist()
    # contributions are toward decline = minus the attributions of the P(good) margin
    R = eng.reference.rows.to_numpy(dtype="float64")
    Xd = df.loc[p_good < 0.7, ["late_payments", "income", "noise"]].iloc[:30].to_numpy(dtype="float64")
    sv = _shap_interventional(booster, R, Xd)
    ours = eng.group_contributions(pd.DataFrame(Xd, columns=["late_payments", "income", "noise"]))
    np.testing.assert_allclose(ours, -sv, atol=TOL_TREE)
    # the heaviest-delinquency declined applicants are declined primarily for delinquency
    worst = df.index[(p_good < 0.7) & (df.late_payments >= 4)]
    assert len(worst) > 5
    assert all(res.records[i]["reasons"][0]["code"] == "DELINQ" for i in worst)
    assert all(x["contribution"] > 0 for r in res.records for x in r["reasons"])


def test_knockouts_come_first_and_decline_regardless_of_score(german_ctx):
    cat_raw = yaml.safe_load((FIXTURES / "german_credit" / "reasons.yaml").read_text())
    cat_raw["knockouts"] = [
        {
            "code": "AMOUNT_CAP",
            "statement": "Amount of credit requested exceeds our maximum",
            "when": "credit_amount > 12000",
        }
    ]
    cat = parse_catalogue(cat_raw, features=german_ctx.features)
    eng = engine_from_context(german_ctx, blocked_features=[], catalogue=cat)
    res = eng.explain(german_ctx.dev.frame)
    big = german_ctx.dev.frame["credit_amount"].to_numpy() > 12000
    by_score = german_ctx.dev.score >= 0.5
    assert big.any() and (big & ~by_score).any()
    for i, r in enumerate(res.records):
        assert (r["decision"] == "adverse") == bool(big[i] or by_score[i])
        if big[i]:
            assert r["reasons"][0] == {
                "code": "AMOUNT_CAP",
                "statement": cat_raw["knockouts"][0]["statement"],
                "contribution": None,
            }
            assert len(r["reasons"]) <= 4
            if not by_score[i]:
                assert len(r["reasons"]) == 1


def test_blocked_features_and_max_reasons(german_ctx, german_engine):
    eng = engine_from_context(german_ctx, blocked_features=["duration_months"])
    spec2 = german_ctx.spec.model_copy(
        update={"reasons": german_ctx.spec.reasons.model_copy(update={"max_reasons": 2})}
    )
    eng2 = ReasonEngine(
        german_ctx.model, eng.catalogue, eng.reference, threshold=0.5, max_reasons=2, blocked_features=[]
    )
    assert spec2.reasons.max_reasons == 2
    frame = german_ctx.dev.frame
    a = eng.explain(frame).records
    b = german_engine.explain(frame).records
    c = eng2.explain(frame).records
    G_a = eng.explain(frame).group_contrib
    G_b = german_engine.explain(frame).group_contrib
    term = eng.codes.index("TERM")
    assert np.all(G_a[:, term] == 0)
    np.testing.assert_allclose(np.delete(G_a, term, axis=1), np.delete(G_b, term, axis=1), atol=1e-12)
    assert all(x["code"] != "TERM" for r in a for x in r["reasons"])
    assert any(x["code"] == "TERM" for r in b for x in r["reasons"])
    assert all(len(r["reasons"]) <= 2 for r in c)
    assert [r["reasons"][:2] for r in b] == [r["reasons"] for r in c]


def test_ties_break_by_catalogue_order(german_engine):
    assert german_engine.rank(np.array([0.5, 1.0, 1.0, -1.0, 0.0, 1.0 + 1e-15])) == [1, 2, 5, 0]


def test_records_csv_matches_json(german_ctx, german_engine):
    import csv
    import io

    recs = german_engine.explain(german_ctx.dev.frame.iloc[:40]).records
    rows = list(csv.DictReader(io.StringIO(records_to_csv(recs, 4))))
    assert len(rows) == 40
    for r, c in zip(recs, rows, strict=True):
        assert int(c["row"]) == r["row"] and c["decision"] == r["decision"]
        assert float(c["score"]) == r["score"]
        for k, x in enumerate(r["reasons"], start=1):
            assert c[f"reason_{k}_code"] == x["code"] and c[f"reason_{k}_statement"] == x["statement"]
            assert float(c[f"reason_{k}_contribution"]) == x["contribution"]
        assert c["reference_version"] == r["reference_version"]


# --------------------------------------------------------------------------- bad inputs


@pytest.fixture(scope="module")
def german_service_engine():
    spec = load_spec(FIXTURES / "german_credit" / "audit.yaml")
    return spec, build_engine(spec, proxy_screen=False, use_cache=False)


def test_applicants_missing_columns(german_service_engine):
    spec, eng = german_service_engine
    frame = pd.read_csv(FIXTURES / "german_credit" / "german_credit.csv").drop(columns=["savings", "purpose"])
    with pytest.raises(
        InputError, match=r"lacks 2 column\(s\).*purpose, savings|lacks 2 column\(s\).*savings"
    ) as e:
        explain(eng, spec, frame, source="applicants.csv")
    assert e.value.file == "applicants.csv" and e.value.field in ("savings", "purpose")


def test_applicants_extra_columns(german_service_engine):
    spec, eng = german_service_engine
    frame = pd.read_csv(FIXTURES / "german_credit" / "german_credit.csv").assign(shoe_size=42)
    with pytest.raises(InputError, match="shoe_size") as e:
        explain(eng, spec, frame, source="applicants.csv")
    assert e.value.field == "shoe_size"


def test_applicants_empty(german_service_engine):
    spec, eng = german_service_engine
    frame = pd.read_csv(FIXTURES / "german_credit" / "german_credit.csv").iloc[:0]
    with pytest.raises(InputError, match="no rows"):
        explain(eng, spec, frame, source="applicants.csv")


def test_catalogue_leaving_a_feature_unmapped_names_it(german_ctx):
    cat_raw = yaml.safe_load((FIXTURES / "german_credit" / "reasons.yaml").read_text())
    cat_raw["groups"] = [g for g in cat_raw["groups"] if g["code"] != "SAVINGS"]
    with pytest.raises(InputError, match="model feature 'savings' is not mapped") as e:
        parse_catalogue(cat_raw, features=german_ctx.features, source="reasons.yaml")
    assert e.value.field == "groups" and e.value.file == "reasons.yaml"


def test_catalogue_with_protected_feature_in_a_group(german_ctx):
    cat_raw = yaml.safe_load((FIXTURES / "german_credit" / "reasons.yaml").read_text())
    cat_raw["excluded"] = []
    cat_raw["groups"][-1]["features"].append("age_years")
    with pytest.raises(InputError, match="age_years.*protected"):
        parse_catalogue(cat_raw, features=german_ctx.features, protected_columns=["age_years", "sex"])


def test_catalogue_unknown_feature_and_forbidden_statement(german_ctx):
    cat_raw = yaml.safe_load((FIXTURES / "german_credit" / "reasons.yaml").read_text())
    cat_raw["groups"][0]["features"].append("zodiac_sign")
    with pytest.raises(InputError, match="'zodiac_sign' is not a model feature"):
        parse_catalogue(cat_raw, features=german_ctx.features)
    cat_raw = yaml.safe_load((FIXTURES / "german_credit" / "reasons.yaml").read_text())
    cat_raw["groups"][0]["statement"] = "Insufficient score"
    with pytest.raises(InputError, match="not a specific reason"):
        parse_catalogue(cat_raw, features=german_ctx.features)


def test_spec_without_catalogue(german_ctx):
    spec = german_ctx.spec.model_copy(update={"reason_codes": None})
    with pytest.raises(InputError, match="no reason catalogue") as e:
        catalogue_for(spec, german_ctx.features)
    assert e.value.field == "reason_codes"


def test_score_column_spec_cannot_give_reasons(german_ctx):
    from service.inputs.models import ScoreColumn

    cat = catalogue_for(german_ctx.spec, german_ctx.features)
    with pytest.raises(InputError, match="score column cannot be explained"):
        ReasonEngine(ScoreColumn("p", german_ctx.features), cat, None, threshold=0.5)  # type: ignore[arg-type]


def test_model_loaded_twice_gives_the_same_reasons(german_ctx, german_engine):
    m2 = load_model(FIXTURES / "german_credit" / "model.skops")
    eng = ReasonEngine(m2, german_engine.catalogue, german_engine.reference, threshold=0.5)
    a = german_engine.explain(german_ctx.dev.frame.iloc[:100]).records
    b = eng.explain(german_ctx.dev.frame.iloc[:100]).records
    assert a == b


def test_partition_grouping_gives_exact_group_shapley_values(taiwan_ctx):
    """``reasons.grouping: partition``: each catalogue group is one player. Checked against brute-force
    enumeration of the 2^6 coalitions of (5 groups + the excluded AGE) with the model's own predictions."""
    from itertools import combinations
    from math import factorial

    base = engine_from_context(taiwan_ctx, blocked_features=[])
    ref = dataclasses.replace(base.reference, rows=base.reference.rows.iloc[:20].reset_index(drop=True))
    eng = ReasonEngine(taiwan_ctx.model, base.catalogue, ref, threshold=0.35, grouping="partition")
    summed = ReasonEngine(taiwan_ctx.model, base.catalogue, ref, threshold=0.35, grouping="sum")
    feats = taiwan_ctx.features
    players = [list(g.features) for g in base.catalogue.groups] + [["AGE"]]
    X = taiwan_ctx.dev.frame[feats].iloc[[3, 10, 57]].reset_index(drop=True)
    got = eng.group_contributions(X)
    R = ref.rows
    n_pl = len(players)
    for i in range(len(X)):
        v = {}
        for size in range(n_pl + 1):
            for S in combinations(range(n_pl), size):
                hyb = R.copy()
                for q in S:
                    for f in players[q]:
                        hyb[f] = X.loc[i, f]
                v[S] = float(np.mean(taiwan_ctx.model.predict_margin(hyb)))
        phi = np.zeros(n_pl)
        for q in range(n_pl):
            for S, val in v.items():
                if q not in S:
                    w = factorial(len(S)) * factorial(n_pl - len(S) - 1) / factorial(n_pl)
                    phi[q] += w * (v[tuple(sorted((*S, q)))] - val)
        np.testing.assert_allclose(got[i], phi[:5], atol=1e-9)
        assert phi.sum() == pytest.approx(v[tuple(range(n_pl))] - v[()], abs=1e-9)
    assert not np.allclose(got, summed.group_contributions(X), atol=1e-6)  # interactions are real here
    assert "groups as players" in eng.method


def test_partition_equals_sum_for_a_linear_model(german_ctx, german_engine):
    part = ReasonEngine(
        german_ctx.model,
        german_engine.catalogue,
        german_engine.reference,
        threshold=0.5,
        grouping="partition",
    )
    X = german_ctx.dev.frame.iloc[:200]
    np.testing.assert_allclose(part.group_contributions(X), german_engine.group_contributions(X), atol=1e-12)


def test_reasons_do_not_depend_on_row_order(german_ctx, german_engine):
    frame = german_ctx.dev.frame.iloc[:300]
    perm = np.random.default_rng(4).permutation(len(frame))
    a = german_engine.explain(frame).records
    b = german_engine.explain(frame.iloc[perm]).records
    for pos, i in enumerate(perm):
        assert b[pos]["reasons"] == a[i]["reasons"] and b[pos]["decision"] == a[i]["decision"]
        assert b[pos]["row"] == pos
