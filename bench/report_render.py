"""Render time of the full German-credit PDF report (issue 7 target: < 10 s on 2 cores).

OUR code: ``service.report.render_pdf`` on the German-credit audit result (context + charts, Jinja2
HTML, WeasyPrint layout, PDF/A-3b with audit.json attached), split into its stages.
ANCHOR: WeasyPrint alone printing the same audit.json as a plain ``<pre>`` dump (same engine, same
attachment, no charts or tables): the floor any PDF of this evidence pays with this stack.

The audit itself (``build_result``) is computed once beforehand and not timed.

    .venv/bin/python bench/report_render.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import html
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _median_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    import pypdf

    from service.config import load_spec
    from service.report import render_pdf
    from service.report.context import build_context, created_datetime
    from service.report.pdf import html_to_pdf, render_html
    from service.runs import build_result, result_json

    t0 = time.perf_counter()
    result = build_result(load_spec(REPO / "fixtures" / "german_credit" / "audit.yaml"), run_id="bench")
    payload = result_json(result)
    print(
        f"audit computed in {time.perf_counter() - t0:.1f} s (not part of the comparison); "
        f"audit.json {len(payload) / 1024:.0f} KiB; sections: {', '.join(result.sections)}"
    )
    created = created_datetime(result)

    # warm-up (imports, font discovery) so neither side pays one-off costs
    with tempfile.TemporaryDirectory() as tmp:
        render_pdf(result, payload, Path(tmp) / "warm.pdf")

        t_ctx, ctx = _median_time(lambda: build_context(result, payload), args.repeat)
        t_html, page = _median_time(lambda: render_html(ctx), args.repeat)  # type: ignore[arg-type]
        t_pdf, pdf = _median_time(lambda: html_to_pdf(page, json_bytes=payload, created=created), args.repeat)  # type: ignore[arg-type]
        ours = t_ctx + t_html + t_pdf
        t_full, _ = _median_time(lambda: render_pdf(result, payload, Path(tmp) / "r.pdf"), args.repeat)

        dump = (
            "<html><head><style>@page{size:A4;margin:15mm} pre{font:7pt 'DejaVu Sans Mono';"
            "white-space:pre-wrap;overflow-wrap:anywhere}</style></head><body><pre>"
            + html.escape(payload.decode("utf-8"))
            + "</pre></body></html>"
        )
        t_anchor, anchor_pdf = _median_time(
            lambda: html_to_pdf(dump, json_bytes=payload, created=created), args.repeat
        )

    n_ours = len(pypdf.PdfReader(__import__("io").BytesIO(pdf)).pages)  # type: ignore[arg-type]
    n_anchor = len(pypdf.PdfReader(__import__("io").BytesIO(anchor_pdf)).pages)  # type: ignore[arg-type]
    print(f"median of {args.repeat} runs")
    print(f"  OURS   context + charts   {t_ctx:6.2f} s")
    print(f"  OURS   Jinja2 HTML        {t_html:6.2f} s")
    print(f"  OURS   WeasyPrint PDF/A   {t_pdf:6.2f} s")
    print(
        f"  OURS   render_pdf (full)  {t_full:6.2f} s   ({n_ours} pages)  target < 10 s: "
        f"{'met' if t_full < 10 else 'MISSED'}"
    )
    print(f"  ANCHOR WeasyPrint <pre> dump of audit.json  {t_anchor:6.2f} s   ({n_anchor} pages)")
    print(f"  ratio OURS / ANCHOR = {t_full / t_anchor:.2f}x   (stages sum {ours:.2f} s)")


if __name__ == "__main__":
    main()
