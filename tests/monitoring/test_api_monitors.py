"""``/v1/monitors`` (SPEC.md §6b): create from uploads, push windows, delayed labels, history, isolation.

Numbers are checked against direct computations (numpy deciles for PSI, LightGBM + scikit-learn for
AUC), not against the CLI's output.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from tests.monitoring.conftest import SHIFT

TARGET = "default.payment.next.month"


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    e = np.maximum(np.diff([0, *[(ref <= x).sum() for x in edges], ref.size]) / ref.size, 1e-4)
    a = np.maximum(np.diff([0, *[(cur <= x).sum() for x in edges], cur.size]) / cur.size, 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


class _Api:
    def __init__(self, app: Any, client: Any) -> None:
        from service.store import repo
        from service.store.db import session_scope

        self.app, self.client, self.keys = app, client, {}
        with session_scope(app.state.sessions) as s:
            for org in ("org-a", "org-b"):
                o = repo.get_or_create_org(s, org)
                for role in ("viewer", "auditor"):
                    self.keys[(org, role)] = repo.create_key(s, o.id, role).key

    def h(self, org: str = "org-a", role: str = "auditor") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[(org, role)]}"}

    def upload(self, kind: str, path: Any, org: str = "org-a") -> str:
        files = {"file": (path.name, path.read_bytes())}
        r = self.client.post(f"/v1/{kind}", headers=self.h(org), files=files)
        assert r.status_code in (200, 201), r.text  # 200: the same bytes were uploaded before
        return str(r.json()["id"])


@pytest.fixture()
def api(tmp_path):
    from fastapi.testclient import TestClient

    from service.api.app import create_app
    from service.config import Settings

    app = create_app(Settings(data_dir=tmp_path / "data", log_level="WARNING"), start_jobs=False)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield _Api(app, client)
    finally:
        app.state.engine.dispose()


def _body(api: _Api, **over: Any) -> dict[str, Any]:
    spec = yaml.safe_load((SHIFT / "audit.yaml").read_text())
    spec.pop("dataset"), spec.pop("oot_dataset")
    spec["model"] = api.upload("models", SHIFT.parent / "taiwan" / "model.txt")
    body = {
        "name": "taiwan-api",
        "audit": spec,
        "reference": api.upload("datasets", SHIFT / "reference.csv"),
        "categorical": ["EDUCATION"],
        "bootstrap": 50,
    }
    return {**body, **over}


def _problem(r: Any, status: int, *needles: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    j = r.json()
    text = " ".join(str(j.get(k) or "") for k in ("detail", "field", "expected"))
    for n in needles:
        assert n in text, j


def test_monitor_windows_labels_history(api):
    r = api.client.post("/v1/monitors", headers=api.h(), json=_body(api))
    assert r.status_code == 201, r.text
    mon = r.json()
    mid = mon["id"]
    ref = pd.read_csv(SHIFT / "reference.csv")
    assert mon["reference_rows"] == len(ref) and "LIMIT_BAL" in mon["features"]
    assert sorted(mon["protected"]) == ["age", "sex"]

    ids = {}
    for name in ("window_1.csv", "window_3.csv"):
        ids[name] = api.upload("datasets", SHIFT / "incoming" / name)
        r = api.client.post(f"/v1/monitors/{mid}/windows", headers=api.h(), json={"dataset": ids[name]})
        assert r.status_code == 201, r.text
        w = r.json()
        cur = pd.read_csv(SHIFT / "incoming" / name)
        for col in ("LIMIT_BAL", "PAY_AMT1"):
            expected = _psi(ref[col].to_numpy(float), cur[col].to_numpy(float))
            assert w["drift"]["features"][col]["psi"] == pytest.approx(expected, abs=1e-12)
        assert w["window"]["source"] == ids[name]  # the caller's id, never a server path
    # the same bytes twice: 409, not a second window
    r = api.client.post(f"/v1/monitors/{mid}/windows", headers=api.h(), json={"dataset": ids["window_1.csv"]})
    _problem(r, 409, "already processed")

    lab = api.upload("datasets", SHIFT / "labels" / "window_3.csv")
    r = api.client.post(f"/v1/monitors/{mid}/windows/2/labels", headers=api.h(), json={"dataset": lab})
    assert r.status_code == 200, r.text
    labels = pd.read_csv(SHIFT / "labels" / "window_3.csv")
    w3 = pd.read_csv(SHIFT / "incoming" / "window_3.csv")
    booster = lgb.Booster(model_file=str(SHIFT.parent / "taiwan" / "model.txt"))
    y = labels.set_index("ID").loc[w3["ID"], TARGET].to_numpy()
    auc = roc_auc_score(y, booster.predict(w3[booster.feature_name()].astype(float).to_numpy()))
    assert r.json()["performance"]["auc"] == pytest.approx(auc, abs=1e-9)

    r = api.client.get(f"/v1/monitors/{mid}/history", headers=api.h(role="viewer"))
    assert r.status_code == 200
    pts = r.json()["windows"]
    assert [p["seq"] for p in pts] == [1, 2]
    assert pts[0]["auc"] is None and pts[1]["auc"] == pytest.approx(auc, abs=1e-9)
    r = api.client.get(f"/v1/monitors/{mid}/windows/2", headers=api.h(role="viewer"))
    assert r.json()["result"]["performance"]["auc"] == pytest.approx(auc, abs=1e-9)
    r = api.client.get(f"/v1/monitors/{mid}", headers=api.h(role="viewer"))
    assert r.json()["windows"] == 2

    # another organisation sees nothing (404, not 403), and cannot use org-a's uploads
    for path in (f"/v1/monitors/{mid}", f"/v1/monitors/{mid}/history", f"/v1/monitors/{mid}/windows/1"):
        _problem(api.client.get(path, headers=api.h("org-b", "viewer")), 404, "no monitor")
    r = api.client.post(f"/v1/monitors/{mid}/windows", headers=api.h("org-b"), json={"dataset": lab})
    _problem(r, 404, "no monitor")
    assert api.client.get("/v1/monitors", headers=api.h("org-b", "viewer")).json()["items"] == []
    # viewers read but do not write
    r = api.client.post(f"/v1/monitors/{mid}/windows", headers=api.h(role="viewer"), json={"dataset": lab})
    _problem(r, 403, "auditor")


def test_bad_monitor_requests_are_4xx_naming_the_field(api):
    body = _body(api)
    for over, status, needles in [
        ({"source": "/etc/*.csv"}, 422, ("'source'", "POST /v1/monitors/{id}/windows")),
        ({"schedule": "0 6 * * 1"}, 422, ("'schedule'",)),
        ({"reference": "ds_doesnotexist"}, 422, ("reference", "no dataset with id 'ds_doesnotexist'")),
        ({"reference": None}, 422, ("reference", "expected a dataset id")),
        ({"audit": "audit.yaml"}, 422, ("audit", "inline")),
        ({"audit": {**body["audit"], "model": "mdl_nope"}}, 422, ("audit.model",)),
        ({"alerts": [{"webhook": "ftp://x"}]}, 422, ("alerts",)),
        ({"colour": "red"}, 422, ("colour",)),
    ]:
        r = api.client.post("/v1/monitors", headers=api.h(), json={**body, **over})
        _problem(r, status, *needles)
    r = api.client.post("/v1/monitors", headers=api.h(), json=body)
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    _problem(api.client.post("/v1/monitors", headers=api.h(), json=body), 409, "taiwan-api")
    # a window without the model's columns, a missing dataset id, labels for an unknown window
    bad = api.upload("datasets", SHIFT / "labels" / "window_3.csv")
    r = api.client.post(f"/v1/monitors/{mid}/windows", headers=api.h(), json={"dataset": bad})
    _problem(r, 422, f"dataset {bad}", "is missing from the window")
    _problem(api.client.post(f"/v1/monitors/{mid}/windows", headers=api.h(), json={}), 422, "dataset")
    r = api.client.post(f"/v1/monitors/{mid}/windows/7/labels", headers=api.h(), json={"dataset": bad})
    _problem(r, 404, "window")
    _problem(api.client.get("/v1/monitors/mon_nope/history", headers=api.h()), 404, "no monitor")


def test_bad_inputs_name_upload_ids_never_server_paths(api, tmp_path):
    data_dir = str(api.app.state.settings.data_dir.resolve())

    def no_path(r: Any) -> None:
        assert data_dir not in r.text and "/artifacts" not in r.text, r.text

    # a reference without the model's columns
    lab = api.upload("datasets", SHIFT / "labels" / "window_3.csv")
    r = api.client.post("/v1/monitors", headers=api.h(), json=_body(api, reference=lab))
    _problem(r, 422, f"dataset {lab}", "LIMIT_BAL", "is missing")
    no_path(r)
    r = api.client.post("/v1/monitors", headers=api.h(), json=_body(api))
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    # a body that is not a JSON object
    r = api.client.post(f"/v1/monitors/{mid}/windows", headers=api.h(), json=["ds_x"])
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    # a window that fails is recorded as failed, its error naming the dataset id
    r = api.client.post(f"/v1/monitors/{mid}/windows", headers=api.h(), json={"dataset": lab})
    _problem(r, 422, f"dataset {lab}")
    no_path(r)
    r = api.client.get(f"/v1/monitors/{mid}/windows/1", headers=api.h(role="viewer"))
    assert r.json()["status"] == "failed" and lab in r.json()["error"]
    no_path(r)
    no_path(api.client.get(f"/v1/monitors/{mid}/history", headers=api.h(role="viewer")))
    # labels: without the target column; not readable as a table
    w1 = api.upload("datasets", SHIFT / "incoming" / "window_1.csv")
    assert (
        api.client.post(f"/v1/monitors/{mid}/windows", headers=api.h(), json={"dataset": w1}).status_code
        == 201
    )
    r = api.client.post(f"/v1/monitors/{mid}/windows/2/labels", headers=api.h(), json={"dataset": w1})
    _problem(r, 422, f"dataset {w1}", "target", f"no column '{TARGET}'")
    no_path(r)
    ids = pd.read_csv(SHIFT / "incoming" / "window_1.csv")["ID"]
    odd = tmp_path / "odd_labels.csv"
    pd.DataFrame({"ID": ids, TARGET: np.where(ids % 2 == 0, "paid", "late")}).to_csv(odd, index=False)
    bad = api.upload("datasets", odd)
    r = api.client.post(f"/v1/monitors/{mid}/windows/2/labels", headers=api.h(), json={"dataset": bad})
    assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("application/problem+json")
    assert bad in r.json()["detail"], r.text
    no_path(r)
