"""Monitors end to end (in process): oldest-first windows, stored profile reuse, history, delayed labels."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from service.errors import InputError
from service.monitoring import store
from service.monitoring.monitor import ensure_monitor, history, load_monitor, post_labels, run_window
from tests.monitoring.conftest import SHIFT, write_monitor

TARGET = "default.payment.next.month"


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    bins = [-np.inf, *edges, np.inf]
    e = pd.cut(pd.Series(ref), bins).value_counts(sort=False).to_numpy() / ref.size
    a = pd.cut(pd.Series(cur), bins).value_counts(sort=False).to_numpy() / cur.size
    e, a = np.maximum(e, 1e-4), np.maximum(a, 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


@pytest.fixture(scope="module")
def booster():
    return lgb.Booster(model_file=str(SHIFT.parent / "taiwan" / "model.txt"))


def _predict(booster, frame: pd.DataFrame) -> np.ndarray:
    return booster.predict(frame[booster.feature_name()].astype(float).to_numpy())


def _setup(db, tmp_path):
    _engine, sessions, data_dir = db
    mspec = load_monitor(write_monitor(tmp_path))
    with sessions() as s:
        mid = ensure_monitor(s, mspec).id
        s.commit()
    return sessions, data_dir, mspec, mid


def test_windows_oldest_first_then_nothing_left(db, tmp_path, booster):
    sessions, data_dir, mspec, mid = _setup(db, tmp_path)
    seen = []
    for _ in range(3):
        out = run_window(sessions, mid, data_dir=data_dir, deliver_alerts=False)
        seen.append(Path(out.result["window"]["source"]).name)
    assert seen == ["window_2.csv", "window_1.csv", "window_3.csv"]  # by modification time
    last = run_window(sessions, mid, data_dir=data_dir)
    assert last.result is None and "no unprocessed file" in last.message
    h = history(sessions, mid)
    assert [p["seq"] for p in h["windows"]] == [1, 2, 3]
    # window 1 (= window_2.csv, credit limits cut by 15%): LIMIT_BAL and score PSI vs a direct computation
    ref = pd.read_csv(SHIFT / "reference.csv")
    w2 = pd.read_csv(SHIFT / "incoming" / "window_2.csv")
    assert h["windows"][0]["feature_psi"]["LIMIT_BAL"] == pytest.approx(
        _psi(ref["LIMIT_BAL"].to_numpy(float), w2["LIMIT_BAL"].to_numpy(float)), abs=1e-12
    )
    assert h["windows"][0]["score_psi"] == pytest.approx(
        _psi(_predict(booster, ref), _predict(booster, w2)), abs=1e-9
    )
    # window 3 has the unseen EDUCATION code 7 and the PAY_0 shift; the trend covers all three windows
    with sessions() as s:
        r3 = store.get_window(s, mid, 3).result
    edu = r3["drift"]["features"]["EDUCATION"]
    assert edu["kind"] == "categorical" and "7" in edu["new_categories"]
    w3 = pd.read_csv(SHIFT / "incoming" / "window_3.csv")
    assert edu["unseen_share"] == pytest.approx((w3["EDUCATION"] == 7).mean(), abs=1e-12)
    assert r3["trend"]["windows"] == 3 and len(r3["trend"]["air"]["age"]["18-25"]) == 3
    assert r3["performance"] is None  # no labels in the window file


def test_profile_stored_once_and_rebuilt_only_when_reference_changes(db, tmp_path):
    sessions, _data_dir, mspec, mid = _setup(db, tmp_path)
    with sessions() as s:
        row = store.get_monitor(s, None, mid)
        sha1, created = row.profile_sha256, row.profile
        ensure_monitor(s, mspec)
        s.commit()
        assert store.get_monitor(s, None, mid).profile == created  # not rebuilt
    assert sha1 and len(created) < 400_000  # compact


def test_delayed_labels_fill_in_auc(db, tmp_path, booster):
    sessions, data_dir, _mspec, mid = _setup(db, tmp_path)
    for _ in range(3):
        run_window(sessions, mid, data_dir=data_dir, deliver_alerts=False)
    labels = pd.read_csv(SHIFT / "labels" / "window_3.csv")
    result = post_labels(sessions, mid, 3, labels)
    w3 = pd.read_csv(SHIFT / "incoming" / "window_3.csv")
    y = labels.set_index("ID").loc[w3["ID"], TARGET].to_numpy()
    auc = roc_auc_score(y, _predict(booster, w3))
    perf = result["performance"]
    assert perf["auc"] == pytest.approx(auc, abs=1e-9)
    assert perf["auc_ci"][0] < perf["auc"] < perf["auc_ci"][1]
    assert perf["event_rate"] == pytest.approx(y.mean())
    assert perf["calibration"]["observed_rate"] == pytest.approx(y.mean())
    assert history(sessions, mid)["windows"][2]["auc"] == pytest.approx(auc, abs=1e-9)
    # bad labels: missing target, wrong length without ids
    with pytest.raises(InputError, match="no column 'default.payment.next.month'"):
        post_labels(sessions, mid, 3, labels.rename(columns={TARGET: "y"}))
    with pytest.raises(InputError, match="4999 label rows for a window of 5000 rows"):
        post_labels(sessions, mid, 3, labels[[TARGET]].iloc[1:])


def test_parquet_window_streamed_in_chunks_equals_csv_window(tmp_path):
    """A Parquet window read in 1000-row batches gives the numbers of the same rows read whole."""
    from service.monitoring.monitor import build_reference_profile, compute_window, load_runtime

    mspec = load_monitor(write_monitor(tmp_path, chunk_rows=1000, exact_max_rows=0))
    rt = load_runtime(mspec)
    prof, _ = build_reference_profile(rt)
    csv = SHIFT / "incoming" / "window_3.csv"
    pq_path = tmp_path / "window_3.parquet"
    pd.read_csv(csv).to_parquet(pq_path, index=False, row_group_size=1500)
    whole, _ = compute_window(rt, prof, csv, rng=np.random.default_rng(0), n_boot=0)
    streamed, scores = compute_window(rt, prof, pq_path, rng=np.random.default_rng(0), n_boot=0)
    assert streamed["rows"] == whole["rows"] == 5000 and scores is not None and len(scores) == 5000
    for f, d in whole["drift"]["features"].items():
        s = streamed["drift"]["features"][f]
        for key in ("psi", "ks", "wasserstein", "js", "chi2", "missing_rate"):
            if d.get(key) is None:
                assert s.get(key) is None, (f, key)
            else:
                assert s.get(key) == pytest.approx(d[key], rel=1e-9, abs=1e-12), (f, key)
    ref = pd.read_csv(SHIFT / "reference.csv")["BILL_AMT1"].to_numpy(float)
    cur = pd.read_csv(csv)["BILL_AMT1"].to_numpy(float)
    assert streamed["drift"]["features"]["BILL_AMT1"]["psi"] == pytest.approx(_psi(ref, cur), abs=1e-12)
