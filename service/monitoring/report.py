"""The monitoring PDF (``assay monitor report``): a monitor's history with trend charts.

Everything printed comes from the stored window results and :func:`service.monitoring.monitor.history`;
this module formats, it never computes a statistic. Pages: thresholds (each labelled *default* or
*policy*) and the PSI convention; trend charts (score PSI and the worst feature PSI per window against
the amber/red lines, AIR per protected group against ``air_min``, AUC once labels have arrived); the
window table; the latest window's per-feature drift and its alerts. Charts are matplotlib SVG, the
PDF is rendered by WeasyPrint. Ongoing monitoring is what SR 26-2 §V and EU AI Act Art 72 ask for;
AIR below ``air_min`` is a screening signal (29 CFR 1607.4(D)), not a legal finding.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from pathlib import Path
from typing import Any

from service.monitoring.window import CONVENTIONS

THRESHOLDS = ("psi_amber", "psi_red", "air_min", "significance", "min_group_size", "missing_gap_max")

CSS = """
@page { size: A4; margin: 16mm 14mm; @bottom-right { content: "page " counter(page); font-size: 8pt; } }
body { font-family: "DejaVu Sans", sans-serif; font-size: 9pt; color: #1a1a1a; }
h1 { font-size: 16pt; margin: 0 0 4pt; }
h2 { font-size: 12pt; margin: 14pt 0 4pt; border-bottom: 1px solid #999; }
table { border-collapse: collapse; width: 100%; margin: 4pt 0; }
th, td { border-bottom: 1px solid #ddd; padding: 2pt 4pt; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.red { color: #b00020; font-weight: bold; } .amber { color: #b36b00; } .green { color: #2e7d32; }
.note { color: #555; font-size: 8pt; } img { width: 100%; }
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _num(x: Any, fmt: str = ".3f") -> str:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return "–"
    return format(x, fmt)


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _line(
    x: list[int], series: dict[str, list[Any]], *, title: str, ylabel: str, hlines: dict[str, float]
) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(v is not None for vals in series.values() for v in vals):
        return None
    fig, ax = plt.subplots(figsize=(7.0, 2.4))
    for name, vals in series.items():
        pts = [(i, v) for i, v in zip(x, vals, strict=True) if v is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=name)
    for name, y in hlines.items():
        ax.axhline(y, ls="--", lw=0.8, color="#b00020" if "red" in name or "min" in name else "#b36b00")
        ax.annotate(name, (x[0], y), fontsize=7, va="bottom")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("window", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_xticks(x)
    ax.tick_params(labelsize=7)
    if len(series) > 1:
        ax.legend(fontsize=7, ncol=4)
    return _svg(fig)


def monitoring_charts(history: dict[str, Any], policy: Any) -> list[tuple[str, str]]:
    """(caption, SVG data URI) per trend chart that has data."""
    pts = [p for p in history["windows"] if p["status"] == "succeeded"]
    if not pts:
        return []
    x = [p["seq"] for p in pts]
    out: list[tuple[str, str]] = []
    psi = _line(
        x,
        {"score PSI": [p["score_psi"] for p in pts], "max feature PSI": [p["max_psi"] for p in pts]},
        title="Population stability per window",
        ylabel="PSI",
        hlines={
            f"psi_amber {policy.psi_amber:g}": policy.psi_amber,
            f"psi_red {policy.psi_red:g}": policy.psi_red,
        },
    )
    if psi:
        out.append(("Score PSI and the largest feature PSI against the amber and red thresholds", psi))
    attrs = sorted({a for p in pts for a in p["air"]})
    for attr in attrs:
        groups = sorted({g for p in pts for g in p["air"].get(attr, {})})
        chart = _line(
            x,
            {g: [p["air"].get(attr, {}).get(g) for p in pts] for g in groups},
            title=f"Adverse impact ratio: {attr}",
            ylabel="AIR",
            hlines={f"air_min {policy.air_min:g}": policy.air_min},
        )
        if chart:
            out.append((f"AIR per group of '{attr}' (group / reference favorable rate) per window", chart))
    auc = _line(x, {"AUC": [p["auc"] for p in pts]}, title="AUC once labels arrived", ylabel="AUC", hlines={})
    if auc:
        out.append(("AUC per window (windows without labels are left out)", auc))
    return out


def monitoring_html(name: str, policy: Any, history: dict[str, Any], latest: dict[str, Any] | None) -> str:
    """The report's HTML."""
    mon = history["monitor"]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    parts = [
        f"<html><head><meta charset='utf-8'><style>{CSS}</style></head><body>",
        f"<h1>Monitoring report: {_esc(name)}</h1>",
        f"<p class='note'>Generated {now}. Reference profile sha256 {_esc(mon.get('profile_sha256'))}. "
        f"{len(history['windows'])} window(s). Ongoing monitoring (SR 26-2 §V; EU AI Act Art 72).</p>",
        "<h2>Thresholds</h2><table><tr><th>threshold</th><th>value</th><th>source</th></tr>",
    ]
    for t in THRESHOLDS:
        value = _num(getattr(policy, t), "g")
        parts.append(f"<tr><td>{t}</td><td>{value}</td><td>{policy.source(t)}</td></tr>")
    parts.append("</table><h2>Conventions</h2><table>")
    for k, v in CONVENTIONS.items():
        parts.append(f"<tr><td>{_esc(k)}</td><td style='text-align:left'>{_esc(v)}</td></tr>")
    parts.append("</table><h2>Trends</h2>")
    for caption, uri in monitoring_charts(history, policy):
        parts.append(f"<img src='{uri}'/><p class='note'>{_esc(caption)}</p>")
    parts.append(
        "<h2>Windows</h2><table><tr><th>#</th><th>source</th><th>status</th><th>rows</th><th>score PSI</th>"
        "<th>max PSI (feature)</th><th>red / amber</th><th>alerts</th><th>AUC</th></tr>"
    )
    for p in history["windows"]:
        parts.append(
            f"<tr><td>{p['seq']}</td><td>{_esc(Path(str(p['source'])).name)}</td><td>{_esc(p['status'])}</td>"
            f"<td>{_num(p['rows'], ',')}</td><td>{_num(p['score_psi'])}</td>"
            f"<td>{_num(p['max_psi'])} ({_esc(p['max_psi_feature'] or '–')})</td>"
            f"<td>{_num(p['n_red'], 'd')} / {_num(p['n_amber'], 'd')}</td><td>{p['n_alerts']}</td>"
            f"<td>{_num(p['auc'])}</td></tr>"
        )
    parts.append("</table>")
    if latest:
        w = latest.get("window") or {}
        parts.append(f"<h2>Latest window ({w.get('seq')}): feature drift</h2>")
        parts.append(
            "<table><tr><th>feature</th><th>PSI</th><th>light</th><th>KS / JS</th><th>W1 normed / chi2</th>"
            "<th>missing rate (ref)</th></tr>"
        )
        drift = latest.get("drift") or {}
        items = list((drift.get("features") or {}).items())
        if drift.get("score"):
            items.insert(0, ("score", drift["score"]))
        items.sort(key=lambda kv: -(kv[1].get("psi") or 0.0))
        for f, d in items:
            num = d.get("kind") == "numeric"
            light = d.get("traffic_light") or ""
            parts.append(
                f"<tr><td>{_esc(f)}</td><td>{_num(d.get('psi'))}</td><td class='{light}'>{light or '–'}</td>"
                f"<td>{_num(d.get('ks') if num else d.get('js'))}</td>"
                f"<td>{_num(d.get('wasserstein_normed') if num else d.get('chi2'))}</td>"
                f"<td>{_num(d.get('missing_rate'), '.1%')} "
                f"({_num(d.get('reference_missing_rate'), '.1%')})</td>"
                "</tr>"
            )
        parts.append("</table><h2>Alerts of the latest window</h2>")
        alerts = latest.get("alerts") or []
        if not alerts:
            parts.append("<p>None.</p>")
        for a in alerts:
            thr = a.get("threshold")
            src = f", threshold {thr} ({a.get('threshold_source')})" if thr is not None else ""
            parts.append(
                f"<p><b>[{_esc(a.get('severity'))}] {_esc(a.get('title'))}</b>: "
                f"{_esc(a.get('detail'))}{_esc(src)}</p>"
            )
    parts.append("</body></html>")
    return "".join(parts)


def render_monitoring_pdf(
    mspec: Any, history: dict[str, Any], latest: dict[str, Any] | None, out: Path
) -> None:
    """Write the monitoring PDF for a monitor file's history (atomically: temp name, then rename)."""
    from weasyprint import HTML

    from service.config import load_spec, parse_spec

    if isinstance(mspec.audit, dict):
        audit = parse_spec(mspec.audit, source=f"{mspec.name}: audit", base_dir=mspec.base_dir)
    else:
        audit = load_spec(mspec.resolve(mspec.audit))
    doc = monitoring_html(mspec.name, audit.policy, history, latest)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    HTML(string=doc).write_pdf(tmp)
    tmp.replace(out)


__all__ = ["monitoring_charts", "monitoring_html", "render_monitoring_pdf"]
