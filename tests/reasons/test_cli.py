"""``assay reasons`` end to end (subprocess, as a user runs it): JSON/CSV output, exit code 2 on bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import yaml

from service.config import load_spec
from service.reasons.service import build_engine, explain
from tests.conftest import FIXTURES, run_cli

GERMAN = FIXTURES / "german_credit"


def test_cli_json_and_csv_match_the_engine(tmp_path):
    apps = pd.read_csv(GERMAN / "german_credit.csv").iloc[:60]
    apps.to_csv(tmp_path / "apps.csv", index=False)
    r = run_cli(
        "reasons",
        str(GERMAN / "audit.yaml"),
        "--applicants",
        str(tmp_path / "apps.csv"),
        "--out",
        str(tmp_path / "out.json"),
        "--no-proxy-screen",
        "-q",
    )
    assert r.returncode == 0, r.stderr
    got = json.loads((tmp_path / "out.json").read_text())
    spec = load_spec(GERMAN / "audit.yaml")
    want = explain(build_engine(spec, proxy_screen=False, use_cache=False), spec, apps, source="apps.csv")
    assert [g["decision"] for g in got] == [w["decision"] for w in want]
    assert [[x["code"] for x in g["reasons"]] for g in got] == [
        [x["code"] for x in w["reasons"]] for w in want
    ]
    np.testing.assert_allclose([g["score"] for g in got], [w["score"] for w in want], atol=1e-12)
    assert sum(g["decision"] == "adverse" for g in got) > 0
    assert all(g["reasons"] == [] for g in got if g["decision"] == "favorable")
    assert f"{sum(g['decision'] == 'adverse' for g in got)} of 60 applicant(s) declined" in r.stdout

    r = run_cli(
        "reasons",
        str(GERMAN / "audit.yaml"),
        "--applicants",
        str(tmp_path / "apps.csv"),
        "--out",
        str(tmp_path / "out.csv"),
        "--no-proxy-screen",
        "-q",
    )
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert list(rows[0])[:7] == [
        "row",
        "id",
        "decision",
        "score",
        "reason_1_code",
        "reason_1_statement",
        "reason_1_contribution",
    ]
    assert [row["reason_1_code"] for row in rows] == [
        g["reasons"][0]["code"] if g["reasons"] else "" for g in got
    ]


def test_cli_missing_column_exits_2_and_names_it(tmp_path):
    pd.read_csv(GERMAN / "german_credit.csv").iloc[:10].drop(columns=["checking_status"]).to_csv(
        tmp_path / "apps.csv", index=False
    )
    r = run_cli(
        "reasons",
        str(GERMAN / "audit.yaml"),
        "--applicants",
        str(tmp_path / "apps.csv"),
        "--out",
        str(tmp_path / "out.json"),
        "--no-proxy-screen",
        "-q",
    )
    assert r.returncode == 2
    assert "checking_status" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out.json").exists()


def test_cli_bad_extension_and_missing_catalogue(tmp_path):
    r = run_cli(
        "reasons",
        str(GERMAN / "audit.yaml"),
        "--applicants",
        str(GERMAN / "german_credit.csv"),
        "--out",
        str(tmp_path / "out.xlsx"),
        "-q",
    )
    assert r.returncode == 2 and "--out" in r.stderr and ".json or .csv" in r.stderr
    d = yaml.safe_load((GERMAN / "audit.yaml").read_text())
    d.pop("reason_codes")
    d["dataset"] = str(GERMAN / d["dataset"])
    d["model"] = str(GERMAN / d["model"])
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(d))
    r = run_cli(
        "reasons",
        str(tmp_path / "spec.yaml"),
        "--applicants",
        str(GERMAN / "german_credit.csv"),
        "--out",
        str(tmp_path / "out.json"),
        "-q",
    )
    assert r.returncode == 2 and "reason_codes" in r.stderr and "Traceback" not in r.stderr
