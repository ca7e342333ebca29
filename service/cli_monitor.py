"""``assay monitor ...``: run a window now, attach delayed labels, show history, render the PDF.

State (monitors, profiles, window history) lives in the same database as ``assay serve``
(``ASSAY_DATABASE_URL`` or ``<ASSAY_DATA_DIR>/assay.db``), so CLI runs and scheduled runs share history.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

monitor_app = typer.Typer(
    help="Drift and fairness monitoring against a stored reference profile.", no_args_is_help=True
)


def _db() -> tuple[Any, Any, Path]:
    from service.config import Settings
    from service.store.db import make_engine, session_factory
    from service.store.migrate import upgrade

    settings = Settings()
    engine = make_engine(settings)
    upgrade(engine)
    return engine, session_factory(engine), settings.data_dir


def _say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(f"[assay monitor] {msg}", file=sys.stderr, flush=True)


def _write_json(data: Any, out: Path) -> None:
    import os
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, out)


def _setup(monitor_file: Path, quiet: bool) -> tuple[Any, Any, Path, Any, Any]:
    from service.monitoring.monitor import ensure_monitor, load_monitor

    mspec = load_monitor(monitor_file)
    engine, sessions, data_dir = _db()
    with sessions() as session:
        _say(f"monitor '{mspec.name}': checking the reference profile", quiet)
        notes: list[str] = []
        row = ensure_monitor(session, mspec, notes=notes)
        session.commit()
        monitor_id = row.id
    for note in notes:
        _say(note, quiet)
    return engine, sessions, data_dir, mspec, monitor_id


@monitor_app.command("run")
def run(
    monitor_file: Annotated[Path, typer.Argument(help="Monitor file (YAML/JSON, SPEC.md §3).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the window result here.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Process this file instead of the next source file.")
    ] = None,
    evidently_html: Annotated[
        Path | None,
        typer.Option("--evidently-html", help="Also write evidently's HTML drift report for the window."),
    ] = None,
    no_alerts: Annotated[bool, typer.Option("--no-alerts", help="Do not call the webhooks.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Run one monitoring window now (the oldest unprocessed source file) and append it to the history."""
    from service.errors import InputError
    from service.monitoring.monitor import run_window

    if file is not None and not file.exists():
        raise InputError(
            "file not found", file=str(file), field="--file", expected="an existing CSV or Parquet file"
        )
    _engine, sessions, data_dir, mspec, monitor_id = _setup(monitor_file, quiet)
    if file is None and not mspec.source:
        raise InputError(
            "the monitor has no source to take the next window from",
            file=str(monitor_file),
            field="source",
            expected="a file path or glob of CSV/Parquet files in the monitor file, or --file FILE",
        )
    outcome = run_window(
        sessions,
        monitor_id,
        data_dir=data_dir,
        path=file.resolve() if file else None,
        deliver_alerts=not no_alerts,
    )
    print(outcome.message)
    if outcome.result is None:
        if evidently_html is not None or out is not None:
            _say("no window was run, so --out/--evidently-html were not written", quiet)
        return
    if out is not None:
        _write_json(outcome.result, out)
        print(f"wrote window result: {out}")
    for a in outcome.result["alerts"]:
        print(f"alert [{a['severity']}] {a['title']}")
    if evidently_html is not None:
        from service.monitoring.export import evidently_report
        from service.monitoring.monitor import load_runtime

        _say("building evidently's HTML report (slow: evidently imports ~8 s)", quiet)
        rt = load_runtime(mspec)
        src = Path(outcome.result["window"]["source"])
        evidently_report(rt, mspec.resolve(mspec.reference), src, evidently_html, seed=rt.audit.seed)
        print(f"wrote evidently report: {evidently_html}")
    if outcome.delivery is not None:
        _say("delivering alerts (retries with backoff; the window is already stored)", quiet)
        for o in outcome.delivery.result():
            print(
                f"webhook {o['url']}: {'delivered' if o['ok'] else 'FAILED'} after {o['attempts']} attempt(s)"
                + (f" ({o['error']})" if o["error"] else "")
            )


@monitor_app.command("labels")
def labels(
    monitor_file: Annotated[Path, typer.Argument(help="Monitor file.")],
    labels_file: Annotated[Path, typer.Argument(help="CSV/Parquet with the target (and id) column.")],
    window: Annotated[str, typer.Option("--window", "-w", help="Window sequence number or id.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the updated window result here.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Attach delayed outcomes to an earlier window: its AUC and calibration fill in."""
    from service.inputs.datasets import read_dataset
    from service.monitoring.monitor import post_labels

    _engine, sessions, _data_dir, _mspec, monitor_id = _setup(monitor_file, quiet)
    frame = read_dataset(labels_file, label="labels").frame
    result = post_labels(sessions, monitor_id, window, frame, source=str(labels_file))
    perf = result["performance"]
    auc = perf.get("auc")
    ci = perf.get("auc_ci") or [None, None]
    ci_text = f" (95% CI {ci[0]:.4f}-{ci[1]:.4f})" if None not in ci else ""
    print(
        f"window {window}: {perf['n']} labelled rows, AUC "
        + (f"{auc:.4f}{ci_text}" if auc is not None else "undefined (one class)")
    )
    if out is not None:
        _write_json(result, out)
        print(f"wrote window result: {out}")


@monitor_app.command("history")
def history_cmd(
    monitor_file: Annotated[Path, typer.Argument(help="Monitor file.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the time series as JSON.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Print the monitor's window history (score PSI, worst feature, alerts, AUC)."""
    from service.monitoring.monitor import history

    _engine, sessions, _data_dir, _mspec, monitor_id = _setup(monitor_file, quiet)
    h = history(sessions, monitor_id)
    for p in h["windows"]:
        sp = p["score_psi"]
        print(
            f"{p['seq']:>4}  {p['status']:<9} rows={p['rows']}  score_psi="
            + ("-" if sp is None else f"{sp:.4f}")
            + f"  max_psi={p['max_psi_feature']}:"
            + ("-" if p["max_psi"] is None else f"{p['max_psi']:.4f}")
            + f"  alerts={p['n_alerts']}  auc={p['auc']}  {Path(p['source']).name}"
        )
    if out is not None:
        _write_json(h, out)
        print(f"wrote history: {out}")


@monitor_app.command("report")
def report(
    monitor_file: Annotated[Path, typer.Argument(help="Monitor file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PDF to write.")] = Path("monitoring.pdf"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Render the monitoring history as a PDF with trend charts."""
    from service.monitoring.monitor import history
    from service.monitoring.report import render_monitoring_pdf

    _engine, sessions, _data_dir, mspec, monitor_id = _setup(monitor_file, quiet)
    h = history(sessions, monitor_id)
    with sessions() as session:
        from service.monitoring import store

        done = [w for w in store.windows(session, monitor_id) if w.status == "succeeded" and w.result]
        latest = done[-1].result if done else None
    render_monitoring_pdf(mspec, h, latest, out)
    print(f"wrote monitoring report: {out}")


@monitor_app.command("profile")
def profile_cmd(
    monitor_file: Annotated[Path, typer.Argument(help="Monitor file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Write the stored reference profile (JSON).")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Export the stored reference profile (compact, versioned, sha256-sealed)."""
    from service.monitoring import store

    _engine, sessions, _data_dir, _mspec, monitor_id = _setup(monitor_file, quiet)
    with sessions() as session:
        row = store.get_monitor(session, None, monitor_id)
        assert row is not None and row.profile is not None
        out.write_text(row.profile, encoding="utf-8")
        print(f"wrote profile {row.profile_sha256}: {out} ({out.stat().st_size:,} bytes)")


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")


__all__ = ["monitor_app", "register"]
