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


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """One CLI run of the German demo spec, shared by the tests that compare another run with it."""
    out = tmp_path_factory.mktemp("baseline") / "a"
    res = run_cli("audit", str(GERMAN_SPEC), "--out", str(out), "-q", "--fail-on", "critical")
    assert res.returncode == 0, res.stderr  # no critical finding on German credit: the gate passes
    return res, out, json.loads((out / "audit.json").read_text())


def test_audit_writes_json_and_is_deterministic(tmp_path, baseline):
    a, a_dir, ja = baseline
    b = run_cli("audit", str(GERMAN_SPEC), "--out", str(tmp_path / "b"), "-q")
    assert b.returncode == 0, b.stderr
    jb = json.loads((tmp_path / "b" / "audit.json").read_text())
    assert ja["meta"]["run_id"] != jb["meta"]["run_id"]
    assert strip_volatile(ja) == strip_volatile(jb)
    assert ja["schema_version"] == "1"
    assert {"data", "performance"} <= set(ja["sections"])
    assert ja["meta"]["inputs"]["dataset"]["rows"] == 1000
    assert ja["meta"]["seed"] == 20261203
    assert "wrote audit.json" in a.stdout
    # no temporary files left behind
    assert not [p for p in a_dir.iterdir() if p.name.startswith(".")]


def test_seed_changes_only_random_parts(tmp_path, baseline):
    _, _, ja = baseline
    b = run_cli("audit", str(GERMAN_SPEC), "--out", str(tmp_path / "b"), "-q", "--seed", "2")
    assert b.returncode == 0, b.stderr
    jb = json.loads((tmp_path / "b" / "audit.json").read_text())
    assert jb["meta"]["seed"] == 2
    pa, pb = ja["sections"]["performance"]["splits"]["dev"], jb["sections"]["performance"]["splits"]["dev"]
    assert pa["auc"] == pb["auc"]  # point estimates do not depend on the seed
    assert pa["auc_ci"] != pb["auc_ci"]  # bootstrap intervals do
    assert ja["sections"]["data"] == jb["sections"]["data"]  # nothing random in the data section


def test_fail_on_gate(workdir):
    # a policy no model meets guarantees a high finding (AUC below auc_min)
    # (--fail-on critical on German credit, which has no critical finding, exits 0: see `baseline`)
    spec = write_spec(workdir, **{"policy": {"auc_min": 0.99}})
    gate = run_cli("audit", str(spec), "--out", str(workdir / "b"), "-q", "--fail-on", "high")
    assert gate.returncode == 3, gate.stderr
    assert "at or above 'high'" in gate.stderr
    doc = json.loads((workdir / "b" / "audit.json").read_text())  # the gate still writes the evidence
    weak = [f for f in doc["findings"] if f["metric"] == "auc"]
    assert weak and weak[0]["severity"] == "high" and weak[0]["threshold_source"] == "policy"
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


def test_json_spec_equivalent_to_yaml(workdir, baseline):
    spec = yaml.safe_load(GERMAN_SPEC.read_text())
    (workdir / "spec.json").write_text(json.dumps(spec))
    res = run_cli("audit", str(workdir / "spec.json"), "--out", str(workdir / "o"), "-q")
    assert res.returncode == 0, res.stderr
    doc = strip_volatile(json.loads((workdir / "o" / "audit.json").read_text()))
    ref = strip_volatile(baseline[2])
    # the same audit; only the spec file itself (name, bytes) differs
    assert doc["meta"]["inputs"]["spec"]["path"] == "spec.json"
    for d in (doc, ref):
        d["meta"] = {**d["meta"], "inputs": {**d["meta"]["inputs"], "spec": None}}
    assert doc == ref


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


def test_existing_outputs_survive_a_failed_run(workdir, baseline):
    out = workdir / "out"
    shutil.copytree(baseline[1], out)  # the outputs of an earlier good run
    before = {name: (out / name).read_bytes() for name in ("audit.json", "report.pdf")}
    bad = run_cli("audit", str(write_spec(workdir, target="nope")), "--out", str(out), "-q")
    assert bad.returncode == 2
    assert {name: (out / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in out.iterdir()) == ["audit.json", "report.pdf"]  # no temp files


def test_usage_error_is_exit_2():
    res = run_cli("audit")
    assert res.returncode == 2
    assert "Missing argument" in res.stderr
