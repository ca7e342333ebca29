"""End to end against a real ``assay serve`` process on 127.0.0.1 (uvicorn, worker processes, SQLite).

Two organisations; keys made with ``assay keys create``; upload → audit → poll → PDF, with the
audit.json compared to the one ``assay audit`` writes for the same inputs; a worker killed mid-audit
(the job re-runs); the server killed mid-audit and restarted (the job is re-queued and finishes);
the database intact afterwards; JSON logs with request ids and no secret in them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.api.conftest import GERMAN, german_spec_body
from tests.conftest import REPO

UPLOAD_LIMIT = 1_000_000
POLL_S = 0.05


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``python -m service.cli serve`` in a subprocess, stderr (JSON logs) to a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "serve", "--port", str(self.port)],
                cwd=REPO,
                env=self.env,
                stdout=fh,
                stderr=fh,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("server not ready in 60 s:\n" + self.log.read_text()[-3000:])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_lines(self) -> list[dict[str, Any]]:
        # only JSON lines: audit libraries in the worker processes may print warnings of their own
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]


def _keys_create(env: dict[str, str], org: str, role: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "--org", org, "--role", role],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    key = res.stdout.strip().splitlines()[-1]
    assert key.startswith("assay_") and " " not in key  # the key alone on the last line
    return key


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    """Drop what legitimately differs between a CLI run and an API run of the same inputs."""
    meta = {k: v for k, v in doc["meta"].items() if k not in ("run_id", "created_at", "finished_at", "spec")}
    meta["inputs"] = {
        k: {f: x for f, x in v.items() if f != "path"} for k, v in meta["inputs"].items() if k != "spec"
    }
    return {**doc, "meta": meta}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A data folder, keys for organisations A and B, the CLI's audit.json running alongside, a server."""
    root = tmp_path_factory.mktemp("e2e")
    env = {
        **os.environ,
        "ASSAY_DATA_DIR": str(root / "data"),
        "ASSAY_WORKERS": "1",
        "ASSAY_SCHEDULER": "false",
        "ASSAY_LOG_LEVEL": "INFO",
        "ASSAY_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "ASSAY_DATABASE_URL": "",
    }
    env.pop("ASSAY_DATABASE_URL")
    # the reference: `assay audit` on the same files, started now so that it overlaps the server work
    work = root / "cli"
    work.mkdir()
    for name in ("german_credit.csv", "model.skops", "reasons.yaml"):
        shutil.copy(GERMAN / name, work / name)
    spec = yaml.safe_load((GERMAN / "audit.yaml").read_text()) | {"bootstrap": 0}
    (work / "audit.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "audit",
            str(work / "audit.yaml"),
            "--out",
            str(work / "out"),
            "-q",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    keys = {
        ("a", "admin"): _keys_create(env, "Acme Bank", "admin"),
        ("b", "admin"): _keys_create(env, "Bravo CU", "admin"),
    }
    server = Server(env, root / "server.log")
    server.start()
    for role in ("auditor", "viewer"):
        r = httpx.post(f"{server.url}/v1/keys", json={"role": role}, headers=_h(keys[("a", "admin")]))
        assert r.status_code == 201, r.text
        keys[("a", role)] = r.json()["key"]
    st = {"root": root, "env": env, "server": server, "keys": keys, "cli": cli, "cli_out": work / "out"}
    try:
        yield st
    finally:
        server.stop()
        if cli.poll() is None:
            cli.kill()


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _cli_result(stack: dict[str, Any]) -> dict[str, Any]:
    out, err = stack["cli"].communicate(timeout=300)
    assert stack["cli"].returncode == 0, err
    return json.loads((stack["cli_out"] / "audit.json").read_text())


def _wait(url: str, key: str, until: set[str], timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(url, headers=_h(key), timeout=10).json()
        if body["status"] in until:
            return body
        time.sleep(POLL_S)
    raise AssertionError(f"{url} did not reach {until} in {timeout} s: {body}")


def _job_row(stack: dict[str, Any], job_id: str) -> tuple[str, str | None, int]:
    with sqlite3.connect(stack["root"] / "data" / "assay.db") as conn:
        row = conn.execute(
            "SELECT status, worker_id, attempts FROM audit_jobs WHERE id = ?", (job_id,)
        ).fetchone()
    return row[0], row[1], int(row[2])


def _worker_pid(stack: dict[str, Any], worker_id: str) -> int:
    for rec in reversed(stack["server"].log_lines()):
        if rec.get("msg") == "worker started" and rec.get("worker_id") == worker_id:
            return int(rec["pid"])
    raise AssertionError(f"no 'worker started' log line for {worker_id}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def _submit(stack: dict[str, Any], ds: str, mdl: str, **headers: str) -> str:
    body = german_spec_body(ds, mdl, bootstrap=0)
    r = httpx.post(
        f"{stack['server'].url}/v1/audits",
        json=body,
        headers={**_h(stack["keys"][("a", "auditor")]), **headers},
    )
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _upload(stack: dict[str, Any], org: str, kind: str, path: Path) -> httpx.Response:
    with path.open("rb") as fh:
        return httpx.post(
            f"{stack['server'].url}/v1/{kind}",
            files={"file": (path.name, fh)},
            headers=_h(stack["keys"][(org, "auditor" if org == "a" else "admin")]),
            timeout=60,
        )


def test_two_organisations_end_to_end(stack):
    s, k = stack["server"], stack["keys"]
    ra = _upload(stack, "a", "datasets", GERMAN / "german_credit.csv")
    rm = _upload(stack, "a", "models", GERMAN / "model.skops")
    assert ra.status_code == rm.status_code == 201, (ra.text, rm.text)
    ds, mdl = ra.json()["id"], rm.json()["id"]
    stack["ids"] = (ds, mdl)
    # over the size limit on the real server: 413 problem+json
    big = stack["root"] / "big.csv"
    big.write_bytes(b"a,b\n" + b"1,2\n" * (UPLOAD_LIMIT // 4 + 1))
    r = _upload(stack, "a", "datasets", big)
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json"), r.text

    job = _submit(stack, ds, mdl, **{"Idempotency-Key": "e2e-1"})
    assert _submit(stack, ds, mdl, **{"Idempotency-Key": "e2e-1"}) == job  # replayed, not queued twice
    done = _wait(f"{s.url}/v1/audits/{job}", k[("a", "viewer")], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done["error"]
    api_doc = done["result"]

    # the same audit.json as `assay audit` on the same files, except run ids, times and input names
    cli_doc = _cli_result(stack)
    assert _strip(api_doc) == _strip(cli_doc)
    assert api_doc["meta"]["run_id"] == job
    assert (
        api_doc["meta"]["inputs"]["dataset"]["path"] == ds
        and api_doc["meta"]["inputs"]["model"]["path"] == mdl
    )
    assert api_doc["meta"]["inputs"]["dataset"]["sha256"] == ra.json()["sha256"]
    body = json.dumps(german_spec_body(ds, mdl, bootstrap=0), sort_keys=True).encode()
    assert api_doc["meta"]["inputs"]["spec"] == {
        "path": "request body",
        "sha256": hashlib.sha256(body).hexdigest(),
        "rows": None,
        "columns": None,
        "format": "json",
    }

    pdf = httpx.get(f"{s.url}/v1/audits/{job}/report.pdf", headers=_h(k[("a", "viewer")]), timeout=30)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")

    # organisation B sees nothing of A's: every id is 404, every list is empty
    for path in (
        f"/v1/datasets/{ds}",
        f"/v1/models/{mdl}",
        f"/v1/audits/{job}",
        f"/v1/audits/{job}/report.pdf",
    ):
        r = httpx.get(s.url + path, headers=_h(k[("b", "admin")]))
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json"), path
    for path in ("/v1/datasets", "/v1/models", "/v1/audits"):
        assert httpx.get(s.url + path, headers=_h(k[("b", "admin")])).json()["total"] == 0, path
    r = httpx.post(f"{s.url}/v1/audits", json=german_spec_body(ds, mdl), headers=_h(k[("b", "admin")]))
    assert r.status_code == 422 and f"no dataset with id '{ds}' in your organisation" in r.json()["detail"]
    # viewers read but cannot create
    r = httpx.post(f"{s.url}/v1/audits", json=german_spec_body(ds, mdl), headers=_h(k[("a", "viewer")]))
    assert r.status_code == 403

    # a bogus key and a wrong secret: 401, and neither appears in the log
    bogus = "assay_0000000000000000_this-is-not-a-real-secret-at-all"
    assert httpx.get(f"{s.url}/v1/audits", headers=_h(bogus)).status_code == 401
    metrics = httpx.get(f"{s.url}/metrics").text
    assert 'assay_audit_jobs{state="succeeded"} 1.0' in metrics
    assert 'assay_http_requests_total{method="POST",route="/v1/audits",status="202"} 2.0' in metrics

    # structured logs: access lines carry request ids and the caller; no secrets
    text = s.log.read_text()
    for secret in [*k.values(), bogus]:
        assert secret not in text and secret.split("_", 2)[2] not in text
    lines = s.log_lines()
    access = [r for r in lines if r["logger"] == "assay.access"]
    assert access and all(len(r["request_id"]) == 32 for r in access)
    posts = [r for r in access if r["method"] == "POST" and r["route"] == "/v1/audits" and r["status"] == 202]
    assert len(posts) == 2 and posts[0]["org_id"] is not None
    assert any(r["logger"].startswith("uvicorn") for r in lines)  # uvicorn's own lines are JSON too
    assert not [ln for ln in text.splitlines() if ln.startswith(("INFO:", "WARNING:", "ERROR:"))]


def test_worker_killed_mid_audit_reruns(stack):
    s, k = stack["server"], stack["keys"]
    ds, mdl = stack["ids"]
    job = _submit(stack, ds, mdl)
    url = f"{s.url}/v1/audits/{job}"
    _wait(url, k[("a", "viewer")], {"running", "succeeded", "failed"}, timeout=120)
    status, worker_id, attempts = _job_row(stack, job)
    assert (status, attempts) == ("running", 1), "the job finished before the test could kill its worker"
    pid = _worker_pid(stack, worker_id)
    os.kill(pid, signal.SIGKILL)
    done = _wait(url, k[("a", "viewer")], {"succeeded", "failed"})
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    assert _strip(done["result"]) == _strip(_cli_result(stack))
    _, new_worker, _ = _job_row(stack, job)
    assert new_worker != worker_id and not _alive(pid)
    assert httpx.get(f"{s.url}/readyz").status_code == 200  # the API never went down


def test_server_killed_mid_audit_requeues_on_restart(stack):
    s, k = stack["server"], stack["keys"]
    ds, mdl = stack["ids"]
    job = _submit(stack, ds, mdl)
    url = f"{s.url}/v1/audits/{job}"
    _wait(url, k[("a", "viewer")], {"running", "succeeded", "failed"}, timeout=120)
    status, worker_id, _ = _job_row(stack, job)
    assert status == "running"
    pid = _worker_pid(stack, worker_id)
    s.stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the worker outlived the server"
    assert _job_row(stack, job)[0] == "running"  # left behind by the dead server
    s.start()
    done = _wait(url, k[("a", "viewer")], {"succeeded", "failed"})
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    assert "re-queued" not in (done["progress"] or "")
    s.stop()
    with sqlite3.connect(stack["root"] / "data" / "assay.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        states = dict(conn.execute("SELECT status, count(*) FROM audit_jobs GROUP BY status").fetchall())
    assert states == {"succeeded": 3}
