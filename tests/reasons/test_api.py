"""``POST /v1/reasons``: same records as the in-process engine, problem+json on bad input, org isolation."""

from __future__ import annotations

import json

import pandas as pd

from service.config import load_spec
from service.reasons.service import build_engine, explain
from tests.api.conftest import GERMAN, api, assert_problem, german_spec_body, german_uploaded  # noqa: F401


def _apps(n: int = 25) -> list[dict]:
    df = pd.read_csv(GERMAN / "german_credit.csv").iloc[:n]
    return json.loads(df.to_json(orient="records"))


def test_reasons_match_the_engine(api, german_uploaded):  # noqa: F811
    ds, mdl = german_uploaded
    body = {"spec": german_spec_body(ds, mdl), "applicants": _apps(), "proxy_screen": False}
    r = api.client.post("/v1/reasons", json=body, headers=api.a.h("auditor"))
    assert r.status_code == 200, r.text
    out = r.json()
    spec = load_spec(GERMAN / "audit.yaml")
    want = explain(
        build_engine(spec, proxy_screen=False, use_cache=False),
        spec,
        pd.read_csv(GERMAN / "german_credit.csv").iloc[:25],
        source="x",
    )
    assert [x["decision"] for x in out["records"]] == [w["decision"] for w in want]
    assert [x["reasons"] for x in out["records"]] == [w["reasons"] for w in want]
    assert out["reference"] == "marginal" and out["method"] == "exact linear"
    assert out["reference_version"] == want[0]["reference_version"]
    # second call hits the engine cache and gives identical records
    r2 = api.client.post("/v1/reasons", json=body, headers=api.a.h("auditor"))
    assert r2.json()["records"] == out["records"]


def test_reasons_bad_inputs_are_problems(api, german_uploaded):  # noqa: F811
    ds, mdl = german_uploaded
    apps = _apps(3)
    for a in apps:
        a.pop("savings")
    r = api.client.post(
        "/v1/reasons",
        json={"spec": german_spec_body(ds, mdl), "applicants": apps},
        headers=api.a.h("auditor"),
    )
    assert_problem(r, 422, "savings")
    spec = german_spec_body(ds, mdl)
    spec["reason_codes"] = "reasons.yaml"
    r = api.client.post(
        "/v1/reasons", json={"spec": spec, "applicants": _apps(2)}, headers=api.a.h("auditor")
    )
    assert_problem(r, 422, "reason_codes")
    r = api.client.post(
        "/v1/reasons", json={"spec": german_spec_body(ds, mdl), "applicants": []}, headers=api.a.h("auditor")
    )
    assert r.status_code == 422
    # another organisation's upload ids are unknown ids; viewers may not compute reasons
    r = api.client.post(
        "/v1/reasons",
        json={"spec": german_spec_body(ds, mdl), "applicants": _apps(2)},
        headers=api.b.h("auditor"),
    )
    assert_problem(r, 422, "no dataset")
    r = api.client.post(
        "/v1/reasons",
        json={"spec": german_spec_body(ds, mdl), "applicants": _apps(2)},
        headers=api.a.h("viewer"),
    )
    assert r.status_code == 403


def test_reasons_errors_name_upload_ids_not_server_paths(api, german_uploaded):  # noqa: F811
    ds, mdl = german_uploaded
    spec = german_spec_body(ds, mdl)
    spec["target"] = "no_such_target"
    r = api.client.post(
        "/v1/reasons", json={"spec": spec, "applicants": _apps(2)}, headers=api.a.h("auditor")
    )
    body = assert_problem(r, 422, "no_such_target", ds)
    assert str(api.data_dir) not in body["detail"]


def test_reasons_write_one_audit_log_row_per_request(api, german_uploaded):  # noqa: F811
    ds, mdl = german_uploaded
    body = {"spec": german_spec_body(ds, mdl), "applicants": _apps(5), "proxy_screen": False}
    rids = []
    for _ in range(2):  # the second request takes the cached (resolved) spec
        r = api.client.post("/v1/reasons", json=body, headers=api.a.h("auditor"))
        assert r.status_code == 200, r.text
        rids.append(r.headers["x-request-id"])
    declined = sum(x["decision"] == "adverse" for x in r.json()["records"])
    log = api.client.get("/v1/audit-log", headers=api.a.h("admin")).json()["items"]
    rows = [e for e in log if e["action"] == "reasons.create"]
    assert sorted(e["request_id"] for e in rows) == sorted(rids)
    for e in rows:
        assert e["target"] is None and e["key_id"] == api.a.keys["auditor"].split("_", 2)[1]
        assert e["at"].startswith("20")  # the column default applies to the pre-built INSERT too
        assert e["detail"] == {
            "applicants": 5,
            "declined": declined,
            "reference_version": r.json()["reference_version"],
        }


def test_a_cached_spec_is_not_shared_across_organisations(api, german_uploaded):  # noqa: F811
    """Organisation a's request resolves and caches the spec; b's identical body still gets a 422."""
    ds, mdl = german_uploaded
    body = {"spec": german_spec_body(ds, mdl), "applicants": _apps(2), "proxy_screen": False}
    assert api.client.post("/v1/reasons", json=body, headers=api.a.h("auditor")).status_code == 200
    r = api.client.post("/v1/reasons", json=body, headers=api.b.h("auditor"))
    assert_problem(r, 422, "no dataset")
    assert api.client.post("/v1/reasons", json=body, headers=api.a.h("viewer")).status_code == 403


def test_a_missing_feature_value_is_a_422_naming_the_column(api, german_uploaded):  # noqa: F811
    """The fixture's pipeline has no imputer: scikit-learn refuses NaN, which is bad input, not a 500."""
    ds, mdl = german_uploaded
    apps = _apps(3)
    apps[1]["duration_months"] = None
    r = api.client.post(
        "/v1/reasons",
        json={"spec": german_spec_body(ds, mdl), "applicants": apps, "proxy_screen": False},
        headers=api.a.h("auditor"),
    )
    body = assert_problem(r, 422, "duration_months", "missing values")
    assert body["field"] == "duration_months"
