"""Audit jobs over HTTP: queueing, validation, idempotency, polling, PDF, pagination, metrics."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from tests.api.conftest import assert_problem, finish_fake, german_spec_body


def test_create_poll_result_and_pdf(api, german_uploaded):
    c, a = api.client, api.a
    ds, mdl = german_uploaded
    r = c.post("/v1/audits", headers=a.h("auditor"), json=german_spec_body(ds, mdl))
    assert r.status_code == 202 and r.json()["status"] == "queued"
    job = r.json()["id"]
    assert r.headers["location"] == f"/v1/audits/{job}"
    g = c.get(f"/v1/audits/{job}", headers=a.h("viewer")).json()
    assert (g["status"], g["result"], g["error"], g["attempts"]) == ("queued", None, None, 0)
    assert_problem(c.get(f"/v1/audits/{job}/report.pdf", headers=a.h("viewer")), 409, "queued")
    result = {"meta": {"model_name": "german"}, "findings": [{"id": "F1"}]}
    finish_fake(api, job, result, pdf=b"%PDF-1.7 fake report\n")
    g = c.get(f"/v1/audits/{job}", headers=a.h("viewer")).json()
    assert g["status"] == "succeeded" and g["result"] == result and g["report_pdf"] is True
    p = c.get(f"/v1/audits/{job}/report.pdf", headers=a.h("viewer"))
    assert p.status_code == 200 and p.headers["content-type"] == "application/pdf"
    assert p.content == b"%PDF-1.7 fake report\n"


def test_job_with_bad_data_fails_with_a_reason(api):
    """A spec that parses but does not fit the data: the job ends failed with the InputError text."""
    from tests.api.conftest import upload

    c, a = api.client, api.a
    d = upload(c, "/v1/datasets", b"x,y\n1,0\n2,1\n3,0\n", a.h("auditor"), "tiny.csv").json()["id"]
    spec = {"model_name": "m", "dataset": d, "target": "not_there", "score": {"column": "x"}}
    job = c.post("/v1/audits", headers=a.h("auditor"), json=spec).json()["id"]
    assert api.run_queued() == [job]
    g = c.get(f"/v1/audits/{job}", headers=a.h("viewer")).json()
    assert g["status"] == "failed" and g["result"] is None
    assert "not_there" in g["error"] and g["finished_at"] is not None
    assert "/" + str(api.data_dir).strip("/") not in g["error"]


def test_spec_validation_is_422_and_nothing_is_queued(api, german_uploaded):
    c, a = api.client, api.a
    ds, mdl = german_uploaded
    bad = german_spec_body(ds, mdl) | {"colour": "blue"}
    assert_problem(c.post("/v1/audits", headers=a.h("auditor"), json=bad), 422, "unknown key 'colour'")
    path_rc = german_spec_body(ds, mdl) | {"reason_codes": "/etc/passwd"}
    assert_problem(c.post("/v1/audits", headers=a.h("auditor"), json=path_rc), 422, "inline")
    no_model = german_spec_body(ds, mdl) | {"model": "mdl_missing"}
    assert_problem(c.post("/v1/audits", headers=a.h("auditor"), json=no_model), 422, "no model with id")
    swapped = german_spec_body(mdl, ds)  # a model id where a dataset id is expected
    assert_problem(c.post("/v1/audits", headers=a.h("auditor"), json=swapped), 422, "no dataset with id")
    assert_problem(c.post("/v1/audits", headers=a.h("auditor"), json=[1, 2]), 422)
    r = c.post("/v1/audits", headers={**a.h("auditor"), "content-type": "application/json"}, content=b"{nope")
    assert_problem(r, 422)
    assert c.get("/v1/audits", headers=a.h("viewer")).json()["total"] == 0


def test_idempotency_key_replays_and_refuses_a_different_spec(api, german_uploaded):
    c, a = api.client, api.a
    ds, mdl = german_uploaded
    h = {**a.h("auditor"), "Idempotency-Key": "run-2026-12-03"}
    first = c.post("/v1/audits", headers=h, json=german_spec_body(ds, mdl))
    again = c.post("/v1/audits", headers=h, json=german_spec_body(ds, mdl))
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"] and again.headers["idempotent-replayed"] == "true"
    other = german_spec_body(ds, mdl) | {"seed": 7}
    assert_problem(c.post("/v1/audits", headers=h, json=other), 409, "different spec")
    # the same key in another organisation is independent
    assert c.get("/v1/audits", headers=a.h("viewer")).json()["total"] == 1


def test_pagination_and_status_filter(api, german_uploaded):
    c, a = api.client, api.a
    ds, mdl = german_uploaded
    ids = [
        c.post("/v1/audits", headers=a.h("auditor"), json=german_spec_body(ds, mdl) | {"seed": i}).json()[
            "id"
        ]
        for i in range(5)
    ]
    finish_fake(api, ids[0], {"x": 1})
    seen = []
    offset = 0
    while offset is not None:
        page = c.get(f"/v1/audits?limit=2&offset={offset}", headers=a.h("viewer")).json()
        assert page["total"] == 5 and len(page["items"]) <= 2
        assert all(i["result"] is None for i in page["items"])  # lists never carry results
        seen += [i["id"] for i in page["items"]]
        offset = page["next_offset"]
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    created = [
        dt.datetime.fromisoformat(i["created_at"])
        for i in c.get("/v1/audits?limit=5", headers=a.h("viewer")).json()["items"]
    ]
    assert created == sorted(created, reverse=True)
    done = c.get("/v1/audits?status=succeeded", headers=a.h("viewer")).json()
    assert [i["id"] for i in done["items"]] == [ids[0]] and done["total"] == 1
    assert_problem(c.get("/v1/audits?limit=0", headers=a.h("viewer")), 422, "limit")
    assert_problem(c.get("/v1/audits?status=weird", headers=a.h("viewer")), 422, "status")


def test_metrics_count_requests_and_jobs_by_state(api, german_uploaded):
    c, a = api.client, api.a
    ds, mdl = german_uploaded
    for i in range(3):
        c.post("/v1/audits", headers=a.h("auditor"), json=german_spec_body(ds, mdl) | {"seed": i})
    jobs = c.get("/v1/audits", headers=a.h("viewer")).json()["items"]
    finish_fake(api, jobs[0]["id"], {})
    text = c.get("/metrics").text
    assert 'assay_audit_jobs{state="queued"} 2.0' in text
    assert 'assay_audit_jobs{state="succeeded"} 1.0' in text
    assert 'assay_audit_jobs{state="running"} 0.0' in text
    assert 'assay_http_requests_total{method="POST",route="/v1/audits",status="202"} 3.0' in text
    assert 'assay_http_request_duration_seconds_count{method="POST",route="/v1/audits"} 3.0' in text


def test_health_ready_and_request_id(api):
    c = api.client
    assert c.get("/healthz").json() == {"status": "ok"}
    r = c.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"]["database"] == "ok"
    r = c.get("/healthz", headers={"X-Request-ID": "abc123"})
    assert r.headers["x-request-id"] == "abc123"
    assert len(c.get("/healthz").headers["x-request-id"]) == 32
    for odd in ("x" * 65, "a b", "na\xefve".encode("latin-1"), "<script>"):
        got = c.get("/healthz", headers={"X-Request-ID": odd}).headers["x-request-id"]
        assert got != odd and len(got) == 32


def test_unknown_routes_methods_and_validation_are_problem_json(api):
    c = api.client
    assert_problem(c.get("/v1/nope"), 404, "no route")
    r = c.put("/v1/datasets", headers=api.a.h("admin"))
    assert_problem(r, 405, "PUT", "allowed: GET, POST")
    assert r.headers["allow"] == "GET, POST"  # both routes at the path, not just the first
    body = assert_problem(c.get("/v1/datasets?limit=abc", headers=api.a.h("viewer")), 422, "limit")
    assert body["errors"][0]["loc"] == "query.limit"


def test_recovery_requeues_or_fails_orphaned_jobs_only(api, german_uploaded):
    """Restart: jobs 'running' without a heartbeat for STALE_S are re-queued, or failed once out of
    attempts; a job of another live server (fresh heartbeat) is left alone."""
    from service.jobs import MAX_ATTEMPTS, STALE_S, JobManager
    from service.store.db import utcnow
    from service.store.models import AuditJob

    c, a = api.client, api.a
    ds, mdl = german_uploaded
    j1, j2, j3, j4 = (
        c.post("/v1/audits", headers=a.h("auditor"), json=german_spec_body(ds, mdl) | {"seed": i}).json()[
            "id"
        ]
        for i in range(4)
    )
    now = utcnow()
    with api.app.state.sessions() as s:
        for jid, attempts, beat in (
            (j1, 1, None),
            (j2, MAX_ATTEMPTS, now - dt.timedelta(seconds=STALE_S + 1)),
            (j3, 1, now),  # another server's worker, alive
            (j4, 1, now - dt.timedelta(seconds=STALE_S + 5)),
        ):
            job = s.get(AuditJob, jid)
            job.status, job.attempts, job.worker_id, job.heartbeat_at = (
                "running",
                attempts,
                "deadbeef-1",
                beat,
            )
        s.commit()
    mgr = JobManager(api.app.state.settings, api.app.state.engine, api.app.state.store)
    assert mgr.recover() == 3
    with api.app.state.sessions() as s:
        rows = {j.id: j for j in s.scalars(select(AuditJob))}
    assert rows[j1].status == rows[j4].status == "queued" and rows[j1].worker_id is None
    assert rows[j2].status == "failed" and "server stopped" in rows[j2].error
    assert str(MAX_ATTEMPTS) in rows[j2].error and rows[j2].finished_at is not None
    assert rows[j3].status == "running" and rows[j3].worker_id == "deadbeef-1"


def test_a_worker_never_writes_a_job_taken_over_by_another(api, monkeypatch):
    """After a job is re-queued and claimed elsewhere, the old worker's outcome is dropped."""
    import service.jobs as jobs
    from service.store.models import AuditJob
    from tests.api.conftest import upload

    c, a = api.client, api.a
    d = upload(c, "/v1/datasets", b"x,y\n1,0\n2,1\n3,0\n", a.h("auditor"), "tiny.csv").json()["id"]
    job = c.post(
        "/v1/audits",
        headers=a.h("auditor"),
        json={"model_name": "m", "dataset": d, "target": "zz", "score": {"column": "x"}},
    )
    jid = job.json()["id"]
    assert jobs.claim_next(api.app.state.sessions, "w-old") == jid
    with api.app.state.sessions() as s:
        s.get(AuditJob, jid).worker_id = "w-new"  # re-queued and re-claimed meanwhile
        s.commit()
    jobs.run_job(api.app.state.sessions, api.app.state.store, jid, worker_id="w-old")
    g = c.get(f"/v1/audits/{jid}", headers=a.h("viewer")).json()
    assert (g["status"], g["error"], g["finished_at"]) == ("running", None, None)
    # the rightful worker's outcome is written, and its heartbeat is stamped while it runs
    monkeypatch.setattr(jobs, "HEARTBEAT_S", 0.02)
    beat = jobs._Heartbeat(api.app.state.sessions, jid, "w-new")
    with api.app.state.sessions() as s:
        before = s.get(AuditJob, jid).heartbeat_at
    beat.start()
    import time

    time.sleep(0.3)
    beat.done.set()
    beat.join()
    with api.app.state.sessions() as s:
        assert s.get(AuditJob, jid).heartbeat_at > before
    jobs.run_job(api.app.state.sessions, api.app.state.store, jid, worker_id="w-new")
    g = c.get(f"/v1/audits/{jid}", headers=a.h("viewer")).json()
    assert g["status"] == "failed" and "'zz'" in g["error"]


def test_timeout_and_dead_worker_handling(api, german_uploaded, monkeypatch):
    """Supervisor rules without real processes: over the time limit → worker killed, job failed;
    a dead worker's job → re-queued while attempts remain."""
    from service.jobs import JobManager
    from service.store.db import utcnow
    from service.store.models import AuditJob

    class FakeProc:
        def __init__(self) -> None:
            self.killed = False

        def kill(self) -> None:
            self.killed = True

        def join(self, timeout: float | None = None) -> None:
            pass

    c, a = api.client, api.a
    ds, mdl = german_uploaded
    slow, dead = (
        c.post("/v1/audits", headers=a.h("auditor"), json=german_spec_body(ds, mdl) | {"seed": i}).json()[
            "id"
        ]
        for i in (1, 2)
    )
    settings = api.app.state.settings.model_copy(update={"job_timeout_s": 60})
    mgr = JobManager(settings, api.app.state.engine, api.app.state.store)
    spawned: list[int] = []
    monkeypatch.setattr(mgr, "_spawn", lambda: spawned.append(1))
    slow_proc, other_proc = FakeProc(), FakeProc()
    mgr.procs = {"w-slow": slow_proc, "w-dead": other_proc}
    with api.app.state.sessions() as s:
        for jid, wid, age in ((slow, "w-slow", 61), (dead, "w-dead", 5)):
            job = s.get(AuditJob, jid)
            job.status, job.worker_id, job.attempts = "running", wid, 1
            job.started_at = utcnow() - dt.timedelta(seconds=age)
        s.commit()
    mgr._enforce_timeout()
    assert slow_proc.killed and not other_proc.killed and spawned == [1]
    mgr._handle_dead("w-dead", "the worker process running the audit exited unexpectedly (exit code -9)")
    rows = {j["id"]: j for j in c.get("/v1/audits", headers=a.h("viewer")).json()["items"]}
    assert rows[slow]["status"] == "failed" and rows[slow]["finished_at"] is not None
    got = c.get(f"/v1/audits/{slow}", headers=a.h("viewer")).json()["error"]
    assert "time limit of 60 s" in got and "ASSAY_JOB_TIMEOUT_S" in got
    assert rows[dead]["status"] == "queued" and "exit code -9" in rows[dead]["progress"]


def test_database_outage_is_503_problem_json_and_readyz_says_so(api, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import service.api.routers.datasets as datasets

    def down(*a, **k):
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    monkeypatch.setattr(datasets.repo, "list_artifacts", down)
    r = api.client.get("/v1/datasets", headers=api.a.h("viewer"))
    assert_problem(r, 503, "database is unavailable")
    assert r.headers["retry-after"] == "5"

    class Broken:
        def connect(self):
            raise OperationalError("SELECT 1", {}, Exception("gone"))

    engine, api.app.state.engine = api.app.state.engine, Broken()
    try:
        ready = api.client.get("/readyz")
    finally:
        api.app.state.engine = engine
    assert ready.status_code == 503 and ready.json()["checks"]["database"] == "error: OperationalError"


def test_orderly_shutdown_requeues_without_using_an_attempt(api, german_uploaded):
    from service.jobs import MAX_ATTEMPTS, JobManager
    from service.store.models import AuditJob

    class Stopped:
        def is_alive(self) -> bool:
            return False

        def join(self, timeout: float | None = None) -> None:
            pass

    c, a = api.client, api.a
    ds, mdl = german_uploaded
    jid = c.post("/v1/audits", headers=a.h("auditor"), json=german_spec_body(ds, mdl)).json()["id"]
    with api.app.state.sessions() as s:
        job = s.get(AuditJob, jid)
        job.status, job.worker_id, job.attempts = "running", "w-1", MAX_ATTEMPTS  # its last attempt
        s.commit()
    mgr = JobManager(api.app.state.settings, api.app.state.engine, api.app.state.store)
    mgr.procs = {"w-1": Stopped()}
    mgr.stop()
    g = c.get(f"/v1/audits/{jid}", headers=a.h("viewer")).json()
    assert g["status"] == "queued" and g["attempts"] == MAX_ATTEMPTS - 1
    assert "shut down" in g["progress"]
