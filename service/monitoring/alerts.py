"""Alert delivery: a JSON POST to each webhook, retried with exponential backoff, off the monitoring path.

Payload (``Content-Type: application/json``; stable keys, more may be added)::

    {
      "event": "assay.monitor.window",      # one POST per window that raised at least one alert
      "monitor": {"id": "...", "name": "..."},
      "window": {"id": "...", "seq": 3, "source": "incoming/window_3.csv", "rows": 5000,
                 "created_at": "2026-12-03T06:00:00Z"},
      "summary": {"n_alerts": 2, "worst_severity": "high", "max_psi_feature": "PAY_0", "max_psi": 0.31,
                  "score_psi": 0.12},
      "alerts": [{"severity": "high", "section": "drift", "title": "...", "detail": "...",
                  "metric": "psi", "value": 0.31, "threshold": 0.25, "threshold_source": "default"}]
    }

Delivery: up to ``retries + 1`` attempts per target; a 2xx answer is success; connection errors,
timeouts, 429 and 5xx are retried after ``backoff · 2^attempt`` seconds (capped at 60 s); other 4xx
are not retried. Deliveries run on a small daemon thread pool, so a slow or failing webhook never
delays a window or the scheduler; the outcome of each target is recorded on the window
(``alert_status``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx

log = logging.getLogger("assay.monitoring.alerts")

_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="assay-alerts")
    return _POOL


def send_webhook(
    url: str,
    payload: dict[str, Any],
    *,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 5.0,
    headers: dict[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """POST with retries; returns ``{url, ok, attempts, status, error}`` and never raises."""
    status: int | None = None
    error: str | None = None
    attempts = 0
    for attempt in range(retries + 1):
        attempts = attempt + 1
        try:
            resp = httpx.post(url, json=payload, timeout=timeout, headers=headers or {})
            status = resp.status_code
            if 200 <= status < 300:
                return {"url": url, "ok": True, "attempts": attempts, "status": status, "error": None}
            error = f"HTTP {status}"
            if status < 500 and status != 429:
                break
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if attempt < retries:
            sleep(min(backoff * 2**attempt, 60.0))
    log.warning("alert delivery to %s failed after %d attempt(s): %s", url, attempts, error)
    return {"url": url, "ok": False, "attempts": attempts, "status": status, "error": error}


def deliver(
    targets: list[dict[str, Any]],
    payload: dict[str, Any],
    *,
    on_done: Callable[[list[dict[str, Any]]], None] | None = None,
    retries: int = 4,
    backoff: float = 1.0,
) -> Future[list[dict[str, Any]]]:
    """Deliver to every target in the background, each independently (a failing one delays no other).

    Returns at once: a Future of the per-target outcomes, completed (and ``on_done`` called) when
    every target has succeeded or used up its retries.
    """
    futures = [
        _pool().submit(
            send_webhook,
            str(t["webhook"]),
            payload,
            retries=int(t.get("retries", retries)),
            backoff=float(t.get("backoff", backoff)),
            headers=t.get("headers"),
        )
        for t in targets
    ]
    done: Future[list[dict[str, Any]]] = Future()

    def collect() -> None:
        out = [f.result() for f in futures]
        if on_done is not None:
            try:
                on_done(out)
            except Exception:  # recording the outcome must not lose the result
                log.exception("recording alert delivery failed")
        done.set_result(out)

    threading.Thread(target=collect, name="assay-alerts-collect", daemon=True).start()
    return done


def build_payload(monitor: dict[str, Any], window: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The documented webhook body for one window."""
    from service.result import SEVERITY_ORDER

    alerts = result.get("alerts") or []
    worst = max((a["severity"] for a in alerts), key=lambda s: SEVERITY_ORDER[s], default=None)
    summary = (result.get("drift") or {}).get("summary") or {}
    score = (result.get("drift") or {}).get("score") or {}
    return {
        "event": "assay.monitor.window",
        "monitor": monitor,
        "window": window,
        "summary": {
            "n_alerts": len(alerts),
            "worst_severity": worst,
            "max_psi_feature": summary.get("max_psi_feature"),
            "max_psi": summary.get("max_psi"),
            "score_psi": score.get("psi"),
        },
        "alerts": [
            {
                k: a.get(k)
                for k in (
                    "severity",
                    "section",
                    "title",
                    "detail",
                    "metric",
                    "value",
                    "threshold",
                    "threshold_source",
                )
            }
            for a in alerts
        ],
    }


__all__ = ["build_payload", "deliver", "send_webhook"]
