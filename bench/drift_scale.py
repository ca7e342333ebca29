"""Drift at scale: a 1M-row window × 55 features against a stored reference profile, vs evidently.

    .venv/bin/python bench/drift_scale.py            # 1M-row window; evidently DataDriftPreset at 100k
    .venv/bin/python bench/drift_scale.py --quick    # 200k-row window; evidently at 20k
    .venv/bin/python bench/drift_scale.py --stream 10000000   # also 10M rows streamed from Parquet
    .venv/bin/python bench/drift_scale.py --no-evidently
    .venv/bin/python bench/drift_scale.py --evidently-rows 1000000   # evidently at 1M too (~6 min, 4 GB)

Synthetic data (seeded): 45 numeric features (normal, lognormal, Poisson counts, 5% missing in some)
and 10 categorical (4–30 string categories); the window shifts a third of the features. The reference
(200k rows) is profiled once and the profile's JSON is what the window is compared with, as a monitor
does. Ours: PSI/CSI per feature + score-free drift (PSI, KS, Wasserstein, JS, chi-square, missing
rates) through :class:`WindowAccumulator` (binned mode above 200k rows). evidently: ``Report(
[DataDriftPreset()])`` with its default tests on the same columns, run ONCE at a tenth of the window
size by default (it takes ~5 min and 4 GB at 1M rows on this machine class, STACK-NOTES.md) and scaled
linearly to the window size — printed as such; the same-size ratio at the smaller size is printed too.
``--evidently-rows N`` runs evidently at N rows instead (N = the window size: a measured, not scaled,
ratio). Peak RSS of each phase is measured in a fresh subprocess (``resource.getrusage``, Linux KiB);
every line ends with the 1-minute load average when the phase finished (2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_NUM, N_CAT = 45, 10


def make_frame(n: int, *, seed: int, shifted: bool, extra: bool = False) -> pd.DataFrame:
    """The 55 features; ``extra`` adds what a monitor run needs: ``score``, group ``grp``, ``row_id``."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for i in range(N_NUM):
        s = shifted and i % 3 == 0
        kind = i % 3
        if kind == 0:
            x = rng.normal(0.15 if s else 0.0, 1.1 if s else 1.0, n)
        elif kind == 1:
            x = rng.lognormal(10.1 if s else 10.0, 0.6, n)
        else:
            x = rng.poisson(2.4 if s else 2.0, n).astype("float64")
        if i % 5 == 0:
            x[rng.random(n) < (0.08 if s else 0.05)] = np.nan
        cols[f"num_{i:02d}"] = x
    for j in range(N_CAT):
        k = 4 + 3 * j
        p = np.linspace(1, 2, k)
        if shifted and j % 3 == 0:
            p = p[::-1]
        p = p / p.sum()
        cats = np.array([f"c{j}_{v}" for v in range(k)], dtype=object)
        cols[f"cat_{j}"] = cats[rng.choice(k, n, p=p)]
    if extra:  # drawn after the features, which stay the same
        z = 0.6 * np.nan_to_num(cols["num_00"]) + 0.4 * cols["num_03"] + 0.3 * (cols["num_02"] - 2) - 1.2
        cols["score"] = 1 / (1 + np.exp(-(z + rng.normal(0, 0.5, n))))
        cols["grp"] = np.array(["g0", "g1", "g2"], dtype=object)[rng.choice(3, n, p=[0.6, 0.3, 0.1])]
        cols["row_id"] = pd.Series(np.arange(n) + seed * 10**8).astype(str).to_numpy(dtype=object)
    return pd.DataFrame(cols)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_now_mb() -> float:
    """Current (not peak) resident set size, Linux."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def phase_profile(out: str, n_ref: int) -> None:
    from service.monitoring.profile import build_profile

    ref = make_frame(n_ref, seed=1, shifted=False)
    t = time.perf_counter()
    prof = build_profile(ref, list(ref.columns))
    dt_ = time.perf_counter() - t
    Path(out).write_text(prof.model_dump_json())
    print(json.dumps({"profile_s": dt_, "profile_bytes": Path(out).stat().st_size, "rss_mb": _rss_mb()}))


def phase_window(profile_path: str, n: int) -> None:
    from service.config import PolicySpec
    from service.monitoring.profile import load_profile
    from service.monitoring.window import WindowAccumulator

    cur = make_frame(n, seed=2, shifted=True)
    rss_data = _rss_mb()
    t = time.perf_counter()
    prof = load_profile(Path(profile_path))
    acc = WindowAccumulator(prof, keep_values=n <= 200_000)
    acc.update(cur)
    block = acc.drift(PolicySpec())
    dt_ = time.perf_counter() - t
    s = block.summary
    print(
        json.dumps(
            {
                "window_s": dt_,
                "rss_mb": _rss_mb(),
                "rss_data_mb": rss_data,
                "n_red": s.n_red,
                "n_amber": s.n_amber,
                "max_psi": s.max_psi,
                "max_psi_feature": s.max_psi_feature,
            }
        )
    )


def phase_stream(profile_path: str, parquet: str, chunk: int) -> None:
    from service.config import PolicySpec
    from service.monitoring.monitor import iter_frames
    from service.monitoring.profile import load_profile
    from service.monitoring.window import WindowAccumulator

    prof = load_profile(Path(profile_path))
    t = time.perf_counter()
    acc = WindowAccumulator(prof)
    rows, chunks = iter_frames(Path(parquet), chunk)
    rss_after = []
    for frame in chunks:
        acc.update(frame)
        del frame
        rss_after.append(_rss_now_mb())
    block = acc.drift(PolicySpec())
    dt_ = time.perf_counter() - t
    print(
        json.dumps(
            {
                "stream_s": dt_,
                "rows": rows,
                "rss_mb": _rss_mb(),
                "rss_first_chunk_mb": rss_after[0],
                "rss_last_chunk_mb": rss_after[-1],
                "rss_max_after_chunk_mb": max(rss_after),
                "max_psi": block.summary.max_psi,
            }
        )
    )


def phase_monitor_setup(folder: str, n_ref: int, chunk: int) -> None:
    """A monitor on a score column (no model) over the 55 features + one protected attribute."""
    import yaml

    from service.config import Settings
    from service.monitoring.monitor import ensure_monitor, load_monitor
    from service.store.db import make_engine, session_factory
    from service.store.migrate import upgrade

    d = Path(folder)
    make_frame(n_ref, seed=1, shifted=False, extra=True).to_parquet(d / "reference.parquet", index=False)
    feats = [f"num_{i:02d}" for i in range(N_NUM)] + [f"cat_{j}" for j in range(N_CAT)]
    audit = {
        "model_name": "bench-score",
        "dataset": "reference.parquet",
        "target": "outcome",
        "features": feats,
        "id_column": "row_id",
        "score": {"column": "score", "threshold": 0.5},
        "protected": [{"name": "grp", "column": "grp", "reference": "g0"}],
    }
    (d / "audit.yaml").write_text(yaml.safe_dump(audit))
    mon = {"name": "bench", "audit": "audit.yaml", "reference": "reference.parquet", "chunk_rows": chunk}
    (d / "monitor.yaml").write_text(yaml.safe_dump(mon))
    engine = make_engine(Settings(data_dir=d / "data"))
    upgrade(engine)
    t = time.perf_counter()
    with session_factory(engine)() as s:
        mid = ensure_monitor(s, load_monitor(d / "monitor.yaml")).id
        s.commit()
    print(json.dumps({"monitor_id": mid, "profile_s": time.perf_counter() - t, "rss_mb": _rss_mb()}))


def phase_monitor_run(folder: str, monitor_id: str, parquet: str) -> None:
    """``run_window`` on the Parquet file (as ``assay monitor run --file``), current RSS after each batch."""
    import service.monitoring.monitor as mm
    from service.config import Settings
    from service.store.db import make_engine, session_factory

    d = Path(folder)
    real = mm.iter_frames
    rss: list[float] = []

    def counted(path: Path, chunk_rows: int):  # type: ignore[no-untyped-def]
        rows, chunks = real(path, chunk_rows)

        def gen():  # type: ignore[no-untyped-def]
            for frame in chunks:
                yield frame
                rss.append(_rss_now_mb())  # after the batch was processed

        return rows, gen()

    mm.iter_frames = counted  # type: ignore[assignment]
    sessions = session_factory(make_engine(Settings(data_dir=d / "data")))
    t = time.perf_counter()
    out = mm.run_window(sessions, monitor_id, data_dir=d / "data", path=Path(parquet), deliver_alerts=False)
    dt_ = time.perf_counter() - t
    assert out.result is not None, out.message
    print(
        json.dumps(
            {
                "monitor_s": dt_,
                "rows": out.result["rows"],
                "rss_mb": _rss_mb(),
                "rss_first_chunk_mb": rss[0],
                "rss_last_chunk_mb": rss[-1],
                "rss_max_after_chunk_mb": max(rss),
                "n_alerts": len(out.result["alerts"]),
                "air_g2": out.result["fairness"]["attributes"]["grp"]["groups"]["g2"]["air"],
            }
        )
    )


def phase_evidently(n: int) -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref = make_frame(n, seed=1, shifted=False)
    cur = make_frame(n, seed=2, shifted=True)
    num = [c for c in ref.columns if c.startswith("num_")]
    cat = [c for c in ref.columns if c.startswith("cat_")]
    dd = DataDefinition(numerical_columns=num, categorical_columns=cat)
    t = time.perf_counter()
    snap = Report([DataDriftPreset()], include_tests=True).run(
        current_data=Dataset.from_pandas(cur, data_definition=dd),
        reference_data=Dataset.from_pandas(ref, data_definition=dd),
    )
    snap.dict()
    dt_ = time.perf_counter() - t
    print(json.dumps({"evidently_s": dt_, "rss_mb": _rss_mb()}))


def write_parquet(path: str, rows: int, chunk: int) -> float:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = time.perf_counter()
    writer = None
    done = 0
    i = 0
    while done < rows:
        n = min(chunk, rows - done)
        frame = make_frame(n, seed=100 + i, shifted=True, extra=True)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema, compression="snappy")
        writer.write_table(table, row_group_size=chunk)
        done += n
        i += 1
    assert writer is not None
    writer.close()
    return time.perf_counter() - t


def _sub(*args: str) -> dict:
    cmd = [sys.executable, __file__, "--phase", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["load"] = os.getloadavg()[0]
    return out


def _load(d: dict) -> str:
    return f"[load {d['load']:.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--ref-rows", type=int, default=200_000)
    ap.add_argument("--no-evidently", action="store_true")
    ap.add_argument("--stream", type=int, default=0, help="also stream this many rows from Parquet")
    ap.add_argument("--chunk", type=int, default=500_000)
    ap.add_argument("--evidently-rows", type=int, default=None, help="run evidently at this many rows")
    ap.add_argument(
        "--no-monitor", action="store_true", help="with --stream: skip the full monitor run on the file"
    )
    ap.add_argument("--phase", nargs="+")
    a = ap.parse_args()
    if a.phase:
        name, *rest = a.phase
        if name == "profile":
            phase_profile(rest[0], int(rest[1]))
        elif name == "window":
            phase_window(rest[0], int(rest[1]))
        elif name == "stream":
            phase_stream(rest[0], rest[1], int(rest[2]))
        elif name == "evidently":
            phase_evidently(int(rest[0]))
        elif name == "monitor-setup":
            phase_monitor_setup(rest[0], int(rest[1]), int(rest[2]))
        elif name == "monitor-run":
            phase_monitor_run(rest[0], rest[1], rest[2])
        return
    rows = a.rows or (200_000 if a.quick else 1_000_000)
    ev_rows = a.evidently_rows or max(rows // 10, 1000)
    print(
        f"drift_scale: window {rows:,} rows x {N_NUM + N_CAT} features "
        f"({N_NUM} numeric, {N_CAT} categorical), reference {a.ref_rows:,} rows; 2 cores",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        prof_path = os.path.join(tmp, "profile.json")
        p = _sub("profile", prof_path, str(a.ref_rows))
        print(
            f"profile  (once) : {p['profile_s']:.2f} s, {p['profile_bytes'] / 1e6:.2f} MB JSON, "
            f"peak RSS {p['rss_mb']:.0f} MB {_load(p)}"
        )
        w = _sub("window", prof_path, str(rows))
        print(
            f"ours     {rows:>9,} rows: {w['window_s']:.2f} s, peak RSS {w['rss_mb']:.0f} MB "
            f"(data alone {w['rss_data_mb']:.0f} MB); red {w['n_red']}, amber {w['n_amber']}, "
            f"max PSI {w['max_psi']:.3f} ({w['max_psi_feature']}) {_load(w)}"
        )
        small = w if ev_rows == rows else _sub("window", prof_path, str(ev_rows))
        mode = "exact" if ev_rows <= 200_000 else "binned"
        print(
            f"ours     {ev_rows:>9,} rows: {small['window_s']:.2f} s, peak RSS {small['rss_mb']:.0f} MB "
            f"({mode} KS/Wasserstein mode) {_load(small)}"
        )
        if not a.no_evidently:
            e = _sub("evidently", str(ev_rows))
            scaled = e["evidently_s"] * rows / ev_rows
            print(
                f"evidently DataDriftPreset {ev_rows:,} vs {ev_rows:,} rows: {e['evidently_s']:.1f} s, "
                f"peak RSS {e['rss_mb']:.0f} MB (run once) {_load(e)}"
            )
            same = e["evidently_s"] / small["window_s"]
            print(f"ratio same size ({ev_rows:,} rows): evidently / ours = {same:.0f}x")
            if ev_rows != rows:
                print(
                    f"ratio at {rows:,} rows: evidently scaled linearly from {ev_rows:,} rows "
                    f"({scaled:.0f} s, not run) / ours = {scaled / w['window_s']:.0f}x"
                )
        if a.stream:
            pq_path = os.path.join(tmp, "window.parquet")
            wt = write_parquet(pq_path, a.stream, a.chunk)
            size = Path(pq_path).stat().st_size
            print(f"wrote {a.stream:,} rows to Parquet ({size / 1e9:.2f} GB) in {wt:.0f} s", flush=True)
            s = _sub("stream", prof_path, pq_path, str(a.chunk))
            print(
                f"streamed {s['rows']:,} rows in {a.chunk:,}-row batches: {s['stream_s']:.1f} s "
                f"({s['rows'] / s['stream_s'] / 1e6:.2f} M rows/s), peak RSS {s['rss_mb']:.0f} MB "
                f"(current RSS after batch 1 {s['rss_first_chunk_mb']:.0f} MB, after the last "
                f"{s['rss_last_chunk_mb']:.0f} MB, highest {s['rss_max_after_chunk_mb']:.0f} MB) {_load(s)}"
            )
            if not a.no_monitor:
                m0 = _sub("monitor-setup", tmp, str(a.ref_rows), str(a.chunk))
                m = _sub("monitor-run", tmp, m0["monitor_id"], pq_path)
                print(
                    f"monitor run (score column, 1 protected attribute, scores kept for labels) "
                    f"{m['rows']:,} rows: {m['monitor_s']:.1f} s, peak RSS {m['rss_mb']:.0f} MB (current RSS "
                    f"after batch 1 {m['rss_first_chunk_mb']:.0f} MB, after the last "
                    f"{m['rss_last_chunk_mb']:.0f} MB, highest {m['rss_max_after_chunk_mb']:.0f} MB); "
                    f"{m['n_alerts']} alerts {_load(m)}"
                )


if __name__ == "__main__":
    main()
