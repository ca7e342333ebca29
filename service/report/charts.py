"""Report charts: matplotlib (Agg) rendered to SVG with fixed metadata, so the same audit.json gives
the same bytes. Every chart takes plain numbers already present in ``AuditResult``; none computes a
statistic. Each function returns a ``data:image/svg+xml;base64,...`` URI (or ``None`` when there is
nothing to draw) that the template embeds as an ``<img>``.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any, TypeGuard

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

_RC: Any = {
    "svg.hashsalt": "assay-report",  # deterministic element ids
    "svg.fonttype": "path",  # text as paths: no font dependency in the PDF
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.5,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
}
BLUE, GREY, RED, AMBER, GREEN = "#1f4e79", "#7f7f7f", "#b3261e", "#b26a00", "#2e7d32"
PALETTE = [BLUE, "#c55a11", GREEN, "#7030a0", RED, "#00838f", "#6d4c41", GREY]


def _finite(x: Any) -> TypeGuard[float]:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _short(label: str, n: int = 28) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def _to_uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def calibration_chart(splits: dict[str, list[dict[str, Any]]]) -> str | None:
    """Observed event rate against mean predicted probability per decile, one line per split."""
    series = {
        name: [
            (b["mean_predicted"], b["observed_rate"])
            for b in bins
            if _finite(b.get("mean_predicted")) and _finite(b.get("observed_rate"))
        ]
        for name, bins in splits.items()
    }
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(3.3, 3.1))
        top = max(max(max(p, o) for p, o in pts) for pts in series.values())
        top = min(1.0, top * 1.08 + 0.02)
        ax.plot([0, top], [0, top], color=GREY, lw=0.8, ls="--", label="perfect calibration")
        for i, (name, pts) in enumerate(sorted(series.items())):
            ax.plot(
                [p for p, _ in pts],
                [o for _, o in pts],
                marker="o",
                ms=3,
                lw=1.2,
                color=PALETTE[i % len(PALETTE)],
                label=name,
            )
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel("mean predicted probability (decile)")
        ax.set_ylabel("observed event rate")
        ax.set_title("Calibration by score decile")
        ax.legend(loc="upper left")
        return _to_uri(fig)


def gains_chart(splits: dict[str, list[dict[str, Any]]]) -> str | None:
    """ROC and KS read off the decile table: cumulative share of events and non-events captured from
    the riskiest decile down (ten points, so a coarse view of the ROC curve whose AUC is reported)."""
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for name, bins in splits.items():
        rows = [(b.get("n"), b.get("events")) for b in bins]
        if not rows or not all(_finite(n) and _finite(e) for n, e in rows):
            continue
        ev = [float(e or 0.0) for _, e in rows][::-1]
        ne = [float(n or 0.0) - float(e or 0.0) for n, e in rows][::-1]
        te, tn = sum(ev), sum(ne)
        if te <= 0 or tn <= 0:
            continue
        tpr, fpr, ce, cn = [0.0], [0.0], 0.0, 0.0
        for e, m in zip(ev, ne, strict=True):
            ce, cn = ce + e, cn + m
            tpr.append(ce / te)
            fpr.append(cn / tn)
        curves[name] = (fpr, tpr)
    if not curves:
        return None
    with plt.rc_context(_RC):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(6.4, 3.0))
        ax1.plot([0, 1], [0, 1], color=GREY, lw=0.8, ls="--")
        for i, (name, (fpr, tpr)) in enumerate(sorted(curves.items())):
            c = PALETTE[i % len(PALETTE)]
            ax1.plot(fpr, tpr, marker="o", ms=2.5, lw=1.2, color=c, label=name)
            x = [k / (len(tpr) - 1) for k in range(len(tpr))]
            ax2.plot(x, tpr, color=c, lw=1.2, label=f"{name}: events")
            ax2.plot(x, fpr, color=c, lw=1.2, ls=":", label=f"{name}: non-events")
        ax1.set_xlabel("false-positive rate")
        ax1.set_ylabel("true-positive rate")
        ax1.set_title("ROC (decile resolution)")
        ax1.legend(loc="lower right")
        ax2.set_xlabel("share of population, riskiest first")
        ax2.set_ylabel("cumulative share captured")
        ax2.set_title("KS: gap between the curves")
        ax2.legend(loc="lower right")
        fig.tight_layout()
        return _to_uri(fig)


def air_chart(rows: Sequence[dict[str, Any]], *, air_min: float | None) -> str | None:
    """AIR per group with its confidence interval as error bars; reference line at ``air_min``."""
    pts = [r for r in rows if _finite(r.get("air"))]
    if not pts:
        return None
    height = max(1.6, 0.24 * len(pts) + 0.9)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.2, height))
        labels = [_short(str(r["label"]), 40) for r in pts]
        y = list(range(len(pts)))[::-1]
        for yi, r in zip(y, pts, strict=True):
            ci = r.get("ci") or [None, None]
            lo, hi = (ci + [None, None])[:2]
            flag = air_min is not None and r["air"] < air_min
            color = RED if flag else BLUE
            if _finite(lo) and _finite(hi):
                ax.errorbar(
                    r["air"],
                    yi,
                    xerr=[[max(r["air"] - lo, 0)], [max(hi - r["air"], 0)]],
                    fmt="o",
                    ms=4,
                    color=color,
                    ecolor=color,
                    elinewidth=1,
                    capsize=2,
                )
            else:
                ax.plot(r["air"], yi, "o", ms=4, color=color)
        ax.axvline(1.0, color=GREY, lw=0.8)
        if air_min is not None:
            ax.axvline(air_min, color=RED, lw=0.8, ls="--", label=f"air_min = {air_min:g}")
            ax.legend(loc="lower right")
        ax.set_yticks(y)
        ax.set_yticklabels(labels)
        ax.set_xlabel("adverse impact ratio (favourable rate / reference favourable rate), 95% CI")
        ax.set_title("AIR by group")
        return _to_uri(fig)


def bar_chart(
    items: Sequence[tuple[str, Any, tuple[float, float] | None]],
    *,
    title: str,
    xlabel: str,
    max_items: int = 25,
    lines: Sequence[tuple[float, str]] = (),
) -> str | None:
    """Horizontal bars (largest first), optional CI whiskers; used for SHAP importance and shares."""
    pts = [(lab, v, ci) for lab, v, ci in items if _finite(v)][:max_items]
    if not pts:
        return None
    height = max(1.6, 0.22 * len(pts) + 0.9)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.2, height))
        y = list(range(len(pts)))[::-1]
        ax.barh(y, [v for _, v, _ in pts], color=BLUE, height=0.6)
        for yi, (_, v, ci) in zip(y, pts, strict=True):
            if ci is not None and _finite(ci[0]) and _finite(ci[1]):
                ax.errorbar(
                    v,
                    yi,
                    xerr=[[max(v - ci[0], 0)], [max(ci[1] - v, 0)]],
                    fmt="none",
                    ecolor="#222222",
                    elinewidth=0.8,
                    capsize=2,
                )
        for value, color in lines:
            ax.axvline(value, color=color, lw=0.8, ls="--")
        ax.set_yticks(y)
        ax.set_yticklabels([_short(lab, 40) for lab, _, _ in pts])
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        return _to_uri(fig)


def line_chart(
    x_labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str,
    bands: Sequence[tuple[float, str, str]] = (),
) -> str | None:
    """One line per series over ordered categories (periods); optional horizontal threshold lines."""
    if not x_labels or not any(any(_finite(v) for v in s) for s in series.values()):
        return None
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.2, 2.8))
        xs = list(range(len(x_labels)))
        for i, (name, vals) in enumerate(series.items()):
            pts = [(x, float(v)) for x, v in zip(xs, vals, strict=False) if _finite(v)]
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    marker="o",
                    ms=3,
                    lw=1.2,
                    color=PALETTE[i % len(PALETTE)],
                    label=_short(name, 30),
                )
        for value, label, color in bands:
            ax.axhline(value, color=color, lw=0.8, ls="--", label=label)
        step = max(1, math.ceil(len(x_labels) / 14))
        ax.set_xticks(xs[::step])
        ax.set_xticklabels([_short(str(v), 12) for v in x_labels][::step], rotation=45, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(loc="best", ncols=2)
        return _to_uri(fig)


def grouped_bars(
    categories: Sequence[str], groups: dict[str, Sequence[float | None]], *, title: str, ylabel: str
) -> str | None:
    """Grouped vertical bars: one cluster per category, one bar per group (e.g. reason share by group,
    score distribution by group)."""
    if not categories or not groups:
        return None
    if not any(any(_finite(v) for v in vals) for vals in groups.values()):
        return None
    k = len(groups)
    width = 0.8 / max(k, 1)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.2, 2.8))
        for i, (name, vals) in enumerate(groups.items()):
            xs = [c + (i - (k - 1) / 2) * width for c in range(len(categories))]
            ys = [float(v) if _finite(v) else 0.0 for v in vals]
            ax.bar(xs[: len(ys)], ys, width=width, color=PALETTE[i % len(PALETTE)], label=_short(name, 30))
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels([_short(str(c), 14) for c in categories], rotation=45, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(loc="best", ncols=2)
        return _to_uri(fig)


__all__ = ["air_chart", "bar_chart", "calibration_chart", "gains_chart", "grouped_bars", "line_chart"]
