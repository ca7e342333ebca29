"""Request ids, structured JSON logs and Prometheus metrics (requests, durations, jobs by state)."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("assay.api")
access = logging.getLogger("assay.access")

_SECRET_HEADERS = {"authorization", "cookie", "x-api-key"}
# a caller's X-Request-ID is kept only if it is a plain token; otherwise a new one is made
_RID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    _skip = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in self._skip and k not in out and k not in _SECRET_HEADERS:
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "INFO") -> None:
    """JSON logs on stderr for the ``assay`` loggers (idempotent)."""
    root = logging.getLogger("assay")
    root.setLevel(level.upper())
    if not any(getattr(h, "_assay_json", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._assay_json = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """``logging.dictConfig`` for uvicorn's own loggers: the same JSON lines as Assay's (stderr)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "service.api.observability.JsonFormatter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


class Metrics:
    def __init__(self, app: FastAPI) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "assay_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.duration = Histogram(
            "assay_http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.registry.register(_JobsCollector(app))


class _JobsCollector:
    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Any:
        from service.store import repo
        from service.store.models import JOB_STATES

        g = GaugeMetricFamily("assay_audit_jobs", "Audit jobs by state", labels=["state"])
        try:
            with self.app.state.sessions() as s:
                counts = repo.count_jobs_by_state(s)
        except Exception:  # the database being down must not break /metrics
            counts = {}
        for state in JOB_STATES:
            g.add_metric([state], counts.get(state, 0))
        yield g

    def describe(self) -> list[Any]:
        return []


class RequestContext:
    """ASGI middleware: request id (``X-Request-ID`` in and out), access log line, metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for k, v in scope.get("headers", []):
            if k == b"x-request-id" and _RID.fullmatch(v):
                rid = v.decode("ascii")
        rid = rid or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            dt = time.perf_counter() - t0
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, path, str(status)).inc()
            self.metrics.duration.labels(method, path).observe(dt)
            principal = scope.get("state", {}).get("principal")
            access.info(
                "request",
                extra={
                    "request_id": rid,
                    "method": method,
                    "path": scope.get("path"),
                    "route": path,
                    "status": status,
                    "duration_ms": round(dt * 1000, 2),
                    "org_id": getattr(principal, "org_id", None),
                    "key_id": getattr(principal, "key_id", None),
                },
            )


def install(app: FastAPI) -> None:
    configure_logging(app.state.settings.log_level)
    app.state.metrics = Metrics(app)
    app.add_middleware(RequestContext, metrics=app.state.metrics)


__all__ = ["JsonFormatter", "Metrics", "RequestContext", "configure_logging", "install", "uvicorn_log_config"]
