"""``assay reasons SPEC --applicants FILE --out FILE``: adverse-action reasons (SPEC.md §2, §6a)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer


def _write_atomic(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def reasons(
    spec: Annotated[
        Path, typer.Argument(help="Audit spec (YAML/JSON) with model, dataset and reason_codes.")
    ],
    applicants: Annotated[Path, typer.Option("--applicants", "-a", help="Applicants file (CSV or Parquet).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file: .json or .csv.")],
    allow_pickle: Annotated[
        bool,
        typer.Option("--allow-pickle", help="Allow a pickle/joblib model (executes code: own files only)."),
    ] = False,
    proxy_screen: Annotated[
        bool,
        typer.Option(
            "--proxy-screen/--no-proxy-screen",
            help="Run the proxy audit on the development data; features it flags are never given as reasons.",
        ),
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")] = False,
) -> None:
    """Adverse-action reasons for every declined row of APPLICANTS (Regulation B 12 CFR 1002.9(b)(2))."""
    from service.cli import Progress
    from service.config import load_spec
    from service.errors import InputError
    from service.inputs.datasets import read_dataset
    from service.reasons.service import build_engine, explain, records_to_csv

    suffix = out.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise InputError(
            f"cannot tell the output format from the extension {out.suffix or '(none)'!r}",
            file=str(out),
            field="--out",
            expected="a file name ending in .json or .csv",
        )
    progress = Progress(quiet)
    spec_obj = load_spec(spec)
    if not applicants.exists():
        raise InputError(
            "applicants file not found",
            file=str(applicants),
            field="--applicants",
            expected="an existing CSV or Parquet file",
        )
    progress("loading applicants")
    frame = read_dataset(applicants, dtypes=dict(spec_obj.dtypes or {}), label="applicants").frame
    engine = build_engine(
        spec_obj, allow_pickle=allow_pickle, proxy_screen=proxy_screen, progress=progress, use_cache=False
    )
    progress(f"explaining {len(frame)} applicant(s) ({engine.method}, reference {engine.reference.version})")
    records = explain(engine, spec_obj, frame, source=str(applicants))
    if suffix == ".json":
        text = json.dumps(records, indent=1, allow_nan=False) + "\n"
    else:
        text = records_to_csv(records, engine.max_reasons)
    _write_atomic(out, text)
    declined = sum(1 for r in records if r["decision"] == "adverse")
    print(f"{declined} of {len(records)} applicant(s) declined; reasons written to {out}")
    if engine.blocked:
        print("never given as reasons (proxy-flagged): " + ", ".join(engine.blocked), file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("reasons")(reasons)


__all__ = ["reasons", "register"]
