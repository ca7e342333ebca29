"""Authentication, roles and organisation scoping: another organisation's ids are 404, never 403."""

from __future__ import annotations

import hashlib

from sqlalchemy import text

from tests.api.conftest import GERMAN, assert_problem, finish_fake, german_spec_body, upload


def test_missing_malformed_and_unknown_keys_are_401(api):
    c = api.client
    r = c.get("/v1/datasets")
    assert_problem(r, 401, "Authorization: Bearer")
    assert r.headers["www-authenticate"] == "Bearer"
    assert_problem(c.get("/v1/datasets", headers={"Authorization": "Basic abc"}), 401)
    assert_problem(c.get("/v1/datasets", headers={"Authorization": "Bearer nope"}), 401, "not valid")
    good = api.a.keys["viewer"]
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")  # right key id, wrong secret
    assert_problem(c.get("/v1/datasets", headers={"Authorization": f"Bearer {forged}"}), 401, "not valid")
    assert c.get("/v1/datasets", headers=api.a.h("viewer")).status_code == 200


def test_only_salted_hashes_are_stored(api):
    key = api.a.keys["admin"]
    _, key_id, secret = key.split("_", 2)
    with api.app.state.engine.connect() as conn:
        salt, digest = conn.execute(
            text("SELECT salt, hash FROM api_keys WHERE id = :i"), {"i": key_id}
        ).one()
        dump = "\n".join(str(r) for r in conn.execute(text("SELECT * FROM api_keys")).all())
    assert digest == hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()
    assert secret not in dump
    salts = [api.a.keys[r].split("_", 2)[1] for r in ("viewer", "auditor", "admin")]
    with api.app.state.engine.connect() as conn:
        got = {
            s
            for (s,) in conn.execute(
                text("SELECT salt FROM api_keys WHERE id IN (:a, :b, :c)"),
                dict(zip("abc", salts, strict=True)),
            ).all()
        }
    assert len(got) == 3  # one salt per key


def test_roles_viewer_reads_auditor_creates_admin_manages_keys(api, german_uploaded):
    c, a = api.client, api.a
    ds, mdl = german_uploaded
    csv = (GERMAN / "german_credit.csv").read_bytes()
    # viewer: reads only
    assert c.get("/v1/datasets", headers=a.h("viewer")).status_code == 200
    assert c.get(f"/v1/models/{mdl}", headers=a.h("viewer")).status_code == 200
    assert_problem(upload(c, "/v1/datasets", csv, a.h("viewer")), 403, "'auditor' role", "'viewer'")
    assert_problem(
        c.post("/v1/audits", headers=a.h("viewer"), json=german_spec_body(ds, mdl)), 403, "auditor"
    )
    # auditor: creates, but cannot manage keys
    r = c.post("/v1/audits", headers=a.h("auditor"), json=german_spec_body(ds, mdl))
    assert r.status_code == 202, r.text
    assert_problem(c.post("/v1/keys", headers=a.h("auditor"), json={"role": "viewer"}), 403, "'admin' role")
    assert_problem(c.get("/v1/keys", headers=a.h("auditor")), 403)
    assert_problem(c.get("/v1/audit-log", headers=a.h("viewer")), 403)
    # admin: manages keys; a new key works at once, a revoked one stops working at once
    new = c.post("/v1/keys", headers=a.h("admin"), json={"role": "viewer", "label": "ci"})
    assert new.status_code == 201 and new.json()["role"] == "viewer"
    hk = {"Authorization": f"Bearer {new.json()['key']}"}
    assert c.get("/v1/datasets", headers=hk).status_code == 200
    listed = c.get("/v1/keys", headers=a.h("admin")).json()
    assert new.json()["id"] in [k["id"] for k in listed["items"]] and "key" not in listed["items"][0]
    assert c.delete(f"/v1/keys/{new.json()['id']}", headers=a.h("admin")).status_code == 200
    assert_problem(c.get("/v1/datasets", headers=hk), 401, "revoked")
    assert_problem(c.post("/v1/keys", headers=a.h("admin"), json={"role": "root"}), 422, "role")


def test_cross_org_access_is_404_on_every_route(api, german_uploaded):
    c, a, b = api.client, api.a, api.b
    ds, mdl = german_uploaded
    job = c.post("/v1/audits", headers=a.h("auditor"), json=german_spec_body(ds, mdl)).json()["id"]
    finish_fake(api, job, {"meta": {"model_name": "x"}})
    assert c.get(f"/v1/audits/{job}/report.pdf", headers=a.h("viewer")).status_code == 200
    a_key_id = a.keys["viewer"].split("_", 2)[1]
    for path in (
        f"/v1/datasets/{ds}",
        f"/v1/models/{mdl}",
        f"/v1/audits/{job}",
        f"/v1/audits/{job}/report.pdf",
    ):
        for role in ("viewer", "admin"):
            body = assert_problem(c.get(path, headers=b.h(role)), 404, "in your organisation")
            missing = assert_problem(
                c.get(path.replace(path.split("/")[3], "zz_missing"), headers=b.h(role)), 404
            )
            assert body["title"] == missing["title"]  # indistinguishable from an unknown id
    assert_problem(c.delete(f"/v1/keys/{a_key_id}", headers=b.h("admin")), 404)
    # referencing A's uploads in B's audit spec reads exactly like an unknown id
    r = c.post("/v1/audits", headers=b.h("auditor"), json=german_spec_body(ds, mdl))
    r_unknown = c.post("/v1/audits", headers=b.h("auditor"), json=german_spec_body("ds_nope", mdl))
    assert_problem(r, 422, f"no dataset with id '{ds}' in your organisation")
    assert_problem(r_unknown, 422, "no dataset with id 'ds_nope' in your organisation")
    # lists never show another organisation's items
    for path in ("/v1/datasets", "/v1/models", "/v1/audits", "/v1/keys", "/v1/audit-log"):
        items = c.get(path, headers=b.h("admin")).json()["items"]
        ids = {i["id"] for i in items}
        assert not ids & {ds, mdl, job, a_key_id}, path
    assert {i["id"] for i in c.get("/v1/audits", headers=a.h("viewer")).json()["items"]} == {job}
    # B uploading the same bytes gets its own id; A's key still cannot see it
    rb = upload(c, "/v1/datasets", (GERMAN / "german_credit.csv").read_bytes(), b.h("auditor"))
    assert rb.status_code == 201 and rb.json()["id"] != ds
    assert_problem(c.get(f"/v1/datasets/{rb.json()['id']}", headers=a.h("admin")), 404)


def test_audit_log_records_who_did_what(api, german_uploaded):
    ds, _ = german_uploaded
    log = api.client.get("/v1/audit-log", headers=api.a.h("admin")).json()
    actions = [(e["action"], e["target"], e["key_id"]) for e in log["items"]]
    auditor_id = api.a.keys["auditor"].split("_", 2)[1]
    assert ("dataset.upload", ds, auditor_id) in actions
    assert any(a == "model.upload" for a, _, _ in actions)
    assert all(e["request_id"] for e in log["items"])
    assert api.client.get("/v1/audit-log", headers=api.b.h("admin")).json()["total"] == 0


def test_key_and_header_bad_inputs_are_422(api):
    c, h = api.client, api.a.h("admin")
    assert_problem(c.post("/v1/keys", headers=h, json={"role": "viewer", "label": "x" * 201}), 422, "label")
    assert_problem(c.post("/v1/keys", headers=h, json={"role": "viewer", "label": "a\x00b"}), 422, "label")
    assert_problem(c.post("/v1/keys", headers=h, json={"role": "viewer", "owner": "me"}), 422, "owner")
    assert_problem(c.delete("/v1/keys/nope", headers=h), 404, "no key 'nope'")
    r = c.post("/v1/audits", headers={**api.a.h("auditor"), "Idempotency-Key": "k" * 201}, json={})
    assert_problem(r, 422, "idempotency-key")


def test_a_key_revoked_outside_the_api_stops_working_after_the_cache_ttl(api, monkeypatch):
    """`assay keys revoke` writes to the database; the server's key cache must not outlive it."""
    import service.api.deps as deps
    from service.store.db import utcnow
    from service.store.models import ApiKey

    c, key = api.client, api.a.keys["viewer"]
    assert c.get("/v1/datasets", headers=api.a.h("viewer")).status_code == 200  # now cached
    with api.app.state.sessions() as s:
        s.get(ApiKey, key.split("_", 2)[1]).revoked_at = utcnow()
        s.commit()
    assert c.get("/v1/datasets", headers=api.a.h("viewer")).status_code == 200  # within the TTL
    monkeypatch.setattr(deps, "KEY_CACHE_TTL_S", 0.0)
    api.app.state.key_cache.clear()  # entries made with the old TTL
    assert_problem(c.get("/v1/datasets", headers=api.a.h("viewer")), 401, "revoked")
    assert not any(isinstance(k, str) for k in api.app.state.key_cache)  # no plain keys in memory
