"""`assay audit` end to end: outputs, exit codes, bad inputs, atomic writes, determinism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES, GERMAN_SPEC, run_cli

GERMAN = FIXTURES / "german_credit"


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    """A copy of the German fixture whose spec the test can edit."""
    for name in ("german_credit.csv", "model.skops", "reasons.yaml"):
        shutil.copy(GERMAN / name, tmp_path / name)
    return tmp_path


def write_spec(workdir: Path, **changes) -> Path:
    spec = yaml.safe_load(GERMAN_SPEC.read_text())
    for key, value in changes.items():
        node = spec
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        last = parts[-1]
        if value is _DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    path = workdir / "audit.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


_DELETE = object()


def strip_volatile(doc: dict) -> dict:
    meta = dict(doc["meta"])
    for key in ("run_id", "created_at", "finished_at"):
        meta.pop(key)
    return {**doc, "meta": meta}


def test_audit_writes_json_and_is_deterministic(tmp_path):
    a = run_cli("audit", str(GERMAN_SPEC), "--out", str(tmp_path / "a"), "-q")
    b = run_cli("audit", str(GERMAN_SPEC), "--out", str(tmp_path / "b"), "-q")
    assert a.returncode == 0, a.stderr
    assert b.returncode == 0, b.stderr
    ja = json.loads((tmp_path / "a" / "audit.json").read_text())
    jb = json.loads((tmp_path / "b" / "audit.json").read_text())
    assert ja["meta"]["run_id"] != jb["meta"]["run_id"]
    assert strip_volatile(ja) == strip_volatile(jb)
    assert ja["schema_version"] == "1"
    assert {"data", "performance"} <= set(ja["sections"])
    assert ja["meta"]["inputs"]["dataset"]["rows"] == 1000
    assert ja["meta"]["seed"] == 20261203
    assert "wrote audit.json" in a.stdout
    # no temporary files left behind
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]


def test_seed_changes_only_random_parts(tmp_path):
    a = run_cli("audit", str(GERMAN_SPEC), "--out", str(tmp_path / "a"), "-q", "--seed", "1")
    b = run_cli("audit", str(GERMAN_SPEC), "--out", str(tmp_path / "b"), "-q", "--seed", "2")
    assert a.returncode == b.returncode == 0
    pa = json.loads((tmp_path / "a" / "audit.json").read_text())["sections"]["performance"]["splits"]["dev"]
    pb = json.loads((tmp_path / "b" / "audit.json").read_text())["sections"]["performance"]["splits"]["dev"]
    assert pa["auc"] == pb["auc"]  # point estimates do not depend on the seed
    assert pa["auc_ci"] != pb["auc_ci"]  # bootstrap intervals do


def test_fail_on_gate(workdir):
    # a policy no model meets guarantees a high finding (AUC below auc_min)
    spec = write_spec(workdir, **{"policy": {"auc_min": 0.99}})
    below = run_cli("audit", str(spec), "--out", str(workdir / "a"), "-q", "--fail-on", "critical")
    assert below.returncode == 0, below.stderr
    doc = json.loads((workdir / "a" / "audit.json").read_text())
    weak = [f for f in doc["findings"] if f["metric"] == "auc"]
    assert weak and weak[0]["severity"] == "high" and weak[0]["threshold_source"] == "policy"
    gate = run_cli("audit", str(spec), "--out", str(workdir / "b"), "-q", "--fail-on", "high")
    assert gate.returncode == 3
    assert (workdir / "b" / "audit.json").exists()  # the gate still writes the evidence
    bad = run_cli("audit", str(spec), "--out", str(workdir / "c"), "--fail-on", "severe")
    assert bad.returncode == 2 and "not a severity" in bad.stderr


BAD_SPECS = [
    ({"colour": "blue"}, "unknown key 'colour'"),
    ({"target": _DELETE}, "required key 'target' is missing"),
    ({"target": "no_such_column"}, "column 'no_such_column' (from spec key 'target') is not in the data"),
    ({"event_value": 7}, "event_value 7 never occurs in target column 'label_bad'"),
    ({"protected.0.reference": "martian"}, "reference group 'martian' does not occur in column 'sex'"),
    (
        {"protected.0.column": "nope"},
        "column 'nope' (from spec key 'protected[sex].column') is not in the data",
    ),
    ({"score.threshold": 1.5}, "score.threshold 1.5 is outside the range of the scores"),
    ({"score.direction": "sideways"}, "score.direction"),
    ({"dataset": "missing.csv"}, "file not found"),
    ({"model": "missing.skops"}, "model file not found"),
    ({"target": "sex", "event_value": "male", "protected": []}, None),  # valid: a string target works
    (
        {
            "regimes": [
                {"name": "a", "start": "2008-01-01", "end": "2009-01-01"},
                {"name": "b", "start": "2008-06-01", "end": "2010-01-01"},
            ]
        },
        "regimes 'a' and 'b' overlap",
    ),
]


@pytest.mark.parametrize(("changes", "message"), BAD_SPECS)
def test_bad_specs_exit_2_with_message(workdir, changes, message):
    spec = write_spec(workdir, **changes)
    res = run_cli("audit", str(spec), "--out", str(workdir / "out"), "-q")
    if message is None:
        assert res.returncode == 0, res.stderr
        return
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not (workdir / "out" / "audit.json").exists()


def test_one_class_target(workdir):
    import pandas as pd

    df = pd.read_csv(workdir / "german_credit.csv")
    df["label_bad"] = 1
    df.to_csv(workdir / "german_credit.csv", index=False)
    res = run_cli("audit", str(write_spec(workdir)), "--out", str(workdir / "out"), "-q")
    assert res.returncode == 2
    assert "has one class only" in res.stderr


def test_invalid_yaml_and_json(workdir):
    bad = workdir / "bad.yaml"
    bad.write_text("model_name: [unclosed\n")
    res = run_cli("audit", str(bad), "--out", str(workdir / "o"))
    assert res.returncode == 2 and "not valid YAML" in res.stderr
    badj = workdir / "bad.json"
    badj.write_text("{not json")
    res = run_cli("audit", str(badj), "--out", str(workdir / "o"))
    assert res.returncode == 2 and "not valid JSON" in res.stderr
    lst = workdir / "list.yaml"
    lst.write_text("- a\n- b\n")
    res = run_cli("audit", str(lst), "--out", str(workdir / "o"))
    assert res.returncode == 2 and "must be a mapping" in res.stderr


def test_json_spec_equivalent_to_yaml(workdir):
    spec = yaml.safe_load(GERMAN_SPEC.read_text())
    (workdir / "audit.json").write_text(json.dumps(spec))
    res = run_cli("audit", str(workdir / "audit.json"), "--out", str(workdir / "o"), "-q")
    assert res.returncode == 0, res.stderr


def test_failed_render_leaves_nothing(tmp_path, german_spec):
    """A failure after audit.json is produced must not leave audit.json (or temp files) behind."""
    from service.runs import build_result, write_outputs

    result = build_result(german_spec)

    def broken(_result, _payload, _path):
        raise RuntimeError("renderer crashed")

    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        write_outputs(result, out, renderers={"report.pdf": broken})
    assert list(out.iterdir()) == []


def test_existing_outputs_survive_a_failed_run(workdir):
    out = workdir / "out"
    good = run_cli("audit", str(write_spec(workdir)), "--out", str(out), "-q")
    assert good.returncode == 0
    before = (out / "audit.json").read_bytes()
    bad = run_cli("audit", str(write_spec(workdir, target="nope")), "--out", str(out), "-q")
    assert bad.returncode == 2
    assert (out / "audit.json").read_bytes() == before


def test_usage_error_is_exit_2():
    res = run_cli("audit")
    assert res.returncode == 2
    assert "Missing argument" in res.stderr
