"""Reason-engine throughput and latency vs shap's interventional TreeExplainer (same model, same data).

Model: LightGBM, 200 trees x 31 leaves, 50 numeric features (synthetic credit-like data, 5% missing).
Reference (background): 100 rows, then 1,000 rows. Our attributions are checked against shap's on the
rows shap explains (max |difference| printed). Run: ``.venv/bin/python bench/reasons_latency.py``.

Then one German-credit applicant (the fixture's logistic-regression pipeline) through the compiled
linear path, from JSON objects (``POST /v1/reasons``) and from a DataFrame (``assay reasons``), vs
the general path that calls the sklearn pipeline, and vs the anchor: one ``predict_proba`` call of
the same pipeline on the same row (``--linear-only`` runs only this part).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from service.reasons._treeshap import InterventionalTreeShap, from_lightgbm
from service.reasons.catalogue import parse_catalogue
from service.reasons.engine import ReasonEngine, ReferenceSet

P = 50
N_TRAIN = 20_000
N_BATCH = 20_000
N_SHAP = 300
N_SINGLE = 1_000


class _Model:
    """The LightGBMModel interface (features, predict_score/margin, sha256) over an in-memory booster."""

    kind = "lightgbm"

    def __init__(self, booster: lgb.Booster, features: list[str]) -> None:
        self.booster = booster
        self.features = features
        self.sha256 = "bench"

    def predict_score(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(frame[self.features].to_numpy(dtype="float64")))

    def predict_margin(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(
            self.booster.predict(frame[self.features].to_numpy(dtype="float64"), raw_score=True)
        )


def _p50_p99(fn: Callable[[], object], n: int) -> tuple[float, float]:
    fn()
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t0)
    ms = np.array(lat) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def german_single(n: int = 2000) -> None:
    """One declined German-credit applicant: compiled path (records, frame), general path, anchor."""
    import gc
    import os

    from service.config import load_spec
    from service.reasons.service import build_engine, explain, explain_records

    repo = Path(__file__).resolve().parents[1]
    spec = load_spec(repo / "fixtures" / "german_credit" / "audit.yaml")
    eng = build_engine(spec, proxy_screen=False, use_cache=False)
    slow = build_engine(spec, proxy_screen=False, use_cache=False)
    slow.compiled = None  # what the engine did before: sklearn calls for the score and the attribution
    df = pd.read_csv(repo / "fixtures" / "german_credit" / "german_credit.csv")
    score, declined = eng.decide(df)
    row = df[declined].iloc[[0]].reset_index(drop=True)
    rec = [{k: v.item() if isinstance(v, np.generic) else v for k, v in row.iloc[0].items()}]
    assert explain_records(eng, spec, rec, source="b") == explain(slow, spec, row, source="b")
    X = row[eng.features]
    est = eng.model.estimator
    cases = [
        ("compiled, JSON objects (POST /v1/reasons)", lambda: explain_records(eng, spec, rec, source="b")),
        ("compiled, DataFrame (assay reasons)", lambda: explain(eng, spec, row, source="b")),
        ("general path (sklearn pipeline calls)", lambda: explain(slow, spec, row, source="b")),
        ("anchor: one pipeline predict_proba", lambda: est.predict_proba(X)),
    ]
    gc.collect()
    gc.freeze()  # as the server does after a build: no full collection of the import-heavy heap
    print(f"one declined German-credit applicant, {n} calls each (load average {os.getloadavg()[0]:.2f}):")
    got = [(name, *_p50_p99(fn, n)) for name, fn in cases]
    anchor = got[-1][1]
    for name, p50, p99 in got:
        print(f"  {name:44s} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  ({p50 / anchor:5.2f}x the anchor's p50)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--linear-only", action="store_true", help="only the German-credit part")
    if ap.parse_args().linear_only:
        german_single()
        return
    rng = np.random.default_rng(20261203)
    X = rng.normal(size=(N_TRAIN + N_BATCH, P))
    logit = X[:, :10] @ rng.normal(size=10) + 0.5 * X[:, 10] * X[:, 11] - 1.5
    y = (rng.random(X.shape[0]) < 1 / (1 + np.exp(-logit))).astype(int)
    X[rng.random(X.shape) < 0.05] = np.nan
    feats = [f"x{j:02d}" for j in range(P)]
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 31, "verbose": -1, "seed": 1, "num_threads": 2},
        lgb.Dataset(X[:N_TRAIN], y[:N_TRAIN]),
        200,
    )
    Q = X[N_TRAIN:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import shap

    print(f"LightGBM {booster.num_trees()} trees x 31 leaves, {P} features; 2 cores")
    for m in (100, 1000):
        R = X[rng.choice(N_TRAIN, m, replace=False)]
        t0 = time.perf_counter()
        ours = InterventionalTreeShap(from_lightgbm(booster), R)
        ours.shap_values(Q[:10])  # JIT warm-up (cached on disk after the first run)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        phi = ours.shap_values(Q)
        t_ours = time.perf_counter() - t0
        n_shap = N_SHAP if m == 100 else N_SHAP // 10
        masker = shap.maskers.Independent(R, max_samples=m)
        expl = shap.TreeExplainer(
            booster, data=masker, feature_perturbation="interventional", model_output="raw"
        )
        t0 = time.perf_counter()
        sv = np.asarray(expl.shap_values(Q[:n_shap]))
        t_shap = time.perf_counter() - t0
        diff = float(np.abs(phi[:n_shap] - sv).max())
        r_ours, r_shap = N_BATCH / t_ours, n_shap / t_shap
        print(
            f"reference {m:5d} rows: ours {r_ours:10,.0f} rows/s (build {t_build:.2f} s) | "
            f"shap {r_shap:8,.0f} rows/s | ratio {r_ours / r_shap:6.1f}x | max |diff| {diff:.1e}"
        )

    # one applicant through the whole engine (decision, attribution, grouping, ranking)
    groups = [
        {"code": f"G{k}", "statement": f"Factor group {k}", "features": feats[5 * k : 5 * k + 5]}
        for k in range(P // 5)
    ]
    cat = parse_catalogue({"groups": groups}, features=feats)
    Rf = pd.DataFrame(X[rng.choice(N_TRAIN, 100, replace=False)], columns=feats)
    ref = ReferenceSet("marginal", Rf, None, "bench", "100 rows")
    model = _Model(booster, feats)
    p = model.predict_score(pd.DataFrame(Q, columns=feats))
    thr = float(np.quantile(p, 0.8))
    eng = ReasonEngine(model, cat, ref, threshold=thr)
    Qf = pd.DataFrame(Q, columns=feats)
    declined = Qf[p >= thr].reset_index(drop=True)
    eng.explain(declined.iloc[:5])
    lat = []
    for i in range(N_SINGLE):
        row = declined.iloc[[i % len(declined)]]
        t0 = time.perf_counter()
        eng.explain(row)
        lat.append(time.perf_counter() - t0)
    lat_ms = np.array(lat) * 1e3
    row1 = Q[:1]
    lat_shap = []
    for _ in range(30):
        t0 = time.perf_counter()
        expl100 = shap.TreeExplainer(
            booster,
            data=shap.maskers.Independent(Rf.to_numpy(), max_samples=100),
            feature_perturbation="interventional",
            model_output="raw",
        )
        expl100.shap_values(row1)
        lat_shap.append(time.perf_counter() - t0)
    lat_shap_call = []
    for _ in range(30):
        t0 = time.perf_counter()
        expl100.shap_values(row1)
        lat_shap_call.append(time.perf_counter() - t0)
    print(
        f"one declined applicant, full engine: p50 {np.percentile(lat_ms, 50):.2f} ms, "
        f"p99 {np.percentile(lat_ms, 99):.2f} ms | shap shap_values(1 row): p50 "
        f"{np.percentile(np.array(lat_shap_call) * 1e3, 50):.2f} ms (explainer build + call "
        f"{np.percentile(np.array(lat_shap) * 1e3, 50):.0f} ms)"
    )
    t0 = time.perf_counter()
    res = eng.explain(declined)
    t_batch = time.perf_counter() - t0
    print(
        f"batch through the full engine: {len(declined):,} declined applicants in {t_batch:.2f} s "
        f"({len(declined) / t_batch:,.0f} applicants/s; {len(res.records)} records)"
    )
    german_single()


if __name__ == "__main__":
    main()
