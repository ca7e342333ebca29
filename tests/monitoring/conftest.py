"""Monitoring fixtures: a temporary database, the Taiwan shift monitor, a local webhook receiver."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

SHIFT = Path(__file__).resolve().parents[2] / "fixtures" / "taiwan_shift"


@pytest.fixture()
def db(tmp_path):
    from service.store.db import make_engine, session_factory
    from service.store.migrate import upgrade

    engine = make_engine(url=f"sqlite:///{tmp_path / 'assay.db'}")
    upgrade(engine)
    yield engine, session_factory(engine), tmp_path / "data"
    engine.dispose()


def write_monitor(
    tmp_path: Path, *, alerts: list | None = None, schedule: str | None = None, **extra
) -> Path:
    """A monitor over copies of the three Taiwan windows; mtimes make window_2 the oldest."""
    inc = tmp_path / "incoming"
    inc.mkdir(exist_ok=True)
    now = time.time()
    for i, name in enumerate(["window_2.csv", "window_1.csv", "window_3.csv"]):
        dst = inc / name
        shutil.copy(SHIFT / "incoming" / name, dst)
        os.utime(dst, (now - 300 + 60 * i, now - 300 + 60 * i))
    doc = {
        "name": "taiwan-test",
        "audit": str(SHIFT / "audit.yaml"),
        "reference": str(SHIFT / "reference.csv"),
        "source": str(inc / "*.csv"),
        "categorical": ["EDUCATION"],
        "bootstrap": 50,
        "alerts": alerts or [],
        **({"schedule": schedule} if schedule else {}),
        **extra,
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


class _Receiver(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls.append((self.path, time.monotonic(), body))  # type: ignore[attr-defined]
        code = 500 if self.path.startswith("/fail") else 200
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def receiver():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    srv.calls = []  # type: ignore[attr-defined]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()
