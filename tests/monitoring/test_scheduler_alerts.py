"""A monitor on a schedule alerts a local webhook; a failing webhook is retried with backoff without
blocking monitoring; restarting the scheduler neither duplicates the job nor re-processes a file."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import sqlalchemy as sa
from apscheduler.triggers.interval import IntervalTrigger

from service.config import Settings
from service.monitoring import alerts, scheduler, store
from service.monitoring.monitor import ensure_monitor, load_monitor, run_window
from tests.monitoring.conftest import write_monitor


def _wait(pred, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def _every_second(_cron: str) -> IntervalTrigger:
    return IntervalTrigger(seconds=1, timezone="UTC")


def test_send_webhook_retries_with_exponential_backoff(receiver):
    port = receiver.server_address[1]
    slept: list[float] = []
    out = alerts.send_webhook(
        f"http://127.0.0.1:{port}/fail", {"x": 1}, retries=3, backoff=0.5, sleep=slept.append
    )
    assert out["ok"] is False and out["attempts"] == 4 and out["status"] == 500
    assert slept == [0.5, 1.0, 2.0]  # backoff · 2^attempt
    assert len(receiver.calls) == 4
    ok = alerts.send_webhook(f"http://127.0.0.1:{port}/ok", {"x": 2}, sleep=slept.append)
    assert ok["ok"] and ok["attempts"] == 1
    refused = alerts.send_webhook("http://127.0.0.1:9/none", {}, retries=1, backoff=0.0, timeout=1)
    assert not refused["ok"] and refused["attempts"] == 2 and "ConnectError" in refused["error"]


def test_failing_webhook_does_not_block_the_window(db, tmp_path, receiver):
    _engine, sessions, data_dir = db
    port = receiver.server_address[1]
    targets = [
        {"webhook": f"http://127.0.0.1:{port}/fail", "retries": 2, "backoff": 1.0},
        {"webhook": f"http://127.0.0.1:{port}/ok", "retries": 0},
    ]
    mspec = load_monitor(write_monitor(tmp_path, alerts=targets))
    with sessions() as s:
        mid = ensure_monitor(s, mspec).id
        s.commit()
    t0 = time.monotonic()
    out = run_window(sessions, mid, data_dir=data_dir)
    returned = time.monotonic() - t0
    assert out.result["alerts"], "window_2 has drift alerts"
    assert not out.delivery.done()  # the failing target is still backing off (1 s + 2 s) ...
    with sessions() as s:  # ... but the window is already stored
        assert store.get_window(s, mid, 1).status == "succeeded"
    outcomes = out.delivery.result(timeout=30)
    assert time.monotonic() - t0 >= returned + 2.5
    by_url = {o["url"].rsplit("/", 1)[1]: o for o in outcomes}
    assert by_url["fail"]["attempts"] == 3 and not by_url["fail"]["ok"]
    assert by_url["ok"]["ok"] and by_url["ok"]["attempts"] == 1
    ok_calls = [c for c in receiver.calls if c[0] == "/ok"]
    fail_calls = [c for c in receiver.calls if c[0] == "/fail"]
    assert ok_calls[0][1] < fail_calls[-1][1]  # the healthy target was not held up by the failing one
    body = ok_calls[0][2]
    assert body["event"] == "assay.monitor.window" and body["monitor"]["name"] == "taiwan-test"
    assert body["window"]["seq"] == 1 and body["summary"]["n_alerts"] == len(body["alerts"])
    assert all(a["threshold_source"] in ("default", "policy", None) for a in body["alerts"])
    assert _wait(lambda: _status(sessions, mid, 1).get("state") == "failed", 10)
    assert {t["url"].rsplit("/", 1)[1] for t in _status(sessions, mid, 1)["targets"]} == {"fail", "ok"}


def _status(sessions, mid, seq):
    with sessions() as s:
        return store.get_window(s, mid, seq).alert_status or {}


def _count_windows(sessions, mid) -> int:
    with sessions() as s:
        return len(store.windows(s, mid))


def test_schedule_runs_alerts_and_survives_restart(db, tmp_path, receiver):
    engine, sessions, data_dir = db
    port = receiver.server_address[1]
    mpath = write_monitor(tmp_path, alerts=[{"webhook": f"http://127.0.0.1:{port}/ok"}], schedule="0 6 * * 1")
    with sessions() as s:
        mid = ensure_monitor(s, load_monitor(mpath)).id
        s.commit()
    settings = Settings(data_dir=data_dir)
    sched = scheduler.start(settings, engine, trigger_factory=_every_second, resync_seconds=None)
    try:
        assert _wait(lambda: _count_windows(sessions, mid) == 3, 90), "three scheduled windows"
        assert _wait(lambda: len([c for c in receiver.calls if c[0] == "/ok"]) >= 3, 30)
    finally:
        sched.shutdown(wait=True)
    seqs = sorted(c[2]["window"]["seq"] for c in receiver.calls)
    assert seqs == [1, 2, 3]  # one POST per window with alerts, no duplicates
    with engine.connect() as conn:
        jobs = conn.execute(sa.text("SELECT id FROM apscheduler_jobs")).scalars().all()
    assert jobs == [f"monitor:{mid}"]
    # restart on the same database: still one job, and no file is processed twice
    sched2 = scheduler.start(settings, engine, trigger_factory=_every_second, resync_seconds=None)
    try:
        time.sleep(2.5)
        with engine.connect() as conn:
            jobs = conn.execute(sa.text("SELECT id FROM apscheduler_jobs")).scalars().all()
        assert jobs == [f"monitor:{mid}"]
        assert _count_windows(sessions, mid) == 3
    finally:
        sched2.shutdown(wait=True)
    with sessions() as s:
        shas = [w.source_sha256 for w in store.windows(s, mid)]
    assert len(shas) == len(set(shas)) == 3


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("0 6 * * 1", [dt.datetime(2026, 12, 7, 6, 0)]),  # Monday 06:00 (cron: 1 = Monday)
        ("30 2 * * 0", [dt.datetime(2026, 12, 6, 2, 30)]),  # Sunday (0)
        ("30 2 * * 7", [dt.datetime(2026, 12, 6, 2, 30)]),  # Sunday (7)
        ("0 0 * * 1-5", [dt.datetime(2026, 12, 4), dt.datetime(2026, 12, 7), dt.datetime(2026, 12, 8)]),
        ("0 0 * * 5-6", [dt.datetime(2026, 12, 4), dt.datetime(2026, 12, 5), dt.datetime(2026, 12, 11)]),
        ("15 * * * *", [dt.datetime(2026, 12, 3, 12, 15), dt.datetime(2026, 12, 3, 13, 15)]),
    ],
)
def test_cron_matches_standard_cron_semantics(expr, expected):
    """Expected fire times worked out from a calendar: 2026-12-03 is a Thursday."""
    trig = scheduler.cron_trigger(expr)
    t = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
    got = []
    for _ in expected:
        t = trig.get_next_fire_time(None, t + dt.timedelta(seconds=1) if got else t)
        got.append(t.replace(tzinfo=None))
    assert got == expected


def test_assay_serve_runs_missed_schedule_once_and_alerts(tmp_path, receiver):
    """``assay serve`` (a real process) runs the stored schedule: the runs missed while it was down
    are one window on start-up (three unprocessed files, several missed fire times), the local
    webhook gets that window's alerts, and the job keeps one future next run time."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    import httpx

    from service.store.db import make_engine, session_factory
    from service.store.migrate import upgrade
    from tests.conftest import REPO

    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    engine = make_engine(settings)
    upgrade(engine)
    sessions = session_factory(engine)
    now = dt.datetime.now(dt.UTC)
    cron = f"0 {(now.hour + 12) % 24} * * *"  # daily, the next regular fire at least 11 h away
    port = receiver.server_address[1]
    mpath = write_monitor(tmp_path, alerts=[{"webhook": f"http://127.0.0.1:{port}/ok"}], schedule=cron)
    with sessions() as s:
        mid = ensure_monitor(s, load_monitor(mpath)).id
        s.commit()
    # the server was down for the last four fire times: store the job as a server stopped then would
    sched = scheduler.make_scheduler(engine)
    sched.start(paused=True)
    scheduler.sync_jobs(sched, engine, settings)
    missed = scheduler.cron_trigger(cron).get_next_fire_time(None, now - dt.timedelta(days=4))
    sched.modify_job(f"monitor:{mid}", next_run_time=missed)
    sched.shutdown(wait=False)
    engine.dispose()

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        api_port = sk.getsockname()[1]
    env = {**os.environ, "ASSAY_DATA_DIR": str(data), "ASSAY_WORKERS": "1", "ASSAY_LOG_LEVEL": "WARNING"}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(api_port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        assert _wait(lambda: len(receiver.calls) >= 1, 90), (tmp_path / "serve.log").read_text()[-3000:]
        assert httpx.get(f"http://127.0.0.1:{api_port}/readyz", timeout=5).status_code == 200
        time.sleep(3)  # a duplicate run would show up here
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    engine = make_engine(settings)
    sessions = session_factory(engine)
    assert _count_windows(sessions, mid) == 1
    assert [c[2]["window"]["seq"] for c in receiver.calls] == [1]
    body = receiver.calls[0][2]
    assert body["monitor"] == {"id": mid, "name": "taiwan-test"} and body["alerts"]
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, next_run_time FROM apscheduler_jobs")).all()
    jobs = dict(rows)
    assert set(jobs) == {f"monitor:{mid}", "assay:monitor-resync"}
    assert jobs[f"monitor:{mid}"] > time.time() + 11 * 3600  # the next regular fire, once
    engine.dispose()
