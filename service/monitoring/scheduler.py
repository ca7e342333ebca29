"""Monitor schedules under ``assay serve``: APScheduler 3 with its job store in the Assay database.

One job per scheduled monitor, id ``monitor:<id>``, cron from the monitor file (UTC). Why no run is
ever duplicated, even across restarts:

* the job store is persistent (table ``apscheduler_jobs`` in the same database) and each job has a
  fixed id: a restart finds the one job and keeps it (its next run time included), never adds a
  second; a job is re-scheduled only when its cron changed, and removed when its monitor has gone;
* the scheduler starts paused, the jobs are synced, then it resumes: ``coalesce=True`` makes all the
  runs missed while the server was down one run on start-up, however late (``misfire_grace_time``
  None: a late window is still a window, as a run only takes the oldest unprocessed file), and
  ``max_instances=1``: a slow window never overlaps the next;
* each run claims its source file by inserting the window row first (unique monitor + file sha256),
  so a CLI run and a scheduled run racing for the same file process it once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from service.config import Settings

log = logging.getLogger("assay.monitoring.scheduler")

JOB_PREFIX = "monitor:"
_ENGINES: dict[str, Engine] = {}

TriggerFactory = Callable[[str], BaseTrigger]


_DOW = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _dow_field(field: str) -> str:
    """Standard cron day-of-week (0 or 7 = Sunday) as APScheduler 3 names.

    APScheduler 3 numbers days from Monday = 0, and ``CronTrigger.from_crontab`` passes the field
    through unchanged, so "0 6 * * 1" would fire on Tuesdays. Numbers are translated to names here.
    """
    out: list[str] = []
    for tok in field.split(","):
        body, _, step = tok.partition("/")
        if body in ("*", "?") and not step:
            return "*"
        if any(ch.isalpha() for ch in body):
            out.append(tok)
            continue
        if body in ("*", "?"):
            lo, hi = 0, 6
        elif "-" in body:
            a, b = body.split("-", 1)
            lo, hi = int(a), int(b)
        else:
            lo = hi = int(body)
        if step and "-" not in body and body not in ("*", "?"):
            hi = 6
        if not (0 <= lo <= 7 and 0 <= hi <= 7 and lo <= hi):
            raise ValueError(f"day of week {tok!r} is not in 0-7")
        out.extend(_DOW[d % 7] for d in range(lo, hi + 1, int(step) if step else 1))
    return ",".join(dict.fromkeys(out))


def cron_trigger(expr: str) -> BaseTrigger:
    """A UTC trigger from a standard 5-field cron expression (minute hour day month day-of-week)."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month day-of-week), got {len(fields)}")
    minute, hour, day, month, dow = fields
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=_dow_field(dow), timezone="UTC"
    )


def _engine(url: str) -> Engine:
    if url not in _ENGINES:
        from service.store.db import make_engine

        _ENGINES[url] = make_engine(url=url)
    return _ENGINES[url]


def run_scheduled(monitor_id: str, url: str, data_dir: str) -> str:
    """The scheduled job (module-level so the persistent job store can reference it by name)."""
    from service.monitoring.monitor import run_window
    from service.store.db import session_factory

    try:
        outcome = run_window(session_factory(_engine(url)), monitor_id, data_dir=Path(data_dir))
    except Exception as exc:  # a failing window is recorded on the window row; the schedule goes on
        log.error("monitor %s: window failed: %s", monitor_id, exc)
        return f"failed: {exc}"
    log.info("monitor %s: %s", monitor_id, outcome.message)
    return outcome.message


def sync_jobs(
    scheduler: BackgroundScheduler,
    engine: Engine,
    settings: Settings,
    *,
    trigger_factory: TriggerFactory = cron_trigger,
) -> list[str]:
    """Make the scheduler's jobs match the monitors that have a schedule; returns the job ids."""
    from service.monitoring import store
    from service.store.db import session_factory

    url = engine.url.render_as_string(hide_password=False)
    with session_factory(engine)() as session:
        wanted = {
            f"{JOB_PREFIX}{m.id}": (m.id, m.config.get("schedule"))
            for m in store.list_monitors(session, all_orgs=True)
            if m.config.get("schedule")
        }
    existing = {job.id: job for job in scheduler.get_jobs()}
    for job_id, job in existing.items():
        if job_id.startswith(JOB_PREFIX) and job_id not in wanted:
            job.remove()
    for job_id, (mid, cron) in wanted.items():
        trigger = trigger_factory(str(cron))
        args = [mid, url, str(settings.data_dir.resolve())]
        job = existing.get(job_id)
        if job is None:
            scheduler.add_job(run_scheduled, trigger=trigger, id=job_id, name=f"monitor {mid}", args=args)
            continue
        # keep the stored job (and its next run time, so a run missed while down still happens)
        if str(job.trigger) != str(trigger):
            scheduler.reschedule_job(job_id, trigger=trigger)
        if list(job.args) != args or job.misfire_grace_time is not None:
            scheduler.modify_job(job_id, args=args, misfire_grace_time=None)
    return sorted(wanted)


def start(
    settings: Settings,
    engine: Engine,
    *,
    trigger_factory: TriggerFactory = cron_trigger,
    resync_seconds: int | None = 60,
) -> BackgroundScheduler:
    """Start the background scheduler (called by ``assay serve``); returns it (``.shutdown()`` to stop)."""
    from service.store.migrate import upgrade

    upgrade(engine)
    scheduler = make_scheduler(engine)
    scheduler.start(paused=True)  # nothing runs before the stored jobs match the monitors
    _RUNNING[engine.url.render_as_string(hide_password=False)] = scheduler
    sync_jobs(scheduler, engine, settings, trigger_factory=trigger_factory)
    if resync_seconds:
        # monitors created through the API after start-up get their job within a minute
        scheduler.add_job(
            _resync,
            "interval",
            seconds=resync_seconds,
            id="assay:monitor-resync",
            args=[engine.url.render_as_string(hide_password=False), str(settings.data_dir)],
            replace_existing=True,
        )
    scheduler.resume()
    return scheduler


class _Scheduler(BackgroundScheduler):
    def _process_jobs(self) -> float | None:
        # APScheduler 3 wakes its loop once more after shutdown(); processing then would fail to
        # submit a due job to the stopped executor and still advance its next run time (a lost run).
        if self.state == STATE_STOPPED:
            return None
        return super()._process_jobs()  # type: ignore[no-any-return]


def make_scheduler(engine: Engine) -> BackgroundScheduler:
    """A background scheduler on the persistent job store in ``engine`` (not started)."""
    return _Scheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")},
        executors={"default": ThreadPoolExecutor(max_workers=2)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone="UTC",
    )


def _resync(url: str, data_dir: str) -> None:
    sched = _RUNNING.get(url)
    if sched is not None:
        sync_jobs(sched, _engine(url), Settings(data_dir=Path(data_dir)))


_RUNNING: dict[str, Any] = {}


__all__ = ["JOB_PREFIX", "cron_trigger", "make_scheduler", "run_scheduled", "start", "sync_jobs"]
