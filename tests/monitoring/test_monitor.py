"""Monitors end to end (in process): oldest-first windows, stored profile reuse, history, delayed labels."""

from __future__ import annotations

import json
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
    spath = tmp_path / "scores.parquet"
    streamed, n = compute_window(rt, prof, pq_path, rng=np.random.default_rng(0), n_boot=0, scores_path=spath)
    assert streamed["rows"] == whole["rows"] == 5000 and n == 5000
    # the per-row scores kept for delayed labels were appended batch by batch: all rows, in order
    scores = pd.read_parquet(spath)
    booster = lgb.Booster(model_file=str(SHIFT.parent / "taiwan" / "model.txt"))
    w3 = pd.read_csv(csv)
    assert scores["id"].tolist() == w3["ID"].astype(str).tolist()
    np.testing.assert_allclose(scores["risk"], _predict(booster, w3), rtol=1e-12)
    assert (scores["adverse"] == (scores["risk"] >= 0.35)).all()
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


def test_failed_window_is_skipped_by_the_schedule_and_retried_when_named(db, tmp_path, monkeypatch):
    import service.monitoring.monitor as monitor_mod

    sessions, data_dir, _mspec, mid = _setup(db, tmp_path)
    real = monitor_mod.compute_window
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full while reading")
        return real(*args, **kwargs)

    monkeypatch.setattr(monitor_mod, "compute_window", flaky)
    with pytest.raises(OSError, match="disk full"):
        run_window(sessions, mid, data_dir=data_dir, deliver_alerts=False)
    with sessions() as s:
        failed = store.get_window(s, mid, 1)
        assert failed.status == "failed" and "disk full" in failed.error
        failed_path = Path(failed.source)
    nxt = run_window(sessions, mid, data_dir=data_dir, deliver_alerts=False)  # the next file, not a retry
    assert nxt.seq == 2 and Path(nxt.result["window"]["source"]).name != failed_path.name
    again = run_window(sessions, mid, data_dir=data_dir, path=failed_path, deliver_alerts=False)
    assert again.seq == 1 and again.result["window"]["seq"] == 1  # retried in place
    with sessions() as s:
        assert [(w.seq, w.status) for w in store.windows(s, mid)] == [(1, "succeeded"), (2, "succeeded")]
    dup = run_window(sessions, mid, data_dir=data_dir, path=failed_path, deliver_alerts=False)
    assert dup.result is None and dup.message == f"{failed_path.name} was already processed (window 1)"


def test_stored_profile_is_used_without_the_reference_file(db, tmp_path):
    """Windows never re-read the reference: with the file gone the stored profile still serves."""
    import shutil

    import yaml

    _engine, sessions, data_dir = db
    ref = tmp_path / "reference.csv"
    shutil.copy(SHIFT / "reference.csv", ref)
    mpath = write_monitor(tmp_path)
    doc = yaml.safe_load(mpath.read_text())
    mpath.write_text(yaml.safe_dump({**doc, "reference": str(ref)}))
    notes: list[str] = []
    with sessions() as s:
        row = ensure_monitor(s, load_monitor(mpath), notes=notes)
        s.commit()
        mid, sha = row.id, row.profile_sha256
    assert notes and notes[0].startswith("profiled reference.csv (15,000 rows; no stored profile)")
    ref.unlink()
    notes.clear()
    with sessions() as s:
        assert ensure_monitor(s, load_monitor(mpath), notes=notes).profile_sha256 == sha
        s.commit()
    assert notes == [f"reference file reference.csv not found: using the stored profile {sha}"]
    out = run_window(sessions, mid, data_dir=data_dir, deliver_alerts=False)
    assert out.result["window"]["profile_sha256"] == sha and out.result["rows"] == 5000
    # a changed score threshold makes the stored profile stale (adverse decisions, AIR): refuse ...
    audit = yaml.safe_load((SHIFT / "audit.yaml").read_text())
    audit["model"] = str(SHIFT.parent / "taiwan" / "model.txt")
    audit["dataset"] = str(SHIFT / "reference.csv")
    audit.pop("oot_dataset")
    audit["score"]["threshold"] = 0.5
    apath = tmp_path / "audit.yaml"
    apath.write_text(yaml.safe_dump(audit))
    mpath.write_text(yaml.safe_dump({**doc, "reference": str(ref), "audit": str(apath)}))
    with sessions() as s, pytest.raises(InputError, match="model or the audit spec changed"):
        ensure_monitor(s, load_monitor(mpath))
    # ... and rebuild once the reference is back
    shutil.copy(SHIFT / "reference.csv", ref)
    notes.clear()
    with sessions() as s:
        row = ensure_monitor(s, load_monitor(mpath), notes=notes)
        s.commit()
        assert row.profile_sha256 != sha
        prof = json.loads(row.profile)
    assert "the model or the audit spec changed" in notes[0]
    expected = (_predict(lgb.Booster(model_file=audit["model"]), pd.read_csv(ref)) >= 0.5).mean()
    assert prof["adverse_rate"] == pytest.approx(expected, abs=1e-12)


def test_taiwan_synthetic_shift_is_found(tmp_path, booster):
    """The documented window-3 shift (fixtures/taiwan_shift/SOURCE.md) raises what the README says:
    PAY_0 and EDUCATION amber, code 7 new, score adverse rate up, AIR of 18-25 below 0.8 with an alert;
    window 1 (unchanged rows) raises no fairness alert. AIR recomputed with LightGBM + pandas."""
    from scipy import stats

    from service.monitoring.monitor import build_reference_profile, compute_window, load_runtime

    rt = load_runtime(load_monitor(SHIFT / "monitor.yaml"))
    prof, _ = build_reference_profile(rt)
    res = {
        name: compute_window(rt, prof, SHIFT / "incoming" / name, rng=np.random.default_rng(0), n_boot=200)[0]
        for name in ("window_1.csv", "window_3.csv")
    }
    w3 = pd.read_csv(SHIFT / "incoming" / "window_3.csv")
    fav = pd.Series(_predict(booster, w3) < 0.35)
    band = pd.cut(w3["AGE"], [18, 25, 40, 62, 120], right=False).astype(str)
    rate = fav.groupby(band).mean()
    young = res["window_3.csv"]["fairness"]["attributes"]["age"]["groups"]["18-25"]
    assert young["n"] == (band == "[18, 25)").sum()
    assert (
        young["air"] == pytest.approx(rate["[18, 25)"] / rate["[25, 40)"], rel=1e-12) and young["air"] < 0.8
    )
    x1, n1 = fav[band == "[18, 25)"].sum(), (band == "[18, 25)").sum()
    x0, n0 = fav[band == "[25, 40)"].sum(), (band == "[25, 40)").sum()
    p = (x1 + x0) / (n1 + n0)
    z = (x1 / n1 - x0 / n0) / np.sqrt(p * (1 - p) * (1 / n1 + 1 / n0))
    assert young["air_p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-6) and young["alert"]
    assert young["air_ci"][1] < 0.85 and young["reference_air"] > 0.85
    f3 = res["window_3.csv"]["drift"]["features"]
    assert f3["PAY_0"]["traffic_light"] == "amber" and f3["EDUCATION"]["traffic_light"] == "amber"
    assert f3["EDUCATION"]["new_categories"] == ["7"]
    pred = res["window_3.csv"]["prediction"]
    assert (
        pred["adverse_rate"] == pytest.approx(1 - fav.mean(), abs=1e-12)
        and pred["adverse_rate_p_value"] < 1e-6
    )
    titles = [a["title"] for a in res["window_3.csv"]["alerts"]]
    assert "Adverse impact ratio below the threshold for age=18-25" in titles
    assert not any(a["section"] == "fairness" for a in res["window_1.csv"]["alerts"])
    assert res["window_1.csv"]["drift"]["score"]["traffic_light"] == "green"
