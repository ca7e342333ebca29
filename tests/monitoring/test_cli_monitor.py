"""``assay monitor`` as a user runs it: bad monitor files exit 2 naming the key; run → labels → history."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import run_cli
from tests.monitoring.conftest import SHIFT, write_monitor

TARGET = "default.payment.next.month"


def _bad(tmp_path, doc: dict) -> str:
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(doc))
    return str(p)


def _inproc(monkeypatch, capsys, data_dir, *args: str) -> tuple[int, str, str]:
    """``assay ARGS`` through the console-script entry point, in this process (fast)."""
    import sys

    from service import cli

    monkeypatch.setenv("ASSAY_DATA_DIR", str(data_dir))
    monkeypatch.setattr(sys, "argv", ["assay", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


GOOD = {
    "name": "m",
    "audit": str(SHIFT / "audit.yaml"),
    "reference": str(SHIFT / "reference.csv"),
    "source": str(SHIFT / "incoming" / "*.csv"),
}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"colour": "red"}, "colour", "unknown key 'colour'"),
        ({"schedule": "every monday"}, "schedule", "not a 5-field cron expression"),
        ({"schedule": "0 6 * * 9"}, "schedule", "day of week '9' is not in 0-7"),
        ({"alerts": [{"webhook": "ftp://x"}]}, "alerts.0.webhook", "must be an http(s) URL"),
        ({"reference": None}, "reference", "Input should be a valid string"),
        ({"trend_windows": 1}, "trend_windows", "greater than or equal to 2"),
    ],
)
def test_bad_monitor_file_exits_2_naming_the_key(tmp_path, monkeypatch, capsys, change, field, message):
    doc = {**GOOD, **change}
    code, _out, err = _inproc(monkeypatch, capsys, tmp_path / "d", "monitor", "run", _bad(tmp_path, doc))
    assert code == 2, err
    assert f"field '{field}'" in err and message in err
    assert "Traceback" not in err


def test_missing_reference_and_bad_categorical_exit_2(tmp_path, monkeypatch, capsys):
    env = {"ASSAY_DATA_DIR": str(tmp_path / "d")}
    r = run_cli(
        "monitor", "run", _bad(tmp_path, {**GOOD, "reference": "nope.csv"}), env=env
    )  # a real process
    assert r.returncode == 2 and "field 'reference': reference file not found" in r.stderr
    assert "Traceback" not in r.stderr
    bad = _bad(tmp_path, {**GOOD, "categorical": ["SEX"]})
    code, _out, err = _inproc(monkeypatch, capsys, tmp_path / "d", "monitor", "run", bad)
    assert code == 2 and "field 'categorical': 'SEX' is not a model feature" in err
    code, _out, err = _inproc(
        monkeypatch, capsys, tmp_path / "d", "monitor", "run", str(tmp_path / "absent.yaml")
    )
    assert code == 2 and "file not found" in err


def test_run_labels_history_report(tmp_path):
    env = {"ASSAY_DATA_DIR": str(tmp_path / "d")}
    mon = str(write_monitor(tmp_path))
    out = tmp_path / "w1.json"
    r = run_cli("monitor", "run", mon, "--out", str(out), "-q", env=env)
    assert r.returncode == 0, r.stderr
    assert "window 1 (window_2.csv): 5000 rows" in r.stdout
    w = json.loads(out.read_text())
    ref = pd.read_csv(SHIFT / "reference.csv")["LIMIT_BAL"].to_numpy(float)
    cur = pd.read_csv(SHIFT / "incoming" / "window_2.csv")["LIMIT_BAL"].to_numpy(float)
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    # SPEC bins (−∞,e1], (e1,e2], …, (ek,∞): counts from "≤ edge" comparisons
    e = np.maximum(np.diff([0, *[(ref <= x).sum() for x in edges], ref.size]) / ref.size, 1e-4)
    a = np.maximum(np.diff([0, *[(cur <= x).sum() for x in edges], cur.size]) / cur.size, 1e-4)
    psi = float(np.sum((a - e) * np.log(a / e)))
    assert w["drift"]["features"]["LIMIT_BAL"]["psi"] == pytest.approx(psi, abs=1e-12)
    r = run_cli("monitor", "run", mon, "--file", str(SHIFT / "incoming" / "window_3.csv"), "-q", env=env)
    assert r.returncode == 0 and "window 2 (window_3.csv)" in r.stdout, r.stderr
    lab = tmp_path / "w3.json"
    labels = str(SHIFT / "labels" / "window_3.csv")
    r = run_cli("monitor", "labels", mon, labels, "--window", "2", "--out", str(lab), "-q", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(lab.read_text())["performance"]["n"] == 5000
    hist = tmp_path / "h.json"
    r = run_cli("monitor", "history", mon, "--out", str(hist), "-q", env=env)
    assert r.returncode == 0
    h = json.loads(hist.read_text())
    assert [p["seq"] for p in h["windows"]] == [1, 2] and h["windows"][1]["auc"] is not None
    assert h["windows"][0]["auc"] is None  # no labels for window 1 yet
    # the monitoring PDF: trend charts and the latest window's drift, numbers as computed above
    from pypdf import PdfReader

    pdf = tmp_path / "monitoring.pdf"
    r = run_cli("monitor", "report", mon, "--out", str(pdf), "-q", env=env)
    assert r.returncode == 0, r.stderr
    assert pdf.read_bytes()[:5] == b"%PDF-" and not (tmp_path / "monitoring.pdf.tmp").exists()
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    cur3 = pd.read_csv(SHIFT / "incoming" / "window_3.csv")["LIMIT_BAL"].to_numpy(float)
    a3 = np.maximum(np.diff([0, *[(cur3 <= x).sum() for x in edges], cur3.size]) / cur3.size, 1e-4)
    psi3 = float(np.sum((a3 - e) * np.log(a3 / e)))
    assert "Monitoring report: taiwan-test" in text and "Trends" in text
    assert f"LIMIT_BAL numeric {psi3:.3f}" in text  # latest window (window_3.csv), PSI from the SPEC formula
    assert "psi_amber 0.1 policy" in text and "air_min 0.8 default" in text  # thresholds labelled
    assert len(PdfReader(pdf).pages) >= 2
    # the latest window's fairness table: AIR of 18-25 from LightGBM + pandas, and its alert
    import lightgbm as lgb

    w3 = pd.read_csv(SHIFT / "incoming" / "window_3.csv")
    booster = lgb.Booster(model_file=str(SHIFT.parent / "taiwan" / "model.txt"))
    fav = pd.Series(booster.predict(w3[booster.feature_name()].astype(float).to_numpy()) < 0.35)
    band = pd.cut(w3["AGE"], [18, 25, 40, 62, 120], right=False).astype(str)
    air = fav[band == "[18, 25)"].mean() / fav[band == "[25, 40)"].mean()
    row = next(line for line in text.splitlines() if line.startswith("age = 18-25"))
    assert f" {air:.3f} " in row and row.endswith("yes"), row
    assert "Adverse impact ratio below the threshold for age=18-25" in text


def test_bad_window_and_labels_inputs_exit_2_naming_file_field_expected(tmp_path, monkeypatch, capsys):
    d = tmp_path / "d"
    mon = str(write_monitor(tmp_path))
    labels = str(SHIFT / "labels" / "window_3.csv")
    cases = [
        (("monitor", "run", mon, "--file", "nope.csv"), "nope.csv: field '--file': file not found"),
        (
            ("monitor", "run", mon, "--file", labels),
            f"{labels}: field 'features': column 'LIMIT_BAL' is missing from the window. Expected: the "
            "model's feature columns",
        ),
    ]
    for args, message in cases:
        code, _out, err = _inproc(monkeypatch, capsys, d, *args)
        assert code == 2 and message in err and "Traceback" not in err, err
    code, out, err = _inproc(monkeypatch, capsys, d, "monitor", "run", mon, "-q")
    assert code == 0 and "window 2 (window_2.csv)" in out, err  # window 1 is the failed one above
    w1 = str(SHIFT / "incoming" / "window_1.csv")
    code, _out, err = _inproc(monkeypatch, capsys, d, "monitor", "labels", mon, w1, "--window", "2", "-q")
    assert code == 2 and f"{w1}: field 'target': the labels have no column '{TARGET}'" in err, err
    code, _out, err = _inproc(monkeypatch, capsys, d, "monitor", "labels", mon, labels, "--window", "9", "-q")
    assert code == 2 and "window '9'" in err and "succeeded windows: 2" in err, err
    code, _out, err = _inproc(monkeypatch, capsys, d, "monitor", "labels", mon, labels, "-q")
    assert code == 2 and "--window" in err, err  # a required option, as a usage error
    doc = yaml.safe_load(Path(mon).read_text())
    doc.pop("source")
    code, _out, err = _inproc(monkeypatch, capsys, d, "monitor", "run", _bad(tmp_path, doc), "-q")
    assert code == 2 and "field 'source': the monitor has no source" in err and "--file FILE" in err, err


def test_evidently_html_export_of_a_window(tmp_path, monkeypatch, capsys):
    """``--evidently-html`` writes evidently's DataDriftPreset report for the window just run."""
    import os

    from service.monitoring import export

    sample = export._sample
    monkeypatch.setattr(export, "_sample", lambda frame, _max, seed: sample(frame, 2000, seed))  # speed
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    html = tmp_path / "ev" / "window.html"
    mon = str(write_monitor(tmp_path))
    w3 = str(SHIFT / "incoming" / "window_3.csv")
    code, out, err = _inproc(
        monkeypatch,
        capsys,
        tmp_path / "d",
        "monitor",
        "run",
        mon,
        "--file",
        w3,
        "--evidently-html",
        str(html),
    )
    assert code == 0, err
    assert f"wrote evidently report: {html}" in out and "window 1 (window_3.csv)" in out
    text = html.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html") or "<html" in text[:2000].lower()
    assert "Drift for column PAY_0" in text and "Drift for column EDUCATION" in text  # one per feature
    assert os.path.getsize(html) > 100_000
