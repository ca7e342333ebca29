"""Benchmark: the ``temporal`` section on 1,000,000 rows over 40 quarters (issue 5: < 20 s on 2 cores).

    .venv/bin/python bench/temporal_scale.py            # 1M rows, 40 quarters
    .venv/bin/python bench/temporal_scale.py --quick    # 100k rows (or ASSAY_BENCH_QUICK=1)

Data: synthetic, seeded. Dates uniform over 2010-01-01 .. 2019-12-31 (40 quarters); three numeric
features, a logistic-regression model (scikit-learn, fitted on 50k rows) scoring every row;
one protected attribute with three groups; rows after 2017-12-31 are the out-of-time sample; one
spec regime window (2015-01-01 .. 2016-06-30); a months-on-book column (vintage view); one
stress scenario (x1 × 0.8, x2 + 0.5) rescored through the model. Bootstrap: 1,000 replicates
(the spec default).

Anchor ("naive"): a pandas groupby by quarter with scikit-learn ``roc_auc_score``, scipy
``ks_2samp``, ``pd.cut`` PSI and a groupby AIR per quarter — point estimates only, no CIs.
Ours is timed twice: with the default 1,000 bootstrap replicates and with ``bootstrap: 0`` (point
estimates only, like the anchor). A naive row bootstrap (resample rows, recompute AUC with
scikit-learn) is timed on one quarter for 20 replicates and extrapolated to 1,000 × 40 quarters.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy import stats  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from service.audits import temporal  # noqa: E402
from service.audits.context import AuditContext, ProtectedGroups, Split  # noqa: E402
from service.config import parse_spec  # noqa: E402
from service.inputs.models import SklearnModel  # noqa: E402

FEATURES = ["x1", "x2", "x3"]


def make_data(n: int, seed: int = 20261203) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2010-01-01", "D").astype(np.int64)
    end = np.datetime64("2019-12-31", "D").astype(np.int64)
    days = rng.integers(start, end + 1, n)
    dates = days.astype("datetime64[D]")
    t = (days - start) / (end - start)
    x = rng.normal(size=(n, 3))
    logit = -2.5 + 0.9 * x[:, 0] - 0.6 * x[:, 1] + 0.3 * x[:, 2] + 0.8 * np.sin(6 * t)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    grp = rng.choice(np.array(["g0", "g1", "g2"]), size=n, p=[0.6, 0.3, 0.1])
    mob = np.where(y == 1, rng.integers(1, 48, n), 60)
    return pd.DataFrame(
        {"date": dates, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": y, "grp": grp, "mob": mob}
    )


def make_split(name: str, df: pd.DataFrame, model: SklearnModel) -> Split:
    score = model.predict_score(df)
    codes = pd.Categorical(df["grp"], categories=["g0", "g1", "g2"]).codes.astype(np.int64)
    mem = np.zeros((len(df), 3))
    mem[np.arange(len(df)), codes] = 1.0
    pg = ProtectedGroups("grp", "grp", "g0", ["g0", "g1", "g2"], codes, mem)
    return Split(
        name=name,
        frame=df,
        y=df["y"].to_numpy(),
        score=score,
        risk=score,
        prob=score,
        margin=None,
        adverse=score >= 0.2,
        weight=None,
        protected={"grp": pg},
        dates=df["date"].to_numpy(dtype="datetime64[ns]"),
    )


def make_ctx(df: pd.DataFrame, model: SklearnModel, n_boot: int) -> AuditContext:
    spec = parse_spec(
        {
            "model_name": "bench",
            "dataset": "unused.csv",
            "model": "unused.skops",
            "target": "y",
            "score": {"threshold": 0.2},
            "protected": [{"name": "grp", "column": "grp", "reference": "g0"}],
            "date_column": "date",
            "temporal": {"period": "quarter", "months_on_book_column": "mob"},
            "regimes": [{"name": "window", "start": "2015-01-01", "end": "2016-06-30"}],
            "stress": [{"name": "shock", "shocks": {"x1": {"multiply": 0.8}, "x2": {"add": 0.5}}}],
            "bootstrap": n_boot,
        }
    )
    late = df["date"] > pd.Timestamp("2017-12-31")
    dev = make_split("dev", df.loc[~late].reset_index(drop=True), model)
    oot = make_split("oot", df.loc[late].reset_index(drop=True), model)
    return AuditContext(spec=spec, model=model, features=FEATURES, dev=dev, oot=oot, score_kind="probability")


def naive(df: pd.DataFrame, p: np.ndarray, dev_mask: np.ndarray) -> int:
    d = df.assign(p=p, q=df["date"].dt.to_period("Q"))
    edges = np.unique(np.quantile(p[dev_mask], np.linspace(0, 1, 11)[1:-1]))
    bins = [-np.inf, *edges, np.inf]
    ref = pd.cut(d.loc[dev_mask, "p"], bins).value_counts(normalize=True, sort=False).to_numpy()
    out = []
    for q, g in d.groupby("q"):
        yy, pp = g["y"].to_numpy(), g["p"].to_numpy()
        auc = roc_auc_score(yy, pp)
        ks = stats.ks_2samp(pp[yy == 1], pp[yy == 0]).statistic
        act = pd.cut(g["p"], bins).value_counts(normalize=True, sort=False).to_numpy()
        a, e = np.maximum(act, 1e-4), np.maximum(ref, 1e-4)
        psi = ((a - e) * np.log(a / e)).sum()
        fav = (g["p"] < 0.2).groupby(g["grp"]).mean()
        air = fav / fav["g0"]
        out.append((q, len(g), yy.mean(), pp.mean(), auc, 2 * auc - 1, ks, psi, air.to_dict()))
    return len(out)


def main() -> None:
    quick = "--quick" in sys.argv or os.environ.get("ASSAY_BENCH_QUICK") == "1"
    n = 100_000 if quick else 1_000_000
    t0 = time.perf_counter()
    df = make_data(n)
    fit = df.sample(50_000, random_state=1)
    est = LogisticRegression().fit(fit[FEATURES], fit["y"])
    model = SklearnModel(estimator=est, features=FEATURES, sha256="bench", path="bench")
    nq = df["date"].dt.to_period("Q").nunique()
    print(f"rows: {n:,}, quarters: {nq}, data built in {time.perf_counter() - t0:.1f}s")

    ctx = make_ctx(df, model, 1000)
    t = time.perf_counter()
    sec = temporal.run(ctx).section
    ours = time.perf_counter() - t
    assert sec.periods is not None and len(sec.periods) == 40
    print(f"ours, temporal section, 1000 bootstrap replicates: {ours:.2f} s")

    ctx0 = make_ctx(df, model, 0)
    t = time.perf_counter()
    temporal.run(ctx0)
    ours0 = time.perf_counter() - t
    print(f"ours, temporal section, no bootstrap:              {ours0:.2f} s")

    p = model.predict_score(df)
    dev_mask = (df["date"] <= pd.Timestamp("2017-12-31")).to_numpy()
    t = time.perf_counter()
    naive(df, p, dev_mask)
    anchor = time.perf_counter() - t
    print(f"anchor, pandas groupby + sklearn/scipy per quarter (points only): {anchor:.2f} s")

    g = df.assign(p=p)[df["date"].dt.to_period("Q") == pd.Period("2015Q1")]
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(20):
        idx = rng.integers(0, len(g), len(g))
        roc_auc_score(g["y"].to_numpy()[idx], g["p"].to_numpy()[idx])
    per_rep = (time.perf_counter() - t) / 20
    naive_boot = per_rep * 1000 * 40
    print(f"anchor, naive row bootstrap of AUC (extrapolated, 1000 reps x 40 quarters): {naive_boot:.1f} s")
    print(f"ratio ours(no bootstrap) / anchor(points): {ours0 / anchor:.2f}")
    print(f"ratio ours(1000 reps) / naive row bootstrap of AUC alone: {ours / naive_boot:.3f}")
    print(f"target: temporal section < 20 s on 2 cores -> {'PASS' if ours < 20 else 'FAIL'} ({ours:.2f} s)")


if __name__ == "__main__":
    main()
