"""HTML → PDF with WeasyPrint: PDF/A-3b, ``audit.json`` embedded as an attachment (relationship
``Source``), document and attachment dates pinned to the audit timestamp and a fixed PDF identifier
derived from the evidence hash, so the same audit.json always gives the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2

from service.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[2]


def reports_dir() -> Path:
    """Template folder: ``ASSAY_REPORTS_DIR`` when set, else ``reports/`` at the repository root."""
    override = os.environ.get("ASSAY_REPORTS_DIR")
    path = Path(override) if override else REPO_ROOT / "reports"
    if not (path / "report.html.j2").is_file():
        raise InputError(
            f"report templates not found in {path}",
            field="ASSAY_REPORTS_DIR",
            expected="a folder holding report.html.j2 and report.css (the repository's reports/)",
        )
    return path


def render_html(context: dict[str, Any], *, templates: Path | None = None) -> str:
    folder = templates or reports_dir()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    css = (folder / "report.css").read_text(encoding="utf-8")
    return env.get_template("report.html.j2").render(css=css, **context)


_EPOCH_LOCK = threading.Lock()


@contextlib.contextmanager
def _source_date_epoch(created: Any) -> Iterator[None]:
    """fontTools stamps the subset fonts' ``head.modified`` with the current time unless
    ``SOURCE_DATE_EPOCH`` is set; pin it to the audit timestamp for byte-identical output."""
    stamp = str(int(created.timestamp())) if hasattr(created, "timestamp") else "946684800"
    with _EPOCH_LOCK:
        before = os.environ.get("SOURCE_DATE_EPOCH")
        os.environ["SOURCE_DATE_EPOCH"] = stamp
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("SOURCE_DATE_EPOCH", None)
            else:
                os.environ["SOURCE_DATE_EPOCH"] = before


def html_to_pdf(html: str, *, json_bytes: bytes, created: Any, base_url: Path | None = None) -> bytes:
    import weasyprint

    attachment = weasyprint.Attachment(
        string=json_bytes,
        name="audit.json",
        description="Assay audit.json: the machine-readable evidence this report was rendered from",
        created=created,
        modified=created,
        relationship="Source",
    )
    ident = hashlib.sha256(json_bytes).digest()[:16]
    with _source_date_epoch(created):
        doc = weasyprint.HTML(string=html, base_url=str(base_url or REPO_ROOT)).render()
        out = doc.write_pdf(pdf_variant="pdf/a-3b", attachments=[attachment], pdf_identifier=ident)
    assert out is not None
    return bytes(out)


def layout(html: str) -> Any:
    """The laid-out WeasyPrint document (for inspecting page boxes in tests)."""
    import weasyprint

    return weasyprint.HTML(string=html, base_url=str(REPO_ROOT)).render()


__all__ = ["html_to_pdf", "layout", "render_html", "reports_dir"]
