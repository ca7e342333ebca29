"""The regulator-ready PDF (REGULATORY.md §(a)): AuditResult → context → HTML (Jinja2, ``reports/``)
→ PDF/A-3b with ``audit.json`` embedded. ``render_pdf`` is what ``runs.write_outputs`` calls."""

from __future__ import annotations

from pathlib import Path

from service.result import AuditResult


def render_html_for(result: AuditResult, json_bytes: bytes) -> str:
    """The report's HTML (before layout) for ``result`` whose serialised form is ``json_bytes``."""
    from service.report.context import build_context
    from service.report.pdf import render_html

    return render_html(build_context(result, json_bytes))


def render_pdf(result: AuditResult, json_bytes: bytes, out_path: Path) -> None:
    """Write the PDF report for ``result`` to ``out_path`` (``json_bytes`` = the audit.json bytes)."""
    from service.report.context import created_datetime
    from service.report.pdf import html_to_pdf

    html = render_html_for(result, json_bytes)
    pdf = html_to_pdf(html, json_bytes=json_bytes, created=created_datetime(result))
    Path(out_path).write_bytes(pdf)


__all__ = ["render_html_for", "render_pdf"]
