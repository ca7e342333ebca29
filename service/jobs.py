"""Audit jobs over HTTP: a pool of worker *processes* that claim queued jobs from the database.

* Each worker is a separate process (``spawn``), so an audit that crashes, leaks or is killed
  cannot take the API down. Workers claim a job with a conditional ``UPDATE ... WHERE
  status='queued'`` (safe on SQLite and PostgreSQL) and record their ``worker_id`` on it.
* A supervisor thread in the API process restarts dead workers. A job whose worker died is
  re-queued once (``MAX_ATTEMPTS``) and then marked ``failed`` with the reason; a job over
  ``ASSAY_JOB_TIMEOUT_S`` has its worker killed and is marked ``failed``.
* A running job's worker stamps ``heartbeat_at`` every ``HEARTBEAT_S``. Jobs left ``running`` by a
  previous (or crashed) server process stop beating; at start and every few seconds after, the
  supervisor re-queues (or, out of attempts, fails) jobs without a heartbeat for ``STALE_S`` that
  none of its own workers holds, so no job stays stuck. A worker writes progress and results only
  while the job is still its own, so a job taken over elsewhere is never written twice.
* The worker calls the same ``service.runs`` functions as the CLI (``build_result``,
  ``write_outputs``); ids in the spec are resolved to artifact paths of the caller's organisation.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import multiprocessing as mp
import os
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.errors import InputError
from service.store.artifacts import ArtifactStore
from service.store.db import make_engine, session_factory, utcnow
from service.store.models import Artifact, AuditJob

log = logging.getLogger("assay.jobs")

MAX_ATTEMPTS = 2
POLL_S = 0.25
# A running job's worker stamps ``heartbeat_at`` this often; a job of no live local worker whose
# heartbeat is older than STALE_S is orphaned (its server died) and is re-queued or failed.
HEARTBEAT_S = 2.0
STALE_S = 10.0
ID_FIELDS = {"dataset": "dataset", "oot_dataset": "dataset", "model": "model"}


# --- resolving a stored spec ----------------------------------------------------------------------


def resolve_spec(session: Session, store: ArtifactStore, org_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Replace upload ids in ``dataset``/``oot_dataset``/``model`` by artifact paths of ``org_id``.

    Raises :class:`InputError` (field named) for an id that is not an upload of that organisation
    (another organisation's ids are reported exactly like unknown ones).
    """
    out = dict(spec)
    for key, kind in ID_FIELDS.items():
        ref = spec.get(key)
        if ref is None:
            continue
        if not isinstance(ref, str):
            raise InputError(
                f"expected an upload id, got {type(ref).__name__}",
                field=key,
                expected=f"an id returned by POST /v1/{kind}s",
            )
        row = session.get(Artifact, ref)
        if row is None or row.org_id != org_id or row.kind != kind:
            raise InputError(
                f"no {kind} with id {ref!r} in your organisation",
                field=key,
                expected=f"an id returned by POST /v1/{kind}s",
            )
        out[key] = str(store.path(row.sha256))
    return out


def check_http_spec(spec: dict[str, Any]) -> None:
    """Rules for specs received over HTTP: no server-side paths."""
    rc = spec.get("reason_codes")
    if rc is not None and not isinstance(rc, dict):
        raise InputError(
            "reason_codes must be given inline over HTTP (a file path on the server is not accepted)",
            field="reason_codes",
            expected="the reason catalogue as a JSON object",
        )


# --- the worker process ---------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: deliver SIGKILL to this worker when the API process dies (no orphan workers)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def worker_main(worker_id: str, db_url: str, store_root: str, parent_pid: int) -> None:
    """Entry point of a worker process: claim and run queued jobs until the parent goes away."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    engine = make_engine(url=db_url)
    sessions = session_factory(engine)
    store = ArtifactStore(Path(store_root))
    while os.getppid() == parent_pid:
        job_id = claim_next(sessions, worker_id)
        if job_id is None:
            time.sleep(POLL_S)
            continue
        run_job(sessions, store, job_id, worker_id=worker_id)


def claim_next(sessions: sessionmaker[Session], worker_id: str) -> str | None:
    """Atomically move the oldest queued job to ``running`` for this worker; its id or None."""
    with sessions() as s:
        candidates = s.scalars(
            select(AuditJob.id).where(AuditJob.status == "queued").order_by(AuditJob.created_at).limit(5)
        ).all()
        for job_id in candidates:
            res = s.execute(
                update(AuditJob)
                .where(AuditJob.id == job_id, AuditJob.status == "queued")
                .values(
                    status="running",
                    worker_id=worker_id,
                    started_at=utcnow(),
                    heartbeat_at=utcnow(),
                    attempts=AuditJob.attempts + 1,
                    progress="starting",
                )
            )
            s.commit()
            if res.rowcount == 1:  # type: ignore[attr-defined]
                return job_id
    return None


def _mine(job_id: str, worker_id: str | None) -> Any:
    """WHERE clause: the job is still running under this worker (not re-queued to another meanwhile)."""
    cond = (AuditJob.id == job_id) & (AuditJob.status == "running")
    return cond & (AuditJob.worker_id == worker_id) if worker_id is not None else cond


def _finish(sessions: sessionmaker[Session], job_id: str, worker_id: str | None, **values: Any) -> None:
    with sessions() as s:
        s.execute(update(AuditJob).where(_mine(job_id, worker_id)).values(finished_at=utcnow(), **values))
        s.commit()


class _Heartbeat(threading.Thread):
    """Stamps ``heartbeat_at`` on the running job every HEARTBEAT_S until stopped."""

    def __init__(self, sessions: sessionmaker[Session], job_id: str, worker_id: str | None) -> None:
        super().__init__(name="assay-job-heartbeat", daemon=True)
        self.sessions, self.job_id, self.worker_id = sessions, job_id, worker_id
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(HEARTBEAT_S):
            # a missed beat is harmless: STALE_S allows several
            with contextlib.suppress(Exception), self.sessions() as s:
                s.execute(
                    update(AuditJob).where(_mine(self.job_id, self.worker_id)).values(heartbeat_at=utcnow())
                )
                s.commit()


def run_job(
    sessions: sessionmaker[Session], store: ArtifactStore, job_id: str, *, worker_id: str | None = None
) -> None:
    """Run one claimed job with the CLI's code path and store audit.json (+ report.pdf).

    With ``worker_id``, results are written only while the job is still this worker's.
    """
    from service.config import parse_spec
    from service.runs import build_result, write_outputs

    beat = _Heartbeat(sessions, job_id, worker_id)
    beat.start()
    try:
        _run_job(sessions, store, job_id, worker_id, parse_spec, build_result, write_outputs)
    finally:
        beat.done.set()


def _run_job(
    sessions: sessionmaker[Session],
    store: ArtifactStore,
    job_id: str,
    worker_id: str | None,
    parse_spec: Any,
    build_result: Any,
    write_outputs: Any,
) -> None:
    last = [0.0]

    def progress(msg: str) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5 and not msg.startswith("writing"):
            return
        last[0] = now
        with sessions() as s:
            s.execute(update(AuditJob).where(_mine(job_id, worker_id)).values(progress=msg[:500]))
            s.commit()

    paths: dict[str, str] = {}
    try:
        with sessions() as s:
            job = s.get(AuditJob, job_id)
            assert job is not None
            original = dict(job.spec)
            resolved = resolve_spec(s, store, job.org_id, original)
        paths = {resolved[k]: original[k] for k in ID_FIELDS if original.get(k) is not None}
        spec = parse_spec(resolved, source="spec", base_dir=Path(tempfile.gettempdir()))
        result = build_result(spec, allow_pickle=False, progress=progress, run_id=job_id)
        _restore_ids(result, original)
        with tempfile.TemporaryDirectory(prefix="assay-job-") as tmp:
            progress("writing outputs")
            files = write_outputs(result, Path(tmp))
            result_sha = store.put_file(files["audit.json"])
            pdf_sha = store.put_file(files["report.pdf"]) if "report.pdf" in files else None
        _finish(
            sessions,
            job_id,
            worker_id,
            status="succeeded",
            progress="done",
            result_sha256=result_sha,
            pdf_sha256=pdf_sha,
            error=None,
        )
    except InputError as exc:
        error = _scrub(exc.render(), paths, store)
        _finish(sessions, job_id, worker_id, status="failed", progress="failed", error=error)
    except Exception as exc:  # the job fails with a reason; the worker survives
        log.exception("audit job %s failed", job_id)
        error = _scrub(f"internal error while auditing: {type(exc).__name__}: {exc}", paths, store)
        _finish(sessions, job_id, worker_id, status="failed", progress="failed", error=error[:2000])


def _scrub(text: str, paths: dict[str, str], store: ArtifactStore) -> str:
    """Error text for the caller: artifact paths become upload ids, no server-side folder is shown."""
    for path, ref in paths.items():
        text = text.replace(path, ref)
    return text.replace(str(store.root), "<artifacts>")


def spec_sha256(spec: dict[str, Any]) -> str:
    """Digest of a spec received over HTTP (canonical JSON: sorted keys, no whitespace)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def _restore_ids(result: Any, original: dict[str, Any]) -> None:
    """audit.json names inputs by upload id, never by server-side path; the spec is the request body."""
    from service.result import InputInfo

    result.meta.inputs["spec"] = InputInfo(path="request body", sha256=spec_sha256(original), format="json")
    for key in ID_FIELDS:
        if original.get(key) is not None:
            result.meta.spec[key] = original[key]
            info = result.meta.inputs.get(key)
            if info is not None:
                info.path = original[key]


# --- the supervisor in the API process ------------------------------------------------------------


class JobManager:
    """Starts ``settings.workers`` worker processes and supervises them (restart, timeout, recovery)."""

    def __init__(self, settings: Settings, engine: Engine, store: ArtifactStore) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = session_factory(engine)
        self.store = store
        self.instance = uuid.uuid4().hex[:8]
        self.procs: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctx = mp.get_context("spawn")
        self._seq = 0

    # lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        self.recover()
        for _ in range(max(1, self.settings.workers)):
            self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="assay-job-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for wid, p in list(self.procs.items()):
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
            # an orderly shutdown is not the audit's fault: the attempt is given back
            self._handle_dead(wid, "the server shut down while the audit was running", refund=True)
        self.procs.clear()

    def healthy(self) -> bool:
        if self._thread is None:
            return True  # jobs not started in this process (tests); nothing to report
        return self._thread.is_alive() and any(p.is_alive() for p in self.procs.values())

    def worker_pids(self) -> dict[str, int]:
        return {wid: p.pid for wid, p in self.procs.items() if p.is_alive()}

    # internals
    def _spawn(self) -> None:
        self._seq += 1
        wid = f"{self.instance}-{self._seq}"
        url = self.engine.url.render_as_string(hide_password=False)
        p = self._ctx.Process(
            target=worker_main,
            args=(wid, url, str(self.store.root), os.getpid()),
            name=f"assay-worker-{wid}",
            daemon=True,
        )
        p.start()
        self.procs[wid] = p
        log.info("worker started", extra={"worker_id": wid, "pid": p.pid})

    def _supervise(self) -> None:
        last_recover = time.monotonic()
        while not self._stop.wait(0.5):
            try:
                if time.monotonic() - last_recover > STALE_S / 2:
                    last_recover = time.monotonic()
                    self.recover()
                for wid, p in list(self.procs.items()):
                    if not p.is_alive():
                        code = p.exitcode
                        del self.procs[wid]
                        self._handle_dead(
                            wid,
                            f"the worker process running the audit exited unexpectedly (exit code {code})",
                        )
                        if not self._stop.is_set():
                            self._spawn()
                self._enforce_timeout()
            except Exception:  # never let the supervisor die
                log.exception("job supervisor error")

    def _enforce_timeout(self) -> None:
        limit = dt.timedelta(seconds=self.settings.job_timeout_s)
        now = utcnow()
        with self.sessions() as s:
            running = s.scalars(select(AuditJob).where(AuditJob.status == "running")).all()
            for job in running:
                started = job.started_at
                if started is None:
                    continue
                if started.tzinfo is None:
                    started = started.replace(tzinfo=dt.UTC)
                if now - started > limit and job.worker_id in self.procs:
                    p = self.procs.pop(job.worker_id)
                    p.kill()
                    p.join(timeout=5)
                    s.execute(
                        update(AuditJob)
                        .where(AuditJob.id == job.id, AuditJob.status == "running")
                        .values(
                            status="failed",
                            finished_at=now,
                            progress="failed",
                            error=f"the audit exceeded the time limit of {self.settings.job_timeout_s} s "
                            "(setting ASSAY_JOB_TIMEOUT_S) and was stopped",
                        )
                    )
                    s.commit()
                    self._spawn()

    def _handle_dead(self, worker_id: str, reason: str, *, refund: bool = False) -> None:
        """The job a dead worker held: re-queue it if it has attempts left, else fail it with ``reason``.

        ``refund``: the run does not count as an attempt (the server was stopped on purpose).
        """
        with self.sessions() as s:
            jobs = s.scalars(
                select(AuditJob).where(AuditJob.status == "running", AuditJob.worker_id == worker_id)
            ).all()
            for job in jobs:
                if refund:
                    job.attempts = max(0, job.attempts - 1)
                self._requeue_or_fail(s, job, reason)
            s.commit()

    @staticmethod
    def _requeue_or_fail(s: Session, job: AuditJob, reason: str) -> None:
        if job.attempts < MAX_ATTEMPTS:
            job.status = "queued"
            job.progress = f"re-queued: {reason}"
            job.worker_id = None
            log.warning("job re-queued", extra={"job_id": job.id, "reason": reason})
        else:
            job.status = "failed"
            job.error = f"{reason}; gave up after {job.attempts} attempts"
            job.progress = "failed"
            job.finished_at = utcnow()
            log.warning("job failed", extra={"job_id": job.id, "reason": reason})

    def recover(self) -> int:
        """Orphaned jobs: ``running`` under no live worker of this process and without a heartbeat for
        STALE_S (their server stopped or crashed). Re-queue or fail them; returns how many.

        Called at start and then every few seconds, so a job orphaned by a crash is picked up soon
        after the restart, while jobs of another live server on the same database (fresh heartbeats)
        are left alone.
        """
        now = utcnow()
        n = 0
        with self.sessions() as s:
            jobs = s.scalars(select(AuditJob).where(AuditJob.status == "running")).all()
            for job in jobs:
                if job.worker_id and job.worker_id.startswith(self.instance):
                    continue
                beat = job.heartbeat_at or job.started_at
                if beat is not None:
                    beat = beat if beat.tzinfo is not None else beat.replace(tzinfo=dt.UTC)
                    if (now - beat).total_seconds() < STALE_S:
                        continue
                self._requeue_or_fail(s, job, "the server stopped while the audit was running")
                n += 1
            s.commit()
        return n


__all__ = [
    "JobManager",
    "HEARTBEAT_S",
    "MAX_ATTEMPTS",
    "STALE_S",
    "check_http_spec",
    "claim_next",
    "resolve_spec",
    "run_job",
    "spec_sha256",
    "worker_main",
]
