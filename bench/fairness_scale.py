"""Benchmark: the ``fairness`` section at portfolio scale (issue 3: < 2 s on 2 cores, >= 15x fairlearn).

    .venv/bin/python bench/fairness_scale.py            # 1,000,000 rows
    .venv/bin/python bench/fairness_scale.py --quick    # 100,000 rows (or ASSAY_BENCH_QUICK=1)

Data: synthetic, seeded. Two protected attributes of 4 groups each (unequal shares), intersected
into 16 cells; an outcome with a 20% event rate; a probability score that depends on the outcome
and on both attributes; adverse decision = score >= 0.5.

Anchor: fairlearn ``MetricFrame`` on the 16 intersectional cells with 5 metrics — selection_rate,
true_positive_rate, false_positive_rate, false_negative_rate and scikit-learn precision — point
estimates only, no CIs (``sensitive_features`` = both columns).

Ours, in the same process on the same arrays:
  * ``intersection``: ``group_fairness`` on the 16 cells with 1,000 bootstrap replicates — every
    rate above plus AIR (with its test and shortfall), SMD (with its t test), per-group exact AUC,
    calibration, and a 95% CI for each; the like-for-like comparison;
  * ``section``: ``split_fairness`` — both attributes and the intersection, 1,000 replicates each,
    and Benjamini–Hochberg across every test: what ``assay audit`` computes for this section;
  * ``intersection, no CIs``: as the first with ``n_boot=0``.
The benchmark also checks that our five rates equal fairlearn's in every cell (max |difference|).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fairlearn.metrics import (  # noqa: E402
    MetricFrame,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import precision_score  # noqa: E402

from service.audits import fairness  # noqa: E402
from service.audits._fairness_tables import prepare_rows  # noqa: E402
from service.audits.context import ProtectedGroups, Split  # noqa: E402
from service.config import PolicySpec  # noqa: E402

N_BOOT = 1000


def make_split(n: int, seed: int = 20261203) -> Split:
    rng = np.random.default_rng(seed)
    a = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])
    b = rng.choice(4, size=n, p=[0.55, 0.25, 0.15, 0.05])
    y = (rng.random(n) < 0.2).astype(np.int64)
    logit = -1.6 + 1.4 * y + 0.15 * a - 0.1 * b + rng.normal(size=n)
    prob = 1 / (1 + np.exp(-logit))

    def pg(name: str, codes: np.ndarray) -> ProtectedGroups:
        groups = [f"{name}{i}" for i in range(4)]
        return ProtectedGroups(name, name, groups[0], groups, codes, np.eye(4)[codes])

    return Split(
        name="dev",
        frame=pd.DataFrame(index=pd.RangeIndex(n)),
        y=y,
        score=prob,
        risk=prob,
        prob=prob,
        margin=None,
        adverse=prob >= 0.5,
        weight=None,
        protected={"a": pg("a", a), "b": pg("b", b)},
    )


def precision(y_true, y_pred):
    return precision_score(y_true, y_pred, zero_division=np.nan)


def run_fairlearn(sp: Split) -> pd.DataFrame:
    sens = pd.DataFrame({k: np.asarray(v.labels()) for k, v in sp.protected.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mf = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "true_positive_rate": true_positive_rate,
                "false_positive_rate": false_positive_rate,
                "false_negative_rate": false_negative_rate,
                "precision": precision,
            },
            y_true=sp.y,
            y_pred=sp.adverse.astype(np.int64),
            sensitive_features=sens,
        )
    return mf.by_group


def run_intersection(sp: Split, n_boot: int) -> dict[str, fairness.GroupFairness]:
    labels, mem, ref, codes = fairness.intersect(list(sp.protected.values()))
    rows = prepare_rows(sp.y, sp.adverse, sp.risk, prob=sp.prob)
    return fairness.group_fairness(
        sp.y,
        sp.adverse,
        sp.risk,
        mem,
        labels,
        reference=ref,
        prob=sp.prob,
        n_boot=n_boot,
        rng=np.random.default_rng(1),
        codes=codes,
        rows=rows,
    )


def best_of(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    quick = "--quick" in sys.argv or os.environ.get("ASSAY_BENCH_QUICK") == "1"
    n = 100_000 if quick else 1_000_000
    sp = make_split(n)
    policy = PolicySpec()
    print(
        f"fairness_scale: {n:,} rows, 4 x 4 groups = 16 intersectional cells, {N_BOOT} bootstrap replicates"
    )

    run_intersection(sp, 10)  # warm-up (imports, allocator)
    t_inter, ours = best_of(lambda: run_intersection(sp, N_BOOT), 3)
    t_point, _ = best_of(lambda: run_intersection(sp, 0), 3)
    t_section, sec = best_of(lambda: fairness.split_fairness(sp, policy, N_BOOT, np.random.default_rng(1)), 3)
    t_fl, by_group = best_of(lambda: run_fairlearn(sp), 1)

    # agreement: our rates vs fairlearn's in every cell
    diff = 0.0
    for idx, row in by_group.iterrows():  # type: ignore[union-attr]
        gf = ours[f"a={idx[0]}|b={idx[1]}"]  # type: ignore[index]
        for k in ("true_positive_rate", "false_positive_rate", "false_negative_rate", "precision"):
            diff = max(diff, abs(getattr(gf, k) - row[k]))
        diff = max(diff, abs(gf.adverse_rate - row["selection_rate"]))
    n_cells = len(by_group)  # type: ignore[arg-type]
    print(f"  cells compared with fairlearn: {n_cells}, max |difference| of the 5 rates: {diff:.1e}")
    print(f"  tests in the section (BH across): {sec.tests}")  # type: ignore[union-attr]
    print(f"  fairlearn MetricFrame, 5 metrics, 16 cells, no CIs : {t_fl:8.2f} s")
    print(
        f"  ours, 16 cells, all metrics + 1,000-resample CIs   : {t_inter:8.2f} s  ({t_fl / t_inter:6.1f}x)"
    )
    print(
        f"  ours, 16 cells, all metrics, no CIs                : {t_point:8.2f} s  ({t_fl / t_point:6.1f}x)"
    )
    print(
        f"  ours, whole section (2 attrs + 16 cells, CIs, BH)  : {t_section:8.2f} s  "
        f"({t_fl / t_section:6.1f}x)"
    )
    goal = "met" if (t_inter < 2.0 and t_fl / t_inter >= 15) else "NOT met"
    print(
        f"  goal (< 2 s with CIs and >= 15x fairlearn on 1M rows): {goal}" + (" [quick run]" if quick else "")
    )
    assert diff < 1e-12, "our rates disagree with fairlearn"


if __name__ == "__main__":
    main()
