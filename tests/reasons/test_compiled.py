"""The compiled linear pipeline (the reasons fast path) against scikit-learn's own pipeline.

Independent anchors: the fitted pipeline's ``ColumnTransformer.transform``, ``decision_function`` and
``predict_proba``, called here; for the fallbacks, the engine's general path (which calls the same
sklearn methods) and β·(T(x) − mean_ref T) computed here from sklearn's transform.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, StandardScaler

from service.config import load_spec
from service.errors import InputError
from service.inputs.models import SklearnModel, load_model
from service.reasons._compiled import compile_linear
from service.reasons.catalogue import parse_catalogue
from service.reasons.engine import ReasonEngine, ReferenceSet
from service.reasons.service import build_engine, explain, explain_records
from tests.conftest import FIXTURES

GERMAN = FIXTURES / "german_credit"
# margins and probabilities: the same float64 products, summed by BLAS in possibly another order
TOL = 1e-12
UNSEEN = "A_UNSEEN"


def _records(X: pd.DataFrame) -> list[dict]:
    """JSON-like objects with Python scalars (``to_json`` would round the floats)."""
    return [
        {k: v.item() if isinstance(v, np.generic) else v for k, v in r.items()} for r in X.to_dict("records")
    ]


def _transform(est, X: pd.DataFrame) -> np.ndarray:
    T = est[:-1].transform(X)
    return np.asarray(T.toarray() if hasattr(T, "toarray") else T, dtype="float64")


@pytest.fixture(scope="module")
def german():
    model = load_model(GERMAN / "model.skops")
    df = pd.read_csv(GERMAN / "german_credit.csv")
    return model, df


def _random_german(df: pd.DataFrame, feats: list[str], n: int, seed: int) -> pd.DataFrame:
    """Rows of random values: categories from the data plus unseen ones, numbers off the data's range."""
    rng = np.random.default_rng(seed)
    out = {}
    for f in feats:
        col = df[f]
        if col.dtype == object:
            cats = np.array(sorted(col.unique()) + [UNSEEN], dtype=object)
            out[f] = cats[rng.integers(0, len(cats), n)]
        else:
            out[f] = rng.choice(col.to_numpy(), n) * rng.uniform(-1.0, 3.0, n)
    return pd.DataFrame(out)


def test_german_fast_path_equals_the_sklearn_pipeline(german):
    model, df = german
    est, feats = model.estimator, model.features
    comp = compile_linear(model)
    assert comp is not None
    rand = _random_german(df, feats, 2000, seed=3)
    assert (rand == UNSEEN).any(axis=1).mean() > 0.3  # unseen categories (handle_unknown='ignore')
    for X in (df[feats], rand):
        T = comp.transform(X)
        assert T is not None
        np.testing.assert_array_equal(T, _transform(est, X))  # elementwise float64: bit-identical
        np.testing.assert_allclose(comp.margin(T), est.decision_function(X), rtol=TOL, atol=TOL)
        np.testing.assert_allclose(comp.score(T), est.predict_proba(X)[:, 1], rtol=TOL, atol=TOL)
        np.testing.assert_allclose(comp.score(T), model.predict_score(X), rtol=TOL, atol=TOL)
        records = _records(X)
        np.testing.assert_array_equal(comp.transform_records(records), T)
    one = rand.iloc[[7]]
    np.testing.assert_allclose(
        comp.score(comp.transform(one)), est.predict_proba(one)[:, 1], rtol=TOL, atol=TOL
    )


def test_engine_fast_path_gives_the_general_paths_records(german):
    """Same decisions, reasons and contributions as the sklearn path the engine used before."""
    spec = load_spec(GERMAN / "audit.yaml")
    eng = build_engine(spec, proxy_screen=False, use_cache=False)
    assert eng.compiled is not None
    model, df = german
    rows = pd.concat([df, _random_german(df, eng.features, 500, seed=4)], ignore_index=True)
    fast = eng.explain(rows)
    general = build_engine(spec, proxy_screen=False, use_cache=False)
    general.compiled = None
    slow = general.explain(rows)
    assert (fast.adverse == slow.adverse).all() and fast.adverse.any() and not fast.adverse.all()
    np.testing.assert_array_equal(fast.group_contrib, slow.group_contrib)
    for a, b in zip(fast.records, slow.records, strict=True):
        assert a["reasons"] == b["reasons"]
        assert a["score"] == pytest.approx(b["score"], rel=TOL, abs=TOL)
    score, _ = eng.decide(rows)
    np.testing.assert_allclose(score, model.estimator.predict_proba(rows[eng.features])[:, 1], rtol=TOL)


def _mixed_pipeline(handle_unknown: str = "ignore", event_value: int = 1):
    """Imputers, drop='first', number categories, passthrough and a dropped remainder column."""
    rng = np.random.default_rng(8)
    n = 1500
    df = pd.DataFrame(
        {
            "income": rng.normal(50, 15, n),
            "debt": rng.gamma(2.0, 3.0, n),
            "grade": rng.choice(np.array(["A", "B", "C", "D"], dtype=object), n),
            "region": rng.integers(1, 5, n),  # numbers one-hot encoded
            "late": rng.poisson(1.0, n).astype(float),
            "unused": rng.normal(size=n),
        }
    )
    df.loc[rng.random(n) < 0.1, "income"] = np.nan
    df.loc[rng.random(n) < 0.1, "debt"] = np.nan
    logit = -1 + 0.03 * (50 - df.income.fillna(50)) + 0.1 * df.debt.fillna(6) + (df.grade == "D") + df.late
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    pre = ColumnTransformer(
        [
            (
                "num",
                Pipeline([("imp", SimpleImputer(strategy="median")), ("sc", StandardScaler())]),
                ["income", "debt"],
            ),
            (
                "cat",
                Pipeline(
                    [
                        ("imp", SimpleImputer(strategy="most_frequent")),
                        ("oh", OneHotEncoder(drop="first", handle_unknown=handle_unknown)),
                    ]
                ),
                ["grade"],
            ),
            ("reg", OneHotEncoder(handle_unknown=handle_unknown), ["region"]),
            ("pass", "passthrough", ["late"]),
        ],
        remainder="drop",
    )
    feats = ["income", "debt", "grade", "region", "late", "unused"]
    est = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))]).fit(df[feats], y)
    event_index = list(est.classes_).index(event_value)
    return SklearnModel(est, feats, "sha", "mem", event_index=event_index), df


@pytest.mark.parametrize("event_value", [1, 0])
def test_imputers_drop_and_number_categories_equal_sklearn(event_value):
    model, df = _mixed_pipeline(event_value=event_value)
    est = model.estimator
    comp = compile_linear(model)
    assert comp is not None
    rng = np.random.default_rng(9)
    X = df[model.features].iloc[:600].copy()
    X.loc[rng.random(600) < 0.2, "grade"] = "Z"  # unseen
    X.loc[rng.random(600) < 0.2, "region"] = 9  # unseen number category
    assert X["income"].isna().any() and X["debt"].isna().any()  # imputed numeric values
    T = comp.transform(X)
    assert T is not None
    np.testing.assert_array_equal(T, _transform(est, X))
    np.testing.assert_allclose(comp.margin(T), est.decision_function(X), rtol=TOL, atol=TOL)
    proba = est.predict_proba(X)[:, model.event_index]
    np.testing.assert_allclose(comp.score(T), proba, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(comp.score(T), model.predict_score(X), rtol=TOL, atol=TOL)


def _engine(model, df: pd.DataFrame, threshold: float = 0.5) -> ReasonEngine:
    feats = model.features
    cat = parse_catalogue(
        {"groups": [{"code": f.upper(), "statement": f"Factor {f}", "features": [f]} for f in feats]},
        features=feats,
    )
    ref = ReferenceSet("all", df[feats].iloc[:400].reset_index(drop=True), None, "v", "400 rows")
    return ReasonEngine(model, cat, ref, threshold=threshold)


def test_inputs_the_compiler_cannot_take_fall_back_to_sklearn():
    """A missing category, text in a number column, bools: the engine answers exactly as sklearn does."""
    model, df = _mixed_pipeline()
    eng = _engine(model, df)
    est = model.estimator
    X = df[model.features].iloc[:50].reset_index(drop=True)
    odd = {
        "missing category": X.assign(grade=X["grade"].where(X.index % 3 > 0, None)),
        "text number": X.assign(late=X["late"].astype(object).where(X.index % 4 > 0, "2")),
        "bool number": X.assign(late=X.index % 2 == 0),
        "float32": X.assign(debt=X["debt"].astype("float32")),
    }
    for name, frame in odd.items():
        assert eng.transformed(frame) is None, name
        score, _ = eng.decide(frame)
        np.testing.assert_array_equal(score, est.predict_proba(frame)[:, 1], err_msg=name)
        T = _transform(est, frame)
        mean_t = _transform(est, eng.reference.rows).mean(axis=0)
        np.testing.assert_allclose(
            eng.group_contributions(frame),
            (T - mean_t) * est[-1].coef_[0] @ _owner(est, model.features),
            atol=1e-12,
            err_msg=name,
        )


def _owner(est, feats: list[str]) -> np.ndarray:
    """(k, p): transformed column k belongs to input feature j, from sklearn's output names."""
    names = list(est[:-1].get_feature_names_out())
    M = np.zeros((len(names), len(feats)))
    for k, nm in enumerate(names):
        raw = nm.split("__", 1)[1]
        j = max(
            (j for j, f in enumerate(feats) if raw == f or raw.startswith(f"{f}_")),
            key=lambda j: len(feats[j]),
        )
        M[k, j] = 1.0
    return M


def test_unknown_category_under_handle_unknown_error_raises_as_sklearn_does():
    model, df = _mixed_pipeline(handle_unknown="error")
    eng = _engine(model, df)
    assert eng.compiled is not None
    X = df[model.features].iloc[:10].reset_index(drop=True)
    assert eng.transformed(X) is not None
    X.loc[3, "grade"] = "Z"
    assert eng.transformed(X) is None
    with pytest.raises(ValueError, match="unknown categor"):
        model.estimator.predict_proba(X)
    with pytest.raises(ValueError, match="unknown categor"):
        eng.explain(X)
    # through the service (CLI and API), the same refusal is bad input naming the category
    spec = SimpleNamespace(
        id_column=None,
        target=None,
        weight_column=None,
        date_column=None,
        score=SimpleNamespace(column=None),
        protected=[],
    )
    with pytest.raises(InputError, match="category it was not fitted on.*Z"):
        explain(eng, spec, X, source="applicants.csv")


@pytest.mark.parametrize(
    "step",
    [
        MinMaxScaler(),
        FunctionTransformer(np.log1p, feature_names_out="one-to-one"),
        OneHotEncoder(min_frequency=50, handle_unknown="infrequent_if_exist"),
    ],
    ids=["minmax", "function", "infrequent"],
)
def test_pipelines_the_compiler_does_not_know_use_the_general_path(step):
    model, df = _mixed_pipeline()
    est = model.estimator
    cols = ["region"] if isinstance(step, OneHotEncoder) else ["late"]
    name = "reg" if isinstance(step, OneHotEncoder) else "pass"
    est.set_params(**{f"pre__{name}": step}).fit(df[model.features], (df["late"] > 1).astype(int))
    assert compile_linear(model) is None
    eng = _engine(model, df)
    assert eng.compiled is None and eng.method == "exact linear"
    X = df[model.features].iloc[:200].reset_index(drop=True)
    T = _transform(est, X)
    mean_t = _transform(est, eng.reference.rows).mean(axis=0)
    want = (T - mean_t) * est[-1].coef_[0] @ _owner(est, model.features)
    np.testing.assert_allclose(eng.group_contributions(X), want, atol=1e-12)
    score, _ = eng.decide(X)
    np.testing.assert_array_equal(score, est.predict_proba(X)[:, 1])
    assert eng.explain_records(_records(X), allowed=set(X.columns)) is None
    assert cols[0] in model.features


def test_records_path_equals_the_frame_path(german):
    """``POST /v1/reasons`` records (no DataFrame) = the CLI's frame path, errors included."""
    spec = load_spec(GERMAN / "audit.yaml")
    eng = build_engine(spec, proxy_screen=False, use_cache=False)
    _, df = german
    apps = _records(pd.concat([df.iloc[:60], _random_german(df, eng.features, 60, seed=5)]))
    allowed = set(eng.known_columns) | set(eng.features)
    assert eng.explain_records(apps, allowed=allowed) is not None  # the fast path is taken
    assert explain_records(eng, spec, apps, source="s") == explain(
        eng, spec, pd.DataFrame.from_records(apps), source="s"
    )
    # a record without a feature, a null, a bool: the frame path decides (here: the same answer or error)
    lacking = [dict(a) for a in apps[:5]]
    del lacking[2]["savings"]
    nulled = [dict(a) for a in apps[:5]]
    nulled[1]["purpose"] = None
    flagged = [dict(a) for a in apps[:5]]
    flagged[4]["duration_months"] = True
    for odd in (lacking, nulled, flagged):
        assert eng.explain_records(odd, allowed=allowed) is None
        assert explain_records(eng, spec, odd, source="s") == explain(
            eng, spec, pd.DataFrame.from_records(odd), source="s"
        )
    extra = [dict(a, nickname="x") for a in apps[:2]]
    with pytest.raises(InputError, match="nickname"):
        explain_records(eng, spec, extra, source="s")
    with pytest.raises(InputError, match="lacks 18 column"):
        explain_records(eng, spec, [], source="s")


@pytest.mark.parametrize("ids", [["a1", "a2", "a3"], [11, 12, 13], [1, 2.5, "x"], [1, None, 3]])
def test_records_path_ids_match_the_frame_path(german, ids):
    base = load_spec(GERMAN / "audit.yaml")
    eng = build_engine(base, proxy_screen=False, use_cache=False)
    eng.id_column = "app_id"  # as if the development data had carried an id column
    spec = base.model_copy(update={"id_column": "app_id"})
    _, df = german
    apps = [dict(a, app_id=i) for a, i in zip(_records(df.iloc[:3]), ids, strict=True)]
    plain = len({type(i) for i in ids}) == 1
    allowed = set(eng.known_columns) | {"app_id"}
    assert (eng.explain_records(apps, allowed=allowed) is not None) == plain
    got = explain_records(eng, spec, apps, source="s")
    want = explain(eng, spec, pd.DataFrame.from_records(apps), source="s")
    assert got == want
    assert [r["id"] for r in got] == [r["id"] for r in want]
    assert [type(r["id"]) for r in got] == [type(r["id"]) for r in want]
