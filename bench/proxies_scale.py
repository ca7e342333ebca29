"""Benchmark: the proxy screen on 1,000,000 rows vs scipy / scikit-learn on the same data.

    .venv/bin/python bench/proxies_scale.py            # 1M rows
    .venv/bin/python bench/proxies_scale.py --quick    # 100k rows (or ASSAY_BENCH_QUICK=1)

Data: synthetic, seeded. One protected attribute with three groups (60/30/10%); six features:
three numeric (one a planted proxy = group + noise, with 2% missing), three categorical (a
50-level "zip3" that carries group information, an 8-level and a 3-level noise feature).

Ours: ``proxies.screen_feature`` for every feature on all rows (Cramér's V or η, normalised MI on
decile bins, one-vs-rest AUC per group; the categorical AUC cross-fitted over 5 folds), exactly as
the audit runs it, then the redundant-encoding model (sampled to 10,000 rows, 3-fold CV, bootstrap
CI, permutation importance: fixed cost, reported separately).

Anchor: the same statistics from the field's libraries, one call each, on the same rows:
``scipy.stats.contingency.association`` on a ``pd.crosstab`` (V), the R² of
``sklearn.linear_model.LinearRegression`` on group dummies (η²),
``sklearn.metrics.normalized_mutual_info_score`` (NMI) and ``sklearn.metrics.roc_auc_score`` per
group (numeric AUC; for categorical features on the in-sample category shares, which is cheaper
than our cross-fitting). The script checks that the numbers agree before printing the ratio.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy.stats.contingency import association  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.metrics import normalized_mutual_info_score, roc_auc_score  # noqa: E402

from service.audits import proxies  # noqa: E402


def make_data(n: int, seed: int = 20261203) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    planted = g + rng.normal(0, 0.8, n)
    planted[rng.random(n) < 0.02] = np.nan
    zip3 = np.where(rng.random(n) < 0.5, g * 10 + rng.integers(0, 10, n), rng.integers(0, 50, n))
    frame = pd.DataFrame(
        {
            "planted": planted,
            "income": rng.lognormal(4, 0.5, n),
            "dti": rng.uniform(0, 60, n).round(1),
            "zip3": pd.Series(zip3).map(lambda v: f"z{v:02d}"),
            "purpose": rng.choice([f"p{i}" for i in range(8)], size=n),
            "housing": rng.choice(["own", "rent", "free"], size=n),
        }
    )
    return frame, g


KINDS = {
    "planted": "numeric",
    "income": "numeric",
    "dti": "numeric",
    "zip3": "categorical",
    "purpose": "categorical",
    "housing": "categorical",
}


def ours(frame: pd.DataFrame, m: np.ndarray) -> dict[str, dict]:
    rng = np.random.default_rng(1)
    folds = rng.permutation(len(frame)) % proxies.SCREEN_FOLDS
    return {f: proxies.screen_feature(frame[f], m, kind=k, folds=folds) for f, k in KINDS.items()}


def anchor(frame: pd.DataFrame, g: np.ndarray) -> dict[str, dict]:
    out = {}
    dummies = np.eye(3)[g]
    for f, k in KINDS.items():
        col = frame[f]
        if k == "numeric":
            ok = col.notna().to_numpy()
            x = col.to_numpy()[ok]
            r2 = LinearRegression().fit(dummies[ok], x).score(dummies[ok], x)
            bins = pd.qcut(col, 10, labels=False, duplicates="drop").fillna(-1)
            nmi = normalized_mutual_info_score(g, bins)
            aucs = [max(a, 1 - a) for a in (roc_auc_score(g[ok] == j, x) for j in range(3))]
            out[f] = {"eta": float(np.sqrt(r2)), "mutual_info": nmi, "auc_by_group": aucs}
        else:
            tab = pd.crosstab(col, g)
            v = association(tab.to_numpy(), method="cramer", correction=False)
            nmi = normalized_mutual_info_score(g, col)
            share = (tab / tab.to_numpy().sum(axis=1, keepdims=True)).loc[col].to_numpy()
            aucs = [max(a, 1 - a) for a in (roc_auc_score(g == j, share[:, j]) for j in range(3))]
            out[f] = {"cramers_v": v, "mutual_info": nmi, "auc_by_group": aucs}
    return out


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main() -> None:
    quick = "--quick" in sys.argv or os.environ.get("ASSAY_BENCH_QUICK") == "1"
    n = 100_000 if quick else 1_000_000
    frame, g = make_data(n)
    m = np.eye(3)[g]
    print(f"proxy screen: {n:,} rows, 3 groups, {len(KINDS)} features (3 numeric, 3 categorical)")
    mine, t_ours = timed(ours, frame, m)
    ref, t_anchor = timed(anchor, frame, g)
    for f in KINDS:
        for key in ("eta", "cramers_v", "mutual_info"):
            if key in ref[f]:
                assert abs(mine[f][key] - ref[f][key]) < 1e-6, (f, key, mine[f][key], ref[f][key])
        tol = 2e-3 if KINDS[f] == "numeric" else 0.02  # numeric: 4,000 quantile cells; categorical: cross-fit
        assert np.allclose(mine[f]["auc_by_group"], ref[f]["auc_by_group"], atol=tol), (f, mine[f], ref[f])
    print(f"  ours   (V/eta, NMI, one-vs-rest AUC, cross-fitted):   {t_ours:7.2f} s")
    print(f"  anchor (scipy association, sklearn R2/NMI/roc_auc):   {t_anchor:7.2f} s")
    print(
        f"  ratio anchor / ours: {t_anchor / t_ours:.1f}x  (values agree: V/eta/NMI 1e-6, AUC 0.002/0.02)"
    )

    from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: F401  (import cost outside timing)

    sample = np.sort(np.random.default_rng(2).choice(n, proxies.MAX_ROWS_MODEL, replace=False))
    X, cat = proxies._encode_features(frame.iloc[sample], list(KINDS))
    fit, t_red = timed(
        lambda: proxies.redundant_encoding(
            X,
            g[sample],
            ["g0", "g1", "g2"],
            list(KINDS),
            categorical=cat,
            n_boot=500,
            rng=np.random.default_rng(3),
        )
    )
    top = fit.importances[0].feature if fit.importances else None
    print(
        f"  redundant encoding ({proxies.MAX_ROWS_MODEL:,}-row sample, 3-fold CV, 500 bootstrap, "
        f"permutation importance): {t_red:.2f} s; AUC {fit.auc:.3f} CI {fit.auc_ci}; top feature {top}"
    )


if __name__ == "__main__":
    main()
