"""The one service both the CLI and the API call: validate → compute → findings → persist → render.

Outputs are written atomically: every file goes to a temporary name in the output directory and
is renamed into place only after all of them were produced, so a failed run leaves nothing
half-written (SPEC.md §2).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from service import __version__
from service.audits.context import AuditContext, NotApplicable
from service.config import AuditSpec
from service.findings import number
from service.inputs.datasets import sha256_file
from service.inputs.prepare import PreparedInputs, prepare
from service.result import AuditResult, Finding, InputInfo, Meta

LIBRARIES = (
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "lightgbm",
    "xgboost-cpu",
    "onnxruntime",
    "skops",
    "shap",
    "fairlearn",
    "pydantic",
    "weasyprint",
)

Progress = Callable[[str], None]


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _inputs(spec: AuditSpec, prep: PreparedInputs) -> dict[str, InputInfo]:
    out: dict[str, InputInfo] = {}
    ds = prep.dataset
    out["dataset"] = InputInfo(
        path=spec.dataset, sha256=ds.sha256, rows=ds.rows, columns=ds.columns, format=ds.format
    )
    if prep.oot is not None:
        out["oot_dataset"] = InputInfo(
            path=spec.oot_dataset or spec.dataset,
            sha256=prep.oot.sha256,
            rows=prep.oot.rows,
            columns=prep.oot.columns,
            format=prep.oot.format,
        )
    if prep.model_path is not None and spec.model is not None:
        out["model"] = InputInfo(
            path=spec.model, sha256=prep.context.model.sha256, format=prep.context.model.kind
        )
    if spec.spec_path is not None:
        out["spec"] = InputInfo(path=spec.spec_path.name, sha256=sha256_file(spec.spec_path))
    return out


def thresholds_table(spec: AuditSpec) -> dict[str, dict[str, Any]]:
    """Every policy threshold with its value and whether it is a tool default or the user's policy."""
    pol = spec.policy
    return {
        name: {"value": getattr(pol, name), "source": pol.source(name)} for name in type(pol).model_fields
    }


def compute(
    ctx: AuditContext,
    *,
    only: list[str] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, str], list[Finding]]:
    """Run the registered audits in order; returns (sections, not_run reasons, findings)."""
    from service.audits.registry import AUDITS

    sections: dict[str, dict[str, Any]] = {}
    not_run: dict[str, str] = {}
    findings: list[Finding] = []
    for name, fn in AUDITS.items():
        if only is not None and name not in only:
            continue
        ctx.progress(f"audit: {name}")
        try:
            out = fn(ctx)
        except NotApplicable as why:
            not_run[name] = str(why)
            continue
        dumped = out.section.model_dump(mode="json")
        sections[name] = dumped
        ctx.results[name] = dumped
        findings.extend(out.findings)
    return sections, not_run, number(findings)


def build_result(
    spec: AuditSpec,
    *,
    allow_pickle: bool = False,
    progress: Progress | None = None,
    oot_after: str | None = None,
    run_id: str | None = None,
) -> AuditResult:
    """Validate inputs and compute every section; no files are written."""
    started = _now()
    prep = prepare(spec, allow_pickle=allow_pickle, progress=progress, oot_after=oot_after)
    ctx = prep.context
    sections, not_run, findings = compute(ctx)
    meta = Meta(
        run_id=run_id or uuid.uuid4().hex,
        created_at=started,
        finished_at=_now(),
        assay_version=__version__,
        python_version=platform.python_version(),
        libraries=library_versions(),
        seed=spec.seed,
        model_name=spec.model_name,
        model_kind=ctx.model.kind,
        inputs=_inputs(spec, prep),
        spec=spec.model_dump(mode="json", exclude={"base_dir", "spec_path"}),
        thresholds=thresholds_table(spec),
    )
    return AuditResult(meta=meta, findings=findings, sections=sections, not_run=not_run)


def result_json(result: AuditResult) -> bytes:
    """Canonical audit.json bytes (sorted keys inside sections are kept in model order)."""
    return (json.dumps(result.model_dump(mode="json"), indent=2, allow_nan=False) + "\n").encode("utf-8")


@dataclass
class RunOutcome:
    result: AuditResult
    files: dict[str, Path] = field(default_factory=dict)


Renderer = Callable[[AuditResult, bytes, Path], None]


def _renderers() -> dict[str, Renderer]:
    """Outputs besides audit.json, by file name. The PDF report registers itself here when present."""
    try:
        from service.report import render_pdf
    except ImportError:
        return {}
    return {"report.pdf": render_pdf}


def write_outputs(
    result: AuditResult, out_dir: Path, *, renderers: dict[str, Renderer] | None = None
) -> dict[str, Path]:
    """Write audit.json (and the report) atomically into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = result_json(result)
    temps: dict[str, Path] = {}
    try:
        fd, tmp = tempfile.mkstemp(prefix=".audit.json.", suffix=".tmp", dir=out_dir)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        temps["audit.json"] = Path(tmp)
        for name, render in (renderers if renderers is not None else _renderers()).items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
            os.close(fd)
            temps[name] = Path(tmp)
            render(result, payload, Path(tmp))
        final: dict[str, Path] = {}
        for name, tmp_path in temps.items():
            dest = out_dir / name
            os.replace(tmp_path, dest)
            final[name] = dest
        return final
    finally:
        for tmp_path in temps.values():
            if tmp_path.exists():
                tmp_path.unlink()


def run_audit(
    spec: AuditSpec,
    out_dir: Path,
    *,
    allow_pickle: bool = False,
    progress: Progress | None = None,
    oot_after: str | None = None,
    run_id: str | None = None,
) -> RunOutcome:
    result = build_result(
        spec, allow_pickle=allow_pickle, progress=progress, oot_after=oot_after, run_id=run_id
    )
    if progress:
        progress("writing outputs")
    files = write_outputs(result, out_dir)
    return RunOutcome(result, files)


__all__ = [
    "RunOutcome",
    "build_result",
    "compute",
    "library_versions",
    "result_json",
    "run_audit",
    "write_outputs",
]
