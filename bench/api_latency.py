"""Request latency at a fixed arrival rate against a real ``assay serve`` on 127.0.0.1.

Open-loop load (requests are sent on a schedule, latency counted from the scheduled time, so a slow
server cannot hide behind a slow client): ``--rate`` requests/s for ``--seconds`` on

* OUR routes: ``GET /v1/datasets/{id}`` (bearer-key auth + organisation-scoped database read) and
  ``POST /v1/audits`` (spec validation + ids resolved + job row + audit-log row, returns 202);
* the ANCHOR: ``GET /healthz`` of the same server (uvicorn + FastAPI + our middleware, no work):
  the floor any route of this stack pays.

Prints p50/p90/p99/max, errors, and p99 as a ratio of the anchor's. The issue's target for
``POST /v1/reasons`` (p99 < 50 ms at 200 requests/s for 60 s, no errors) is checked with
``--only --path /v1/reasons --body FILE --seconds 60``; ``{model_id}`` and
``{dataset_id}`` in FILE are replaced by the ids of the uploaded German-credit model and data.

    .venv/bin/python bench/api_latency.py [--rate 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


async def _load(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: Any,
    headers: dict[str, str],
    rate: float,
    seconds: float,
) -> tuple[np.ndarray, int]:
    n = int(rate * seconds)
    lat = np.full(n, np.nan)
    errors = 0
    start = time.perf_counter() + 0.2

    async def one(i: int) -> None:
        nonlocal errors
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        try:
            r = await client.request(method, url, json=body, headers=headers)
            ok = r.status_code < 400
        except httpx.HTTPError:
            ok = False
        lat[i] = time.perf_counter() - due
        errors += not ok

    await asyncio.gather(*(one(i) for i in range(n)))
    return lat * 1000, errors


def _summary(name: str, lat: np.ndarray, errors: int) -> dict[str, float]:
    p = np.percentile(lat, [50, 90, 99])
    out = {"p50": p[0], "p90": p[1], "p99": p[2], "max": float(lat.max()), "errors": errors, "n": len(lat)}
    print(
        f"{name:34s} n={len(lat):5d} p50 {p[0]:6.1f} ms  p90 {p[1]:6.1f}  p99 {p[2]:6.1f}"
        f"  max {lat.max():6.1f}  errors {errors}",
        flush=True,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--path", help="an extra route to measure (POST when --body is given)")
    ap.add_argument("--body", type=Path, help="JSON body for --path")
    ap.add_argument("--only", action="store_true", help="measure only the anchor and --path")
    args = ap.parse_args()

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
            print(f"{args.rate:.0f} requests/s for {args.seconds:.0f} s each, loopback, 2 cores shared:")
            results = {}

            async def run_all() -> None:
                limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
                async with httpx.AsyncClient(timeout=30, limits=limits) as client:
                    await client.get(f"{url}/healthz")
                    for name, method, u, body, hh in cases:
                        await _load(client, method, u, body, hh, args.rate, 1.0)  # warm-up
                        lat, err = await _load(client, method, u, body, hh, args.rate, args.seconds)
                        results[name] = _summary(name, lat, err)

            asyncio.run(run_all())
        finally:
            server.terminate()
            server.wait(timeout=30)
    anchor = results["anchor GET /healthz"]["p99"]
    print("\np99 as a multiple of the anchor's p99:")
    for name, r in results.items():
        print(f"  {name:34s} {r['p99'] / anchor:5.2f}x")


if __name__ == "__main__":
    main()
