"""Upload throughput and server memory: a 1 GiB CSV through a real ``assay serve`` vs a plain disk copy.

Runs in one process: writes a CSV of ``--size-mb`` MiB, starts ``assay serve`` on 127.0.0.1 (temporary
data folder), uploads the file as a raw body and as multipart, and times

* OUR path: ``POST /v1/datasets`` (stream to disk + sha256 + content sniffing + database row), and
* the ANCHORS on the same file: ``shutil.copyfile`` (disk speed) and copy + ``hashlib.sha256`` (the
  least any content-addressed store must do),

printing MB/s and the ratio, plus the server's resident memory before and at its peak during the
uploads (VmHWM), to show the upload is streamed (flat memory), not held.

    .venv/bin/python bench/api_upload.py [--size-mb 1024] [--repeat 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_csv(path: Path, size: int) -> None:
    """A realistic-looking numeric CSV of ``size`` bytes (header, then rows)."""
    header = b"applicant_id,income,dti,utilisation,num_late_30,age_years,label_bad\n"
    rows = b"".join(
        b"%d,%d,%.2f,%.3f,%d,%d,%d\n"
        % (
            i,
            20000 + (i * 7919) % 180000,
            (i % 450) / 10,
            (i % 1000) / 1000,
            i % 4,
            18 + i % 60,
            int(i % 9 == 0),
        )
        for i in range(20000)
    )
    with path.open("wb") as fh:
        fh.write(header)
        written = len(header)
        while written + len(rows) <= size:
            fh.write(rows)
            written += len(rows)
        fh.write(rows[: size - written])


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0])
    return out


def anchor_copy(src: Path, dst: Path) -> float:
    t0 = time.perf_counter()
    shutil.copyfile(src, dst)
    dt = time.perf_counter() - t0
    dst.unlink()
    return dt


def anchor_copy_hash(src: Path, dst: Path) -> float:
    t0 = time.perf_counter()
    h = hashlib.sha256()
    with src.open("rb") as fi, dst.open("wb") as fo:
        while chunk := fi.read(1 << 20):
            h.update(chunk)
            fo.write(chunk)
    dt = time.perf_counter() - t0
    dst.unlink()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    size = args.size_mb * 2**20

    with tempfile.TemporaryDirectory(prefix="assay-bench-") as tmp:
        root = Path(tmp)
        src = root / "big.csv"
        write_csv(src, size)
        env = {
            **os.environ,
            "ASSAY_DATA_DIR": str(root / "data"),
            "ASSAY_WORKERS": "1",
            "ASSAY_SCHEDULER": "false",
            "ASSAY_LOG_LEVEL": "WARNING",
            "ASSAY_MAX_UPLOAD_BYTES": str(4 * size),
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
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            # warm-up: the first upload imports the sniffing code; memory is measured after it
            warm = httpx.post(
                f"{url}/v1/datasets",
                files={"file": ("warm.csv", b"a,b\n1,2\n")},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert warm.status_code == 201, warm.text
            base = rss_kib(server.pid)
            peak = [base["VmRSS"]]
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.05):
                    peak[0] = max(peak[0], rss_kib(server.pid)["VmRSS"])

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            headers = {"Authorization": f"Bearer {key}"}
            times: dict[str, list[float]] = {"raw": [], "multipart": [], "copy": [], "copy+sha256": []}
            expect = None
            for i in range(args.repeat):
                times["copy"].append(anchor_copy(src, root / "copy.bin"))
                times["copy+sha256"].append(anchor_copy_hash(src, root / "copy.bin"))
                # a fresh content each round would defeat dedup timing; delete the stored blob instead
                for mode in ("raw", "multipart"):
                    with src.open("rb") as fh:
                        t0 = time.perf_counter()
                        if mode == "raw":
                            r = httpx.post(
                                f"{url}/v1/datasets?filename=big.csv",
                                content=fh,
                                headers={**headers, "content-type": "application/octet-stream"},
                                timeout=600,
                            )
                        else:
                            r = httpx.post(
                                f"{url}/v1/datasets",
                                files={"file": ("big.csv", fh)},
                                headers=headers,
                                timeout=600,
                            )
                        times[mode].append(time.perf_counter() - t0)
                    assert r.status_code in (200, 201), r.text
                    expect = expect or r.json()["sha256"]
                    assert r.json()["sha256"] == expect and r.json()["size"] == size
                    print(
                        f"  round {i + 1} {mode:9s}: {size / 2**20 / times[mode][-1]:7.0f} MiB/s", flush=True
                    )
            stop.set()
            sampler.join()
            hwm = rss_kib(server.pid)["VmHWM"]
        finally:
            server.terminate()
            server.wait(timeout=30)

    best = {k: min(v) for k, v in times.items()}
    mb = size / 2**20
    print(f"\nupload of a {mb:.0f} MiB CSV, best of {args.repeat} (2 cores shared, loopback):")
    print(f"{'path':34s} {'seconds':>8s} {'MiB/s':>8s} {'x copy':>7s} {'x copy+sha256':>14s}")
    rows = [
        ("anchor shutil.copyfile", "copy"),
        ("anchor copy + sha256", "copy+sha256"),
        ("assay POST /v1/datasets (raw)", "raw"),
        ("assay POST /v1/datasets (multipart)", "multipart"),
    ]
    for label, k in rows:
        print(
            f"{label:34s} {best[k]:8.2f} {mb / best[k]:8.0f} {best[k] / best['copy']:7.2f} "
            f"{best[k] / best['copy+sha256']:14.2f}"
        )
    print(
        f"\nserver RSS: {base['VmRSS'] / 1024:.0f} MiB before, {peak[0] / 1024:.0f} MiB peak during the "
        f"uploads (VmHWM {hwm / 1024:.0f} MiB) for a {mb:.0f} MiB body: "
        f"{'flat' if (peak[0] - base['VmRSS']) < 64 * 1024 else 'NOT flat'}"
    )


if __name__ == "__main__":
    main()
