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
@page {
  size: A4; margin: 16mm 14mm 18mm;
  @bottom-left { content: "Assay monitoring report: MONITOR_NAME"; font-family: "DejaVu Sans";
                 font-size: 7.5pt; color: #555; }
  @bottom-right { content: "page " counter(page) " of " counter(pages); font-family: "DejaVu Sans";
                  font-size: 7.5pt; color: #555; }
}
body { font-family: "DejaVu Sans", sans-serif; font-size: 8.5pt; color: #1a1a1a; }
h1 { font-size: 16pt; margin: 0 0 4pt; }
h2 { font-size: 12pt; margin: 14pt 0 4pt; border-bottom: 1px solid #999; page-break-after: avoid; }
h3 { font-size: 10pt; margin: 10pt 0 3pt; page-break-after: avoid; }
table { border-collapse: collapse; width: 100%; margin: 4pt 0; }
tr { page-break-inside: avoid; }
th { border-bottom: 1px solid #777; font-weight: bold; }
th, td { border-bottom: 1px solid #ddd; padding: 2pt 3pt; text-align: right; vertical-align: top; }
td { white-space: nowrap; }
th:first-child, td:first-child { text-align: left; white-space: normal; }
td.l, th.l { text-align: left; } td.w { white-space: normal; }
table.small { font-size: 7.5pt; }
.red { color: #b00020; font-weight: bold; } .amber { color: #b36b00; font-weight: bold; }
.green { color: #2e7d32; } .alert { color: #b00020; font-weight: bold; }
.note { color: #555; font-size: 7.5pt; } .kv td { border: none; padding: 1pt 4pt; }
figure { margin: 6pt 0 10pt; page-break-inside: avoid; } img { width: 100%; }
figcaption { color: #555; font-size: 7.5pt; }
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _num(x: Any, fmt: str = ".3f") -> str:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return "–"
    return format(x, fmt)


def _ci(ci: Any, fmt: str = ".3f") -> str:
    if not isinstance(ci, list | tuple) or len(ci) != 2 or any(v is None for v in ci):
        return "–"
    return f"{_num(ci[0], fmt)}–{_num(ci[1], fmt)}"


def _p(x: Any) -> str:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return "–"
    return "< 0.001" if x < 0.001 else f"{x:.3f}"


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _line(
    x: list[int],
    series: dict[str, list[Any]],
    *,
    title: str,
    ylabel: str,
    hlines: dict[str, float],
    bands: dict[str, list[Any]] | None = None,
) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(v is not None for vals in series.values() for v in vals):
        return None
    fig, ax = plt.subplots(figsize=(7.0, 2.2))
    k = len(series)
    for j, (name, vals) in enumerate(series.items()):
        dx = 0.06 * (j - (k - 1) / 2) if bands else 0.0  # side by side, so intervals do not overlap
        pts = [(i + dx, v) for i, v in zip(x, vals, strict=True) if v is not None]
        if not pts:
            continue
        (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3.5, lw=1.4, label=name)
        ci = (bands or {}).get(name)
        if ci:  # 95% CI as error bars where known
            err = [
                (i + dx, v, c)
                for i, v, c in zip(x, vals, ci, strict=True)
                if v is not None and c and None not in c and c[1] > c[0]
            ]
            if err:
                ax.errorbar(
                    [e[0] for e in err],
                    [e[1] for e in err],
                    yerr=[[e[1] - e[2][0] for e in err], [e[2][1] - e[1] for e in err]],
                    fmt="none",
                    ecolor=line.get_color(),
                    elinewidth=0.8,
                    capsize=2,
                )
    for name, y in hlines.items():
        colour = "#b00020" if "red" in name or "min" in name else "#b36b00"
        ax.axhline(y, ls="--", lw=0.9, color=colour)
        # label at the right edge, just above the line, clear of the data's legend
        ax.annotate(
            name,
            (1.0, y),
            xycoords=("axes fraction", "data"),
            xytext=(-2, 2),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=7,
            color=colour,
        )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("window (sequence number)", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_xticks(x)
    ax.set_xlim(min(x) - 0.5, max(x) + 0.5)
    ax.tick_params(labelsize=7)
    ax.grid(axis="y", lw=0.3, color="#ccc")
    lo, hi = ax.get_ylim()
    if hlines:  # keep the threshold lines inside the axes
        ax.set_ylim(
            min(lo, *hlines.values()) - 0.02 * (hi - lo), max(hi, *hlines.values()) + 0.08 * (hi - lo)
        )
    if len(series) > 1:
        ax.legend(
            fontsize=7,
            ncol=min(len(series), 6),
            loc="upper center",
            bbox_to_anchor=(0.5, -0.26),
            frameon=False,
        )
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
        {"score PSI": [p["score_psi"] for p in pts], "largest feature PSI": [p["max_psi"] for p in pts]},
        title="Population stability per window",
        ylabel="PSI",
        hlines={
            f"psi_amber {policy.psi_amber:g}": policy.psi_amber,
            f"psi_red {policy.psi_red:g}": policy.psi_red,
        },
    )
    if psi:
        worst = ", ".join(f"{p['seq']}: {p['max_psi_feature']}" for p in pts if p["max_psi_feature"])
        out.append(
            (
                "Score PSI and the largest feature PSI per window against the amber and red thresholds "
                f"(largest feature per window: {worst}).",
                psi,
            )
        )
    attrs = sorted({a for p in pts for a in p["air"]})
    for attr in attrs:
        groups = sorted({g for p in pts for g in p["air"].get(attr, {})})
        chart = _line(
            x,
            {g: [p["air"].get(attr, {}).get(g) for p in pts] for g in groups},
            title=f"Adverse impact ratio: {attr}",
            ylabel="AIR",
            hlines={f"air_min {policy.air_min:g}": policy.air_min},
            bands={g: [(p.get("air_ci") or {}).get(attr, {}).get(g) for p in pts] for g in groups},
        )
        if chart:
            out.append(
                (
                    f"AIR per group of '{attr}' (favorable rate of the group / of the reference group) per "
                    "window, with 95% bootstrap intervals; the reference group is 1 by definition.",
                    chart,
                )
            )
    auc = _line(
        x,
        {"AUC": [p["auc"] for p in pts]},
        title="AUC once labels arrived",
        ylabel="AUC",
        hlines={f"auc_min {policy.auc_min:g}": policy.auc_min},
        bands={"AUC": [p.get("auc_ci") for p in pts]},
    )
    if auc:
        missing = [str(p["seq"]) for p in pts if p["auc"] is None]
        note = f" Windows without labels yet: {', '.join(missing)}." if missing else ""
        out.append((f"AUC per window with its 95% interval, once delayed labels were posted.{note}", auc))
    return out


def _header(name: str, history: dict[str, Any]) -> list[str]:
    mon = history["monitor"]
    ref = mon.get("reference") or {}
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    done = [p for p in history["windows"] if p["status"] == "succeeded"]
    failed = [p for p in history["windows"] if p["status"] == "failed"]
    rows = [
        ("Generated", now),
        ("Monitor", f"{mon.get('name')} ({mon.get('id')})"),
        ("Schedule", f'cron "{mon["schedule"]}" (UTC)' if mon.get("schedule") else "none (run on demand)"),
        (
            "Reference",
            f"{Path(str(ref.get('path') or '–')).name}, {_num(ref.get('rows'), ',')} rows, "
            f"sha256 {ref.get('sha256') or '–'}",
        ),
        (
            "Reference profile",
            f"sha256 {mon.get('profile_sha256')}, built {mon.get('profile_created_at') or '–'}",
        ),
        ("Model", f"sha256 {ref.get('model_sha256') or '– (score column)'}"),
        ("Windows", f"{len(done)} succeeded, {len(failed)} failed"),
    ]
    out = [f"<h1>Monitoring report: {_esc(name)}</h1><table class='kv'>"]
    out += [f"<tr><td><b>{_esc(k)}</b></td><td class='l w'>{_esc(v)}</td></tr>" for k, v in rows]
    out.append(
        "</table><p class='note'>Ongoing monitoring of a model in production (SR 26-2 §V; OCC 2011-12; "
        "EU AI Act Art 72). Every window is compared with the stored reference profile only; the "
        "reference data are not re-read. AIR below air_min is a screening signal for fair-lending "
        "review (four-fifths rule, 29 CFR 1607.4(D)), not a legal finding.</p>"
    )
    return out


def _latest(latest: dict[str, Any], policy: Any) -> list[str]:
    w = latest.get("window") or {}
    parts = [f"<h2>Latest window ({_esc(w.get('seq'))}: {_esc(Path(str(w.get('source'))).name)})</h2>"]
    pred = latest.get("prediction") or {}
    parts.append(
        "<table><tr><th>prediction</th><th>window</th><th>reference</th><th>difference</th><th>p-value</th></tr>"
        f"<tr><td>adverse (decline) rate</td><td>{_num(pred.get('adverse_rate'), '.1%')}</td>"
        f"<td>{_num(pred.get('reference_adverse_rate'), '.1%')}</td>"
        f"<td>{_num(pred.get('adverse_rate_difference'), '+.1%')}</td>"
        f"<td>{_p(pred.get('adverse_rate_p_value'))}</td></tr>"
        f"<tr><td>mean score</td><td>{_num(pred.get('mean_score'), '.4f')}</td>"
        f"<td>{_num(pred.get('reference_mean_score'), '.4f')}</td><td>–</td><td>–</td></tr></table>"
        f"<p class='note'>{_num(latest.get('rows'), ',')} rows, run {_esc(w.get('created_at'))}, "
        f"file sha256 {_esc(w.get('sha256'))}.</p>"
    )
    parts.append("<h3>Feature and score drift</h3>")
    parts.append(
        "<table class='small'><tr><th>feature</th><th class='l'>type</th><th>PSI</th><th class='l'>light</th>"
        "<th>KS</th><th>W1 normed</th><th>JS</th><th>chi2</th><th>p-value</th><th>missing (ref)</th></tr>"
    )
    drift = latest.get("drift") or {}
    items = list((drift.get("features") or {}).items())
    items.sort(key=lambda kv: -(kv[1].get("psi") or 0.0))
    if drift.get("score"):
        items.insert(0, ("score (model output)", drift["score"]))
    for f, d in items:
        num = d.get("kind") == "numeric"
        light = d.get("traffic_light") or ""
        ks = _num(d.get("ks")) if num else "–"
        chi = "–" if num else _num(d.get("chi2"), ".1f")
        pv = _p(d.get("ks_p_value") if num else d.get("chi2_p_value"))
        parts.append(
            f"<tr><td>{_esc(f)}</td><td class='l'>{'numeric' if num else 'categorical'}</td>"
            f"<td>{_num(d.get('psi'))}</td><td class='l {light}'>{light or '–'}</td><td>{ks}</td>"
            f"<td>{_num(d.get('wasserstein_normed')) if num else '–'}</td>"
            f"<td>{'–' if num else _num(d.get('js'))}</td><td>{chi}</td><td>{pv}</td>"
            f"<td>{_num(d.get('missing_rate'), '.1%')} "
            f"({_num(d.get('reference_missing_rate'), '.1%')})</td></tr>"
        )
    parts.append(
        f"</table><p class='note'>Traffic light: green PSI &lt; psi_amber ({policy.psi_amber:g}) ≤ amber "
        f"&lt; psi_red ({policy.psi_red:g}) ≤ red. KS/W1 for numeric features, Jensen–Shannon distance "
        "and chi-square for categorical ones (conventions above); p-value: KS (numeric) or chi-square "
        "(categorical).</p>"
    )
    new = [(f, d) for f, d in (drift.get("features") or {}).items() if d.get("new_categories")]
    if new:
        parts.append(
            "<h3>New categories</h3><table><tr><th>feature</th><th class='l'>values not in the reference</th>"
            "<th>share of the window</th></tr>"
        )
        for f, d in new:
            vals = ", ".join(map(str, d["new_categories"][:10])) + (
                " …" if len(d["new_categories"]) > 10 else ""
            )
            parts.append(
                f"<tr><td>{_esc(f)}</td><td class='l w'>{_esc(vals)}</td>"
                f"<td>{_num(d.get('unseen_share'), '.1%')}</td></tr>"
            )
        parts.append("</table>")
    attrs = (latest.get("fairness") or {}).get("attributes") or {}
    if attrs:
        parts.append(
            "<h3>Fairness</h3><table class='small'><tr><th>attribute = group</th><th>n</th>"
            "<th>share (ref)</th>"
            "<th>favorable rate</th><th>AIR</th><th>95% CI</th><th>p-value</th><th>ref. AIR</th>"
            "<th>shortfall</th><th class='l'>alert</th></tr>"
        )
        for attr, aw in attrs.items():
            for g, gw in aw["groups"].items():
                ref = g == aw.get("reference")
                parts.append(
                    f"<tr><td>{_esc(attr)} = {_esc(g)}{' (reference)' if ref else ''}</td>"
                    f"<td>{_num(gw.get('n'), ',.0f')}</td>"
                    f"<td>{_num(gw.get('share'), '.1%')} ({_num(gw.get('reference_share'), '.1%')})</td>"
                    f"<td>{_num(gw.get('favorable_rate'), '.1%')}</td><td>{_num(gw.get('air'))}</td>"
                    f"<td>{'–' if ref else _ci(gw.get('air_ci'))}</td><td>{_p(gw.get('air_p_value'))}</td>"
                    f"<td>{_num(gw.get('reference_air'))}</td><td>{_num(gw.get('shortfall'), ',.0f')}</td>"
                    f"<td class='l {'alert' if gw.get('alert') else ''}'>"
                    f"{'yes' if gw.get('alert') else 'no'}</td></tr>"
                )
        parts.append(
            f"</table><p class='note'>Alert when AIR &lt; air_min ({policy.air_min:g}) and "
            f"p &lt; significance ({policy.significance:g}) and the group has at least "
            f"min_group_size ({policy.min_group_size}) "
            "rows. Shortfall: additional favorable decisions the group needs for AIR to reach air_min.</p>"
        )
    perf = latest.get("performance")
    if perf:
        cal = perf.get("calibration") or {}
        parts.append(
            "<h3>Performance (delayed labels)</h3><table><tr><th>n</th><th>event rate</th><th>AUC</th>"
            "<th>95% CI</th><th>Gini</th><th>KS</th><th>Brier</th><th>mean predicted</th>"
            "<th>Hosmer–Lemeshow p</th></tr>"
            f"<tr><td>{_num(perf.get('n'), ',')}</td><td>{_num(perf.get('event_rate'), '.1%')}</td>"
            f"<td>{_num(perf.get('auc'))}</td><td>{_ci(perf.get('auc_ci'))}</td>"
            f"<td>{_num(perf.get('gini'))}</td>"
            f"<td>{_num(perf.get('ks'))}</td><td>{_num(perf.get('brier'), '.4f')}</td>"
            f"<td>{_num(cal.get('mean_predicted'), '.1%')}</td>"
            f"<td>{_p(cal.get('hosmer_lemeshow_p'))}</td></tr></table>"
            f"<p class='note'>Labels received {_esc(perf.get('labels_received_at') or '–')}.</p>"
        )
    parts.append("<h3>Alerts</h3>")
    alerts = latest.get("alerts") or []
    if not alerts:
        parts.append("<p>None.</p>")
    else:
        parts.append(
            "<table><tr><th class='l'>severity</th><th class='l'>alert</th><th>value</th>"
            "<th>threshold</th></tr>"
        )
        for a in alerts:
            thr = a.get("threshold")
            src = f"{_num(thr, 'g')} ({_esc(a.get('threshold_source'))})" if thr is not None else "–"
            parts.append(
                f"<tr><td class='l'>{_esc(a.get('severity'))}</td>"
                f"<td class='l w'><b>{_esc(a.get('title'))}</b>: "
                f"{_esc(a.get('detail'))}</td><td>{_num(a.get('value'))}</td><td>{src}</td></tr>"
            )
        parts.append("</table>")
    return parts


def monitoring_html(name: str, policy: Any, history: dict[str, Any], latest: dict[str, Any] | None) -> str:
    """The report's HTML."""
    css = CSS.replace("MONITOR_NAME", name.replace("\\", "").replace('"', "'"))
    parts = [
        f"<html><head><meta charset='utf-8'><title>{_esc(name)}</title><style>{css}</style></head><body>"
    ]
    parts += _header(name, history)
    parts.append(
        "<h2>Thresholds</h2><table><tr><th>threshold</th><th>value</th><th class='l'>source</th></tr>"
    )
    for t in THRESHOLDS:
        value = _num(getattr(policy, t), "g")
        parts.append(f"<tr><td>{t}</td><td>{value}</td><td class='l'>{policy.source(t)}</td></tr>")
    parts.append(
        "</table><p class='note'>source: <i>policy</i> = set in the audit spec's policy block, "
        "<i>default</i> = Assay's default.</p><h2>Conventions</h2><table>"
    )
    for k, v in CONVENTIONS.items():
        parts.append(f"<tr><td>{_esc(k)}</td><td class='l w'>{_esc(v)}</td></tr>")
    parts.append("</table><h2>Trends</h2>")
    charts = monitoring_charts(history, policy)
    if not charts:
        parts.append("<p>No succeeded window yet.</p>")
    for caption, uri in charts:
        parts.append(f"<figure><img src='{uri}'/><figcaption>{_esc(caption)}</figcaption></figure>")
    parts.append(
        "<h2>Windows</h2><table class='small'><tr><th>#</th><th class='l'>source</th>"
        "<th class='l'>status</th><th>rows</th>"
        "<th>score PSI</th><th>largest feature PSI</th><th>red / amber</th><th>adverse rate</th>"
        "<th>alerts</th><th>AUC (95% CI)</th></tr>"
    )
    for p in history["windows"]:
        auc = f"{_num(p['auc'])} ({_ci(p.get('auc_ci'))})" if p["auc"] is not None else "–"
        status = p["status"] if p["status"] != "failed" else "<span class='alert'>failed</span>"
        parts.append(
            f"<tr><td>{p['seq']}</td><td class='l'>{_esc(Path(str(p['source'])).name)}</td>"
            f"<td class='l'>{status}</td>"
            f"<td>{_num(p['rows'], ',')}</td><td>{_num(p['score_psi'])}</td>"
            f"<td>{_num(p['max_psi'])} ({_esc(p['max_psi_feature'] or '–')})</td>"
            f"<td>{_num(p['n_red'], 'd')} / {_num(p['n_amber'], 'd')}</td>"
            f"<td>{_num(p.get('adverse_rate'), '.1%')}</td><td>{p['n_alerts']}</td><td>{auc}</td></tr>"
        )
    parts.append("</table>")
    for p in history["windows"]:
        if p["status"] == "failed" and p.get("error"):
            parts.append(f"<p class='note'>Window {p['seq']} failed: {_esc(p['error'])}</p>")
    if latest:
        parts += _latest(latest, policy)
    parts.append("</body></html>")
    return "".join(parts)


def render_monitoring_pdf(
    mspec: Any, history: dict[str, Any], latest: dict[str, Any] | None, out: Path
) -> None:
    """Write the monitoring PDF for a monitor file's history (atomically: temp name, then rename)."""
    from weasyprint import HTML

    from service.monitoring.monitor import load_audit

    audit = load_audit(mspec)
    doc = monitoring_html(mspec.name, audit.policy, history, latest)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    HTML(string=doc).write_pdf(tmp)
    tmp.replace(out)


__all__ = ["monitoring_charts", "monitoring_html", "render_monitoring_pdf"]
