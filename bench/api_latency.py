"""Request latency at a fixed arrival rate against a real ``assay serve`` on 127.0.0.1.

Open-loop load (requests are sent on a schedule, latency counted from the scheduled time, so a slow
server cannot hide behind a slow client; sent by :class:`RawClient`, a minimal keep-alive HTTP/1.1
client on asyncio streams): ``--rate`` requests/s for ``--seconds`` on

* OUR routes: ``GET /v1/datasets/{id}`` (bearer-key auth + organisation-scoped database read) and
  ``POST /v1/audits`` (spec validation + ids resolved + job row + audit-log row, returns 202);
* the ANCHOR: ``GET /healthz`` of the same server (uvicorn + FastAPI + our middleware, no work):
  the floor any route of this stack pays.

Prints p50/p90/p99/max, errors, and p99 as a ratio of the anchor's, plus the CPU the server
process (and its children) and this load generator used per request during each run, so that a
saturated client or a busy machine shows in the figures. The issue's target for
``POST /v1/reasons`` (p99 < 50 ms at 200 requests/s for 60 s, no errors) is checked with

    .venv/bin/python bench/api_latency.py --only --path /v1/reasons --body bench/reasons_body.json \
        --rates 10:20,50:20,100:20,200:60

``{model_id}`` and ``{dataset_id}`` in FILE are replaced by the ids of the uploaded German-credit
model and data (bench/reasons_body.json: one declined German-credit applicant).

    .venv/bin/python bench/api_latency.py [--rate 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
GERMAN = REPO / "fixtures" / "german_credit"


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams, for the load only.

    httpx's connection pool scans its whole queue of waiting requests on every state change, so
    once a backlog forms the load generator itself burns a core (seen with py-spy: the time goes to
    ``AsyncConnectionPool._assign_requests_to_connections``) and the figures measure the client.
    Here a request takes an idle connection or opens one (at most ``max_connections``; beyond that
    it waits on a FIFO semaphore), writes pre-encoded bytes and reads the response by
    ``Content-Length`` (or chunks): O(1) per request. A reused connection that the server had
    closed (uvicorn drops idle keep-alive connections after 5 s) is retried once on a new one.
    """

    def __init__(self, host: str, port: int, max_connections: int = 256, timeout: float = 30.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        # FIFO: requests cycle over the open connections (with several server processes, each
        # connection belongs to the one that accepted it, so the load is spread over all of them)
        self.idle: collections.deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = collections.deque()
        self.slots = asyncio.Semaphore(max_connections)

    def encode(self, method: str, path: str, body: Any, headers: dict[str, str]) -> bytes:
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + data

    async def send(self, payload: bytes) -> int:
        """The response status (the body is read and dropped)."""
        async with self.slots, asyncio.timeout(self.timeout):
            while True:
                reused = False
                while self.idle and not reused:
                    conn = self.idle.popleft()
                    reused = not conn[0].at_eof()
                    if not reused:
                        conn[1].close()
                if not reused:
                    conn = await asyncio.open_connection(self.host, self.port)
                try:
                    status, keep = await self._exchange(*conn, payload)
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    conn[1].close()
                    # the server closed an idle keep-alive connection as we reused it: nothing was
                    # answered, so send again on a new connection (as HTTP clients do)
                    if reused and not getattr(exc, "partial", b""):
                        continue
                    raise
                except BaseException:
                    conn[1].close()
                    raise
                if keep:
                    self.idle.append(conn)
                else:
                    conn[1].close()
                return status

    @staticmethod
    async def _exchange(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
    ) -> tuple[int, bool]:
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if "content-length" in fields:
            await reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            while (size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)) > 0:
                await reader.readexactly(size + 2)
            await reader.readuntil(b"\r\n")
        return status, fields.get("connection", "").lower() != "close"

    def close(self) -> None:
        for _, w in self.idle:
            w.close()
        self.idle.clear()


async def _load(
    client: RawClient, payload: bytes, rate: float, seconds: float
) -> tuple[np.ndarray, int, dict[str, int]]:
    n = int(rate * seconds)
    lat = np.full(n, np.nan)
    kinds: dict[str, int] = {}
    start = time.perf_counter() + 0.2

    async def one(i: int) -> None:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        kind = None
        try:
            status = await client.send(payload)
            if status >= 400:
                kind = f"HTTP {status}"
        except (OSError, EOFError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
            kind = type(exc).__name__
        lat[i] = time.perf_counter() - due
        if kind:
            kinds[kind] = kinds.get(kind, 0) + 1

    await asyncio.gather(*(one(i) for i in range(n)))
    return lat * 1000, sum(kinds.values()), kinds


def _summary(name: str, lat: np.ndarray, errors: int) -> dict[str, float]:
    p = np.percentile(lat, [50, 90, 99])
    out = {"p50": p[0], "p90": p[1], "p99": p[2], "max": float(lat.max()), "errors": errors, "n": len(lat)}
    print(
        f"{name:34s} n={len(lat):5d} p50 {p[0]:6.1f} ms  p90 {p[1]:6.1f}  p99 {p[2]:6.1f}"
        f"  max {lat.max():6.1f}  errors {errors}",
        flush=True,
    )
    return out


def _server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its reaped children plus its live children."""
    tick = os.sysconf("SC_CLK_TCK")

    def one(p: int, children: bool) -> float:
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        t = int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if children else 0)
        return t / tick

    total = one(pid, True)
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        kids = []
    return total + sum(one(int(k), True) for k in kids)


def _client_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rates(text: str | None, rate: float, seconds: float) -> list[tuple[float, float]]:
    if not text:
        return [(rate, seconds)]
    out = []
    for part in text.split(","):
        r, _, s = part.partition(":")
        out.append((float(r), float(s) if s else seconds))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--path", help="an extra route to measure (POST when --body is given)")
    ap.add_argument("--body", type=Path, help="JSON body for --path")
    ap.add_argument("--only", action="store_true", help="measure only the anchor and --path")
    ap.add_argument(
        "--rates", help="RATE[:SECONDS],... e.g. 10:20,50:20,100:20,200:60 (overrides --rate/--seconds)"
    )
    ap.add_argument("--no-anchor", action="store_true", help="skip the /healthz anchor")
    args = ap.parse_args()
    plan = _rates(args.rates, args.rate, args.seconds)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: stop the server

    with tempfile.TemporaryDirectory(prefix="assay-bench-") as tmp:
        env = {
            **os.environ,
            "ASSAY_DATA_DIR": str(Path(tmp) / "data"),
            "ASSAY_WORKERS": "1",
            "ASSAY_SCHEDULER": "false",
            "ASSAY_LOG_LEVEL": "WARNING",
        }
        env.pop("ASSAY_DATABASE_URL", None)
        key = (
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "service.cli",
                    "keys",
                    "create",
                    "--org",
                    "bench",
                    "--role",
                    "auditor",
                ],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "1"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        h = {"Authorization": f"Bearer {key}"}
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            ds = httpx.post(
                f"{url}/v1/datasets",
                files={"file": ("g.csv", (GERMAN / "german_credit.csv").read_bytes())},
                headers=h,
            ).json()["id"]
            mdl = httpx.post(
                f"{url}/v1/models",
                files={"file": ("m.skops", (GERMAN / "model.skops").read_bytes())},
                headers=h,
            ).json()["id"]
            spec = yaml.safe_load((GERMAN / "audit.yaml").read_text())
            spec |= {
                "dataset": ds,
                "model": mdl,
                "reason_codes": yaml.safe_load((GERMAN / "reasons.yaml").read_text()),
            }
            spec = json.loads(json.dumps(spec, default=str))
            cases: list[tuple[str, str, str, Any, dict[str, str]]] = [
                ("anchor GET /healthz", "GET", f"{url}/healthz", None, {}),
                ("assay GET /v1/datasets/{id}", "GET", f"{url}/v1/datasets/{ds}", None, h),
            ]
            if args.path:
                # the body may name the uploaded German-credit fixtures as {model_id} / {dataset_id}
                raw = (
                    args.body.read_text().replace("{model_id}", mdl).replace("{dataset_id}", ds)
                    if args.body
                    else ""
                )
                body = json.loads(raw) if raw else None
                cases.append((f"assay {args.path}", "POST" if body else "GET", url + args.path, body, h))
            if args.only:
                cases = [c for c in cases if c[0].startswith("anchor") or c[2] == url + args.path]
            else:
                # last: at a sustained rate this queues thousands of real audits, which the worker then
                # runs, taking CPU from anything measured afterwards
                cases.append(("assay POST /v1/audits (202)", "POST", f"{url}/v1/audits", spec, h))
            if args.no_anchor:
                cases = [c for c in cases if not c[0].startswith("anchor")]
            print(
                f"loopback, {os.cpu_count()} cores shared, one API process; "
                f"load average before: {os.getloadavg()[0]:.2f}"
            )
            results = {}

            async def run_all() -> None:
                client = RawClient("127.0.0.1", port)
                try:
                    await client.send(client.encode("GET", "/healthz", None, {}))
                    for name, method, u, body, hh in cases:
                        payload = client.encode(method, u.removeprefix(url), body, hh)
                        # warm-up: concurrent first requests (the reason engine is built once)
                        await asyncio.gather(*(client.send(payload) for _ in range(8)))
                        for rate, seconds in plan:
                            await _load(client, payload, rate, 1.0)  # warm-up
                            s0, c0, w0 = _server_cpu_s(server.pid), _client_cpu_s(), time.perf_counter()
                            lat, err, kinds = await _load(client, payload, rate, seconds)
                            s1, c1, w1 = _server_cpu_s(server.pid), _client_cpu_s(), time.perf_counter()
                            label = f"{name} @{rate:g}/s {seconds:g}s"
                            results[label] = _summary(label, lat, err)
                            if kinds:
                                print(f"{'':34s} errors: {kinds}", flush=True)
                            n = max(len(lat), 1)
                            print(
                                f"{'':34s} server CPU {1e3 * (s1 - s0) / n:5.2f} ms/request "
                                f"({100 * (s1 - s0) / (w1 - w0):3.0f}% of a core), load generator "
                                f"{1e3 * (c1 - c0) / n:5.2f} ms/request ({100 * (c1 - c0) / (w1 - w0):3.0f}%"
                                f" of a core), load average {os.getloadavg()[0]:.2f}",
                                flush=True,
                            )
                finally:
                    client.close()

            asyncio.run(run_all())
        finally:
            server.terminate()
            server.wait(timeout=30)
    anchors = [r["p99"] for name, r in results.items() if name.startswith("anchor")]
    if anchors:
        print("\np99 as a multiple of the anchor's p99 (first anchor run):")
        for name, r in results.items():
            print(f"  {name:48s} {r['p99'] / anchors[0]:5.2f}x")


if __name__ == "__main__":
    main()
