"""Benchmark: ``assay audit`` on 1,000,000 rows × 50 features with a LightGBM model (issue 2: the
data and performance sections in < 30 s and < 4 GB peak RSS on 2 cores).

    .venv/bin/python bench/audit_scale.py            # 1M rows
    .venv/bin/python bench/audit_scale.py --quick    # 100k rows (or ASSAY_BENCH_QUICK=1)
    .venv/bin/python bench/audit_scale.py --rows 300000 --keep DIR   # other size; keep the files

Data: synthetic, seeded. 45 numeric features (normal, lognormal, Poisson counts; every fifth one
with 5% missing values) and 5 categorical ones (Parquet dictionary columns with integer category
values 0..k-1, 4–16 levels, 2% missing in two of them), two string columns that are not model
features (``branch``, 120 levels; ``channel``, 4 levels) and a binary target (event rate ~12%);
0.1% of the rows repeat an earlier row exactly. Written to Parquet in a temp dir. Model: LightGBM,
200 trees × 31 leaves, trained deterministically (one thread, row-wise) on the first 200k rows,
the five categoricals as native categorical splits, saved as model text.

Spec: dataset, model, target, threshold only — no protected attributes, no date column, no reason
codes — so fairness, temporal, drift and reasons are not run; representation, proxies and
imbalance run empty; explanations run on a 2,000-row sample (path-dependent TreeSHAP); the PDF is
rendered. Bootstrap: 1,000 replicates (the spec default).

Ours:
* the real CLI, ``assay audit SPEC --out DIR``, as a child process: wall time and the child's
  peak RSS (``os.wait4`` rusage, Linux KiB), and time per phase from its progress lines (each
  line's arrival time in this process; "startup" is launch → first line, i.e. imports);
* in-process, in a fresh subprocess: ``prepare`` (load + score), then ``data.run`` and
  ``performance.run`` on the prepared context.

Anchor ("notebook"): the same numbers with pandas ``describe``/``isna``/``nunique``/
``value_counts``/``duplicated``, scikit-learn ``roc_auc_score`` (also per feature for the leakage
screen), ``average_precision_score``, ``brier_score_loss``, ``log_loss``, scipy ``ks_2samp``, a
decile calibration table by ``pd.qcut`` on ranks, and a 1,000-replicate row bootstrap of the AUC
(resample rows, ``roc_auc_score``), timed on 10 replicates and extrapolated. Loading and scoring
are excluded on both sides of the ratio. Point estimates in audit.json are asserted equal to the
anchor's: counts exactly; AUC, Gini, KS, PR-AUC, Brier, log loss, means, calibration deciles to
1e-9 (relative); the leakage screen's single-feature AUCs to 2e-3 (ours ranks numeric features
in at most 1,000 quantile cells on large data, the anchor on the raw values).

Every figure is printed with the 1/5/15-minute load average at the time it was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_NUM, N_CAT = 45, 5
CAT_LEVELS = [4, 6, 8, 12, 16]
TRAIN_ROWS = 200_000
N_TREES = 200
THRESHOLD = 0.2
REL_TOL = 1e-9
LEAKAGE_TOL = 2e-3
TARGET_S, TARGET_GB = 30.0, 4.0
PROGRESS = re.compile(r"^\[assay\s+([0-9.]+)s\] (.*)$")


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def features() -> list[str]:
    return [f"num_{i:02d}" for i in range(N_NUM)] + [f"cat_{j}" for j in range(N_CAT)]


def make_frame(n: int, seed: int = 20261203) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    logit = np.full(n, -2.6)
    for i in range(N_NUM):
        kind = i % 3
        if kind == 0:
            x = rng.normal(0.0, 1.0, n)
        elif kind == 1:
            x = rng.lognormal(10.0, 0.6, n)
        else:
            x = rng.poisson(2.0, n).astype("float64")
        if i < 9:  # the first nine carry the signal
            z = x if kind == 0 else (np.log(x) - 10.0) / 0.6 if kind == 1 else (x - 2.0) / 1.4
            logit += (0.5 if i % 2 == 0 else -0.35) * z / (1 + i // 3)
        if i % 5 == 0:
            x[rng.random(n) < 0.05] = np.nan
        cols[f"num_{i:02d}"] = x
    for j, k in enumerate(CAT_LEVELS):
        p = np.linspace(1, 3, k)
        codes = rng.choice(k, n, p=p / p.sum())
        logit += np.linspace(-0.4, 0.4, k)[codes] * (j < 3)
        c = pd.Categorical.from_codes(codes, categories=list(range(k)))
        if j in (1, 3):
            c[rng.random(n) < 0.02] = np.nan
        cols[f"cat_{j}"] = c
    branches = np.array([f"BR{b:03d}" for b in range(120)], dtype=object)
    cols["branch"] = branches[rng.integers(0, 120, n)]
    cols["channel"] = np.array(["web", "branch", "broker", "phone"], dtype=object)[
        rng.choice(4, n, p=[0.5, 0.3, 0.15, 0.05])
    ]
    cols["default_flag"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    take = np.arange(n)
    n_dup = n // 1000
    take[rng.choice(np.arange(n // 2, n), n_dup, replace=False)] = rng.choice(n // 2, n_dup, replace=False)
    return pd.DataFrame(cols).iloc[take].reset_index(drop=True)


def train_model(df: pd.DataFrame, path: Path) -> None:
    import lightgbm as lgb

    feats = features()
    train = df.iloc[:TRAIN_ROWS]
    X = train[feats].to_numpy(dtype="float64", na_value=np.nan)
    params = {
        "objective": "binary",
        "num_leaves": 31,
        "learning_rate": 0.05,
        "min_data_in_leaf": 100,
        "seed": 20261203,
        "deterministic": True,
        "num_threads": 1,
        "force_row_wise": True,
        "verbosity": -1,
    }
    cat_idx = [feats.index(f"cat_{j}") for j in range(N_CAT)]
    ds = lgb.Dataset(X, label=train["default_flag"], feature_name=feats, categorical_feature=cat_idx)
    booster = lgb.train(params, ds, num_boost_round=N_TREES)
    booster.save_model(str(path))


def write_inputs(tmp: Path, n: int) -> Path:
    t = time.perf_counter()
    df = make_frame(n)
    df.to_parquet(tmp / "data.parquet", index=False)
    t_data = time.perf_counter() - t
    t = time.perf_counter()
    train_model(df, tmp / "model.txt")
    t_model = time.perf_counter() - t
    spec = {
        "model_name": "audit_scale synthetic LightGBM",
        "dataset": "data.parquet",
        "model": "model.txt",
        "target": "default_flag",
        "event_value": 1,
        "score": {"threshold": THRESHOLD},
    }
    spec_path = tmp / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    size = (tmp / "data.parquet").stat().st_size
    print(
        f"inputs: {n:,} rows x {df.shape[1]} columns ({N_NUM} numeric + {N_CAT} categorical features, "
        f"2 string columns, target), Parquet {size / 1e6:.0f} MB in {t_data:.1f} s; "
        f"LightGBM {N_TREES} trees trained on {min(n, TRAIN_ROWS):,} rows in {t_model:.1f} s",
        flush=True,
    )
    return spec_path


# --------------------------------------------------------------------------- ours: the CLI


def assay_command() -> list[str]:
    exe = Path(sys.executable).with_name("assay")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "service.cli"]


def run_cli(spec: Path, out: Path) -> dict:
    """Run ``assay audit`` as a child; wall time, peak RSS (wait4) and per-phase times."""
    before = load()
    with open(out.with_suffix(".stdout"), "w") as so:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [*assay_command(), "audit", str(spec), "--out", str(out)],
            stdout=so,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(ROOT),
        )
        assert proc.stderr is not None
        lines: list[tuple[float, str]] = []
        other: list[str] = []
        for line in proc.stderr:
            now = time.perf_counter() - t0
            m = PROGRESS.match(line.rstrip("\n"))
            if m:
                lines.append((now, m.group(2)))
            else:
                other.append(line)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"assay audit exited {proc.returncode}:\n{''.join(other)}")
    phases: list[tuple[str, float]] = []
    if lines:
        phases.append(("startup (imports, spec)", lines[0][0]))
    for (t, msg), nxt in zip(lines, [*lines[1:], (wall, "")], strict=True):
        phases.append((msg, nxt[0] - t))
    return {
        "wall_s": wall,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "rss_gb": ru.ru_maxrss / 2**20,
        "phases": phases,
        "load_before": before,
        "load_after": load(),
        "stdout": out.with_suffix(".stdout").read_text(),
    }


def phase_totals(phases: list[tuple[str, float]]) -> dict[str, float]:
    """Group progress phases: inputs, data, performance, the other sections, outputs."""
    out: dict[str, float] = {}
    current = "startup"
    for msg, dt_ in phases:
        if msg.startswith("startup"):
            current = "startup"
        elif msg.startswith(("loading", "scoring")):
            current = "inputs (load + score)"
        elif msg.startswith("audit: "):
            name = msg.removeprefix("audit: ")
            current = name if name in ("data", "performance") else "other sections"
        elif msg.startswith("explanations"):
            current = "other sections"
        elif msg.startswith("writing outputs"):
            current = "outputs (audit.json + PDF)"
        out[current] = out.get(current, 0.0) + dt_
    return out


# --------------------------------------------------------------------------- ours: in-process


def phase_inproc(spec_path: str) -> None:
    import resource

    from service.audits import data, performance
    from service.config import load_spec
    from service.inputs.prepare import prepare

    spec = load_spec(Path(spec_path))
    out: dict[str, float] = {}

    def timed(name: str, step, *args):
        t, c = time.perf_counter(), time.process_time()
        res = step(*args)
        out[f"{name}_s"], out[f"{name}_cpu_s"] = time.perf_counter() - t, time.process_time() - c
        return res

    ctx = timed("prepare", prepare, spec).context
    timed("data", data.run, ctx)
    timed("performance", performance.run, ctx)
    out["rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(out))


def run_inproc(spec: Path) -> dict:
    before = load()
    r = subprocess.run(
        [sys.executable, __file__, "--phase", "inproc", str(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["load"] = before
    return out


# --------------------------------------------------------------------------- anchor


def anchor(df: pd.DataFrame, p: np.ndarray, y: np.ndarray, feats: list[str]) -> tuple[dict, dict[str, float]]:
    """The data and performance numbers as a notebook computes them; (values, seconds per step)."""
    from scipy import stats
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    tm: dict[str, float] = {}
    v: dict = {}
    t = time.perf_counter()
    desc = df.describe()
    v["missing"] = df.isna().sum().to_dict()
    v["nunique"] = df.nunique(dropna=True).to_dict()
    v["mean"] = desc.loc["mean"].to_dict()
    v["min"] = desc.loc["min"].to_dict()
    v["max"] = desc.loc["max"].to_dict()
    v["top"] = {
        c: df[c].astype(str).where(df[c].notna(), None).value_counts().head(5).to_dict()
        for c in df.columns
        if not pd.api.types.is_numeric_dtype(df[c])
    }
    v["dup_rows"] = int(df.duplicated().sum())
    v["dup_features"] = int(df[feats].duplicated().sum())
    tm["describe/isna/nunique/value_counts/duplicated"] = time.perf_counter() - t

    t = time.perf_counter()
    leak = {}
    for f in feats:
        s = df[f]
        ok = s.notna().to_numpy()
        if pd.api.types.is_numeric_dtype(s):
            x = s.to_numpy(dtype="float64")[ok]
        else:
            rate = pd.Series(y[ok]).groupby(s[ok].astype(str).to_numpy()).transform("mean")
            x = rate.to_numpy()
        a = roc_auc_score(y[ok], x)
        leak[f] = max(a, 1 - a)
    v["leakage"] = leak
    tm["leakage screen (roc_auc_score per feature)"] = time.perf_counter() - t

    t = time.perf_counter()
    v["auc"] = roc_auc_score(y, p)
    v["gini"] = 2 * v["auc"] - 1
    v["ks"] = stats.ks_2samp(p[y == 1], p[y == 0]).statistic
    v["pr_auc"] = average_precision_score(y, p)
    v["brier"] = brier_score_loss(y, p)
    v["log_loss"] = log_loss(y, p)
    v["events"] = int(y.sum())
    v["adverse_rate"] = float((p >= THRESHOLD).mean())
    tm["AUC/KS/PR-AUC/Brier/log loss"] = time.perf_counter() - t

    t = time.perf_counter()
    dec = pd.qcut(pd.Series(p).rank(method="first"), 10, labels=False)
    g = pd.DataFrame({"p": p, "y": y, "d": dec}).groupby("d")
    tab = g.agg(
        n=("y", "size"), mean_predicted=("p", "mean"), observed_rate=("y", "mean"), events=("y", "sum")
    )
    v["deciles"] = tab.reset_index(drop=True).to_dict("records")
    e, o, nn = tab["mean_predicted"] * tab["n"], tab["events"], tab["n"]
    v["hosmer_lemeshow"] = float(((o - e) ** 2 / (e * (1 - e / nn))).sum())
    tm["decile calibration + HL"] = time.perf_counter() - t

    rng = np.random.default_rng(0)
    reps = 10
    t = time.perf_counter()
    for _ in range(reps):
        idx = rng.integers(0, len(y), len(y))
        roc_auc_score(y[idx], p[idx])
    tm["AUC row bootstrap, 1000 reps (extrapolated from 10)"] = (time.perf_counter() - t) / reps * 1000
    return v, tm


def _close(a: float, b: float, tol: float = REL_TOL) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def check(result: dict, v: dict, feats: list[str]) -> tuple[int, float]:
    """Assert audit.json's point estimates equal the anchor's; (number of checks, max leakage diff)."""
    data, perf = result["sections"]["data"], result["sections"]["performance"]["splits"]["dev"]
    n = 0
    for prof in data["column_profiles"]:
        c = prof["name"]
        assert prof["missing"] == v["missing"][c], (c, prof["missing"], v["missing"][c])
        assert prof["n_unique"] == v["nunique"][c], (c, prof["n_unique"], v["nunique"][c])
        n += 2
        if prof["mean"] is not None and c in v["mean"]:
            for k in ("mean", "min", "max"):
                assert _close(prof[k], v[k][c]), (c, k, prof[k], v[k][c])
                n += 1
        if prof["top_values"] is not None and c in v["top"]:
            assert prof["top_values"] == {str(k): int(x) for k, x in v["top"][c].items()}, c
            n += 1
    assert data["duplicates"] == {"rows": v["dup_rows"], "feature_rows": v["dup_features"]}, data[
        "duplicates"
    ]
    assert data["events"] == v["events"] == round(perf["events"])
    n += 2
    for k in ("auc", "gini", "ks", "pr_auc", "brier", "log_loss", "adverse_rate"):
        assert _close(perf[k], v[k]), (k, perf[k], v[k])
        n += 1
    for ours, theirs in zip(perf["calibration"]["deciles"], v["deciles"], strict=True):
        for k in ("n", "mean_predicted", "observed_rate", "events"):
            assert _close(ours[k], float(theirs[k])), (ours, theirs)
            n += 1
    assert _close(perf["calibration"]["hosmer_lemeshow"], v["hosmer_lemeshow"], 1e-7)
    n += 1
    diff = 0.0
    for row in data["leakage"]:
        d = abs(row["auc"] - v["leakage"][row["feature"]])
        assert d <= LEAKAGE_TOL, (row, v["leakage"][row["feature"]])
        diff = max(diff, d)
        n += 1
    return n, diff


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="write the inputs and outputs here")
    ap.add_argument("--phase", nargs="+")
    a = ap.parse_args()
    if a.phase:
        phase_inproc(a.phase[1])
        return
    quick = a.quick or os.environ.get("ASSAY_BENCH_QUICK") == "1"
    n = a.rows or (100_000 if quick else 1_000_000)
    print(f"audit_scale: {n:,} rows x {N_NUM + N_CAT} features, LightGBM; {os.cpu_count()} cores; {load()}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = a.keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        spec = write_inputs(tmp, n)

        cli = run_cli(spec, tmp / "out")
        print(
            f"ours, `assay audit` (CLI, all sections run + PDF): {cli['wall_s']:.1f} s wall, "
            f"{cli['cpu_s']:.1f} s CPU (user + sys, both cores), peak RSS {cli['rss_gb']:.2f} GB "
            f"({cli['load_before']} before, {cli['load_after']} after)"
        )
        for msg, dt_ in cli["phases"]:
            print(f"    {dt_:6.2f} s  {msg}")
        totals = phase_totals(cli["phases"])
        print("  by phase: " + ", ".join(f"{k} {v:.1f} s" for k, v in totals.items()))
        dp = totals.get("data", 0.0) + totals.get("performance", 0.0)
        print(f"  data + performance sections inside the CLI run: {dp:.1f} s")
        not_run = [ln for ln in cli["stdout"].splitlines() if ln.startswith("not run")]
        print("  " + (not_run[0] if not_run else "not run: (none)"))

        ip = run_inproc(spec)
        ours = ip["data_s"] + ip["performance_s"]
        print(
            f"ours, in-process (wall / CPU): prepare (load + score) {ip['prepare_s']:.1f} / "
            f"{ip['prepare_cpu_s']:.1f} s, data.run {ip['data_s']:.2f} / {ip['data_cpu_s']:.2f} s, "
            f"performance.run {ip['performance_s']:.2f} / {ip['performance_cpu_s']:.2f} s (1000 bootstrap "
            f"reps) -> data + performance {ours:.2f} s wall; peak RSS {ip['rss_gb']:.2f} GB ({ip['load']})"
        )

        import lightgbm as lgb

        df = pd.read_parquet(tmp / "data.parquet")
        feats = features()
        p = lgb.Booster(model_file=str(tmp / "model.txt")).predict(
            df[feats].to_numpy(dtype="float64", na_value=np.nan)
        )
        y = df["default_flag"].to_numpy()
        before = load()
        v, tm = anchor(df, p, y, feats)
        anchor_s = sum(tm.values())
        print(f"anchor (notebook: pandas + scikit-learn + scipy), {before}:")
        for k, dt_ in tm.items():
            print(f"    {dt_:6.2f} s  {k}")
        print(f"  total {anchor_s:.1f} s (loading and scoring excluded, as for ours in-process)")
        print(f"ratio anchor / ours (data + performance, in-process): {anchor_s / ours:.1f}x")
        no_boot = anchor_s - tm["AUC row bootstrap, 1000 reps (extrapolated from 10)"]
        print(f"ratio anchor without its bootstrap / ours with 1000 reps: {no_boot / ours:.1f}x")

        result = json.loads((tmp / "out" / "audit.json").read_text())
        checks, leak_diff = check(result, v, feats)
        print(
            f"point estimates: {checks} checks equal to the anchor (counts exact, metrics to {REL_TOL:g} "
            f"relative; leakage AUCs within {LEAKAGE_TOL:g}, max difference {leak_diff:.1e})"
        )
        ok_t, ok_m = cli["wall_s"] < TARGET_S, cli["rss_gb"] < TARGET_GB
        print(
            f"target: full `assay audit` < {TARGET_S:.0f} s and < {TARGET_GB:.0f} GB on 2 cores -> "
            f"time {'PASS' if ok_t else 'FAIL'} ({cli['wall_s']:.1f} s), "
            f"memory {'PASS' if ok_m else 'FAIL'} ({cli['rss_gb']:.2f} GB)"
        )


if __name__ == "__main__":
    main()
