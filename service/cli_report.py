"""``assay report AUDIT_JSON --out report.pdf``: re-render the PDF from an existing audit.json."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from service.errors import InputError


def load_result_bytes(path: Path) -> tuple[object, bytes]:
    """Read and validate an audit.json; returns (AuditResult, the exact bytes read)."""
    from service.result import AuditResult

    if not path.is_file():
        raise InputError("file not found", file=str(path), expected="an audit.json written by `assay audit`")
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"not valid JSON ({exc})", file=str(path), expected="an audit.json written by `assay audit`"
        ) from None
    try:
        result = AuditResult.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise InputError(
            f"not an Assay audit result: {first['msg']}",
            file=str(path),
            field=loc,
            expected="the audit.json schema (SPEC.md §5: schema_version, meta, findings, sections)",
        ) from None
    return result, raw


def report(
    audit_json: Annotated[Path, typer.Argument(help="An audit.json written by `assay audit`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the PDF.")] = Path("report.pdf"),
) -> None:
    """Render the regulator-ready PDF from an existing audit.json (embedded in the PDF as-is)."""
    from service.report import render_pdf
    from service.result import AuditResult

    result, raw = load_result_bytes(audit_json)
    assert isinstance(result, AuditResult)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        render_pdf(result, raw, Path(tmp))
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote report.pdf: {out}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)


__all__ = ["load_result_bytes", "register"]
