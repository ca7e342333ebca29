"""Dedicated renderers for the data-governance and stability sections (representation, proxies,
imbalance, temporal, drift): the tables a validator reads first, then whatever else the section holds
through the generic renderer, so keys added later still print."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from service.report import charts
from service.report._blocks import (
    Block,
    _thr,
    _thr_label,
    chart,
    generic,
    heading,
    kv,
    light,
    para,
    table,
)
from service.report._format import DASH, ci, count, human, is_num, num, pct, pval
from service.result import AuditResult


def _rest(sec: dict[str, Any], shown: set[str], title: str = "") -> list[Block]:
    """Generic rendering of the keys a dedicated renderer did not print."""
    rest = {k: v for k, v in sec.items() if k not in shown and v not in (None, [], {})}
    return generic(rest, title) if rest else []


def _flag(flagged: Any, yes: str = "flag", no: str = "ok") -> dict[str, str]:
    return light(yes, "red") if flagged else light(no, "green")


# ---------------------------------------------------------------- representation


def representation(result: AuditResult, sec: dict[str, Any]) -> list[Block]:
    out: list[Block] = []
    min_n = _thr(result, "min_group_size")
    out.append(
        para(
            f"Sample: {sec.get('split', DASH)} split, {count(sec.get('n'))} rows; counts are "
            f"{sec.get('count_basis', 'rows')}. Groups smaller than min_group_size = "
            f"{_thr_label(result, 'min_group_size')} are marked red.",
            "muted",
        )
    )
    for aname, att in (sec.get("attributes") or {}).items():
        if not isinstance(att, dict):
            continue
        groups = {g: v for g, v in (att.get("groups") or {}).items() if isinstance(v, dict)}
        ref = att.get("reference")
        rows = []
        for g, v in groups.items():
            n = v.get("n")
            small = v.get("below_min_size") or (min_n is not None and is_num(n) and n < min_n)
            rows.append(
                [
                    f"{g} (reference)" if str(g) == str(ref) else str(g),
                    light(count(n), "red") if small else count(n),
                    pct(v.get("share")),
                    pct(v.get("population_share")),
                    num(v.get("population_gap")),
                    count(v.get("events")),
                    pct(v.get("event_rate")),
                ]
            )
        how = (
            "estimated (" + str(att.get("method")) + ")"
            if att.get("estimated")
            else str(att.get("method", ""))
        )
        title = (
            f"Representation: {aname} (column {att.get('column', DASH)}, {how}; "
            f"missing {pct(att.get('missing_rate'))})"
        )
        out.append(
            table(
                [
                    "Group",
                    "n",
                    "Share",
                    "Population share",
                    "Gap (share − population)",
                    "Events",
                    "Event rate",
                ],
                rows,
                title=title,
                widths=["26%", "10%", "10%", "13%", "15%", "12%", "14%"],
            )
        )
        test = att.get("population_test")
        if isinstance(test, dict):
            out.append(
                para(
                    f"Population benchmark test ({test.get('method', 'chi-square')}): statistic "
                    f"{num(test.get('statistic'))}, df {count(test.get('df'))}, p-value "
                    f"{pval(test.get('p_value'))}."
                    + (
                        f" Groups without a benchmark share: "
                        f"{', '.join(map(str, test['groups_not_in_benchmark']))}."
                        if test.get("groups_not_in_benchmark")
                        else ""
                    ),
                    "note",
                )
            )
        gaps = [r for r in att.get("missingness_gaps") or [] if isinstance(r, dict)]
        flagged = [r for r in gaps if r.get("flagged")]
        if flagged:
            gnames = list(groups)
            out.append(
                table(
                    ["Feature", "Overall missing"] + [str(g) for g in gnames] + ["Gap"],
                    [
                        [r.get("feature", DASH), pct(r.get("overall_missing_rate"))]
                        + [pct((r.get("by_group") or {}).get(g)) for g in gnames]
                        + [light(num(r.get("gap")), "red")]
                        for r in flagged
                    ],
                    title=f"Missing-rate gaps between groups: {aname}",
                    note=f"Features whose missing rate differs between groups by more than "
                    f"missing_gap_max = {_thr_label(result, 'missing_gap_max')}.",
                )
            )
        elif gaps:
            biggest = max((float(r["gap"]) for r in gaps if is_num(r.get("gap"))), default=None)
            out.append(
                para(
                    f"Missing-rate gaps by {aname}: none of {len(gaps)} features exceeds "
                    f"missing_gap_max = {_thr_label(result, 'missing_gap_max')} (largest gap "
                    f"{num(biggest)}).",
                    "note",
                )
            )
        if att.get("diagnostics"):
            out += generic(att["diagnostics"], f"{aname} › estimation diagnostics")
    out += _rest(sec, {"split", "n", "count_basis", "attributes", "min_group_size", "missing_gap_max"})
    return out


# ---------------------------------------------------------------- proxies


def _assoc(f: dict[str, Any]) -> str:
    m = f.get("measure")
    v = f.get(m) if isinstance(m, str) else None
    if not is_num(v):
        v = f.get("cramers_v") if is_num(f.get("cramers_v")) else f.get("eta")
    label = {"cramers_v": "V", "eta": "η"}.get(str(m), "")
    return f"{num(v)} {label}".strip()


def proxies(result: AuditResult, sec: dict[str, Any]) -> list[Block]:
    out: list[Block] = []
    out.append(
        para(
            f"Method: {sec.get('method', DASH)}. Sample: {sec.get('split', DASH)} split, "
            f"{count(sec.get('n'))} rows. A feature is flagged when its association exceeds "
            f"proxy_association_max = {_thr_label(result, 'proxy_association_max')} or its one-vs-rest "
            f"AUC exceeds proxy_auc_max = {_thr_label(result, 'proxy_auc_max')}; all features together "
            f"are tested for redundant encoding against proxy_auc_max.",
            "muted",
        )
    )
    summary = []
    for aname, att in (sec.get("attributes") or {}).items():
        if not isinstance(att, dict):
            continue
        red = att.get("redundant_encoding") or {}
        summary.append(
            [
                aname,
                light(
                    f"{num(red.get('auc'))} {ci(red.get('auc_ci'))}", "red" if red.get("flagged") else "green"
                ),
                ", ".join(map(str, att.get("flagged_features") or [])) or "none",
                ", ".join(map(str, att.get("direct_use") or [])) or "none",
            ]
        )
    if summary:
        out.append(
            table(
                [
                    "Attribute",
                    "Redundant-encoding AUC (95% CI)",
                    "Flagged proxy features",
                    "Used directly as a feature",
                ],
                summary,
                title="Proxy screen summary",
                widths=["18%", "26%", "36%", "20%"],
            )
        )
    for aname, att in (sec.get("attributes") or {}).items():
        if not isinstance(att, dict):
            continue
        feats = [f for f in att.get("features") or [] if isinstance(f, dict)]
        if feats:
            rows = [
                [
                    str(f.get("feature") or DASH),
                    str(f.get("kind") or DASH),
                    _assoc(f),
                    num(f.get("mutual_info")),
                    num(f.get("auc")),
                    _flag(f.get("flagged")),
                    "; ".join(map(str, f.get("reasons") or [])),
                ]
                for f in feats
            ]
            out.append(
                table(
                    ["Feature", "Type", "Association", "Mutual info", "AUC (one-vs-rest)", "Flag", "Why"],
                    rows,
                    title=f"Single-feature association with {aname} (reference {att.get('reference', DASH)}"
                    f"{', estimated' if att.get('estimated') else ''})",
                    note="Association: Cramér's V (V) for categorical features, correlation ratio (η) for "
                    "numeric ones. Mutual information is normalised.",
                    widths=["24%", "11%", "12%", "11%", "12%", "9%", "21%"],
                    cls="small",
                )
            )
        red = att.get("redundant_encoding")
        if isinstance(red, dict) and red:
            top = [t for t in red.get("top_features") or [] if isinstance(t, dict)]
            out.append(
                kv(
                    [
                        ("AUC (95% CI)", f"{num(red.get('auc'))} {ci(red.get('auc_ci'))}"),
                        ("Model", str(red.get("model") or DASH)),
                        (
                            "Cross-validation folds / sample / bootstrap",
                            f"{count(red.get('cv_folds'))} / {count(red.get('sample_size'))} / "
                            f"{count(red.get('n_bootstrap'))}",
                        ),
                        ("Flagged", "yes" if red.get("flagged") else "no"),
                        (
                            "Features carrying the signal (permutation importance ± sd)",
                            ", ".join(
                                f"{t.get('feature')} {num(t.get('importance'))} ± "
                                f"{num(t.get('importance_std'))}"
                                for t in top[:6]
                            )
                            or DASH,
                        ),
                    ]
                    + ([("Note", str(red["note"]))] if red.get("note") else []),
                    title=f"Redundant encoding: all features → {aname}",
                )
            )
    out += _rest(
        sec,
        {"split", "n", "method", "attributes", "proxy_association_max", "proxy_auc_max", "flagged_features"},
    )
    return out


# ---------------------------------------------------------------- imbalance


def imbalance(result: AuditResult, sec: dict[str, Any]) -> list[Block]:
    out: list[Block] = []
    epv, epv_min = sec.get("events_per_variable"), sec.get("events_per_variable_min")
    epv_cell: Any = num(epv, 1)
    if is_num(epv) and is_num(epv_min):
        epv_cell = light(f"{num(epv, 1)} (minimum {num(epv_min, 0)})", "red" if epv < epv_min else "green")
    out.append(
        kv(
            [
                (
                    "Rows / events / event rate",
                    f"{count(sec.get('n'))} / {count(sec.get('events'))} / {pct(sec.get('event_rate'))}",
                ),
                ("Imbalance ratio (non-events per event)", num(sec.get("imbalance_ratio"), 2)),
                ("Events per variable (model features)", epv_cell),
                (
                    "Low-default portfolio",
                    light("yes", "amber") if sec.get("low_default_portfolio") else "no",
                ),
                ("Low-default reasons", "; ".join(map(str, sec.get("low_default_reasons") or [])) or "none"),
                (
                    "Low-default thresholds",
                    f"events below {_thr_label(result, 'low_default_events')} or event rate below "
                    f"{_thr_label(result, 'low_default_rate')}",
                ),
            ],
            title="Class balance",
        )
    )
    rows = []
    for aname, groups in (sec.get("per_group") or {}).items():
        for g, v in (groups or {}).items():
            if isinstance(v, dict):
                rows.append(
                    [
                        aname,
                        str(g),
                        count(v.get("n")),
                        count(v.get("events")),
                        pct(v.get("event_rate")),
                        light("low-default", "amber") if v.get("low_default") else "—",
                    ]
                )
    if rows:
        out.append(
            table(
                ["Attribute", "Group", "n", "Events", "Event rate", "Flag"],
                rows,
                title="Events by protected group",
                widths=["20%", "28%", "12%", "12%", "14%", "14%"],
            )
        )
    srows = []
    for name, sp in (sec.get("splits") or {}).items():
        if isinstance(sp, dict):
            srows.append(
                [
                    name,
                    count(sp.get("n")),
                    count(sp.get("events")),
                    pct(sp.get("event_rate")),
                    f"{num(sp.get('pr_auc'))} {ci(sp.get('pr_auc_ci'))}",
                    num(sp.get("pr_auc_baseline")),
                    f"{num(sp.get('recall'))} {ci(sp.get('recall_ci'))}",
                    f"{num(sp.get('precision'))} {ci(sp.get('precision_ci'))}",
                    f"{num(sp.get('balanced_accuracy'))} {ci(sp.get('balanced_accuracy_ci'))}",
                    num(sp.get("f1")),
                ]
            )
    if srows:
        out.append(
            table(
                [
                    "Split",
                    "n",
                    "Events",
                    "Event rate",
                    "PR-AUC (95% CI)",
                    "PR-AUC baseline",
                    "Recall",
                    "Precision",
                    "Balanced accuracy",
                    "F1",
                ],
                srows,
                title=f"Imbalance-aware metrics at the decision threshold {num(sec.get('threshold'))}",
                note=f"Bootstrap resamples: {count(sec.get('n_bootstrap'))}. PR-AUC baseline = event rate.",
                widths=["7%", "7%", "7%", "8%", "14%", "9%", "13%", "13%", "13%", "9%"],
                cls="small",
            )
        )
        conf = [
            (n, sp.get("confusion"))
            for n, sp in (sec.get("splits") or {}).items()
            if isinstance(sp, dict) and isinstance(sp.get("confusion"), dict)
        ]
        if conf:
            out.append(
                table(
                    ["Split", "True positives", "False negatives", "False positives", "True negatives"],
                    [
                        [n, count(c.get("tp")), count(c.get("fn")), count(c.get("fp")), count(c.get("tn"))]
                        for n, c in conf
                        if c
                    ],
                    title="Confusion counts (adverse event = positive)",
                )
            )
    if sec.get("mitigation") or sec.get("mitigation_note"):
        out.append(heading("Mitigation"))
        if sec.get("mitigation_note"):
            out.append(para(str(sec["mitigation_note"])))
        if sec.get("mitigation"):
            out += generic(sec["mitigation"])
    out += _rest(
        sec,
        {
            "n",
            "events",
            "event_rate",
            "imbalance_ratio",
            "n_features",
            "events_per_variable",
            "events_per_variable_min",
            "low_default_portfolio",
            "low_default_reasons",
            "per_group",
            "threshold",
            "splits",
            "mitigation",
            "mitigation_note",
            "n_bootstrap",
        },
    )
    return out


# ---------------------------------------------------------------- temporal (robustness chapter)


def _psi_light(result: AuditResult, v: Any) -> Any:
    amber, red = _thr(result, "psi_amber"), _thr(result, "psi_red")
    if not is_num(v):
        return DASH
    colour = (
        "red" if red is not None and v >= red else "amber" if amber is not None and v >= amber else "green"
    )
    return light(num(v), colour)


def _air_text(air: Any) -> str:
    """``{attribute: {group: air}}`` (or ``{attribute: air}``) as short text."""
    if not isinstance(air, dict) or not air:
        return DASH
    parts = []
    for a, v in air.items():
        if isinstance(v, dict):
            vals = [
                f"{g} {num(x.get('air') if isinstance(x, dict) else x)}"
                for g, x in v.items()
                if (is_num(x) or (isinstance(x, dict) and is_num(x.get("air"))))
            ]
            if vals:
                parts.append(f"{a}: " + ", ".join(vals))
        elif is_num(v):
            parts.append(f"{a} {num(v)}")
    return "; ".join(parts) or DASH


def _window_row(label: str, w: dict[str, Any], result: AuditResult) -> list[Any]:
    auc_min = _thr(result, "auc_min")
    auc = w.get("auc")
    auc_cell: Any = f"{num(auc)} {ci(w.get('auc_ci'))}" if is_num(auc) else DASH
    if is_num(auc) and auc_min is not None:
        auc_cell = light(auc_cell, "red" if auc < auc_min else "green")
    small = " (too small)" if w.get("too_small") else ""
    return [
        label + small,
        count(w.get("n")),
        pct(w.get("event_rate")),
        pct(w.get("adverse_rate")),
        auc_cell,
        num(w.get("ks")),
        num(w.get("calibration_ratio"), 2),
        _psi_light(result, w.get("psi_vs_dev")),
        _air_text(w.get("air")),
    ]


WINDOW_COLS = [
    "Window",
    "n",
    "Event rate",
    "Adverse rate",
    "AUC (95% CI)",
    "KS",
    "Obs/pred",
    "Score PSI",
    "AIR",
]
WINDOW_WIDTHS = ["13%", "7%", "8%", "8%", "18%", "7%", "8%", "9%", "22%"]


def _diff_table(diffs: dict[str, Any], title: str, base: str, other: str) -> Block:
    rows = [
        [
            human(m),
            num(d.get("base")),
            num(d.get("other")),
            num(d.get("difference")),
            ci(d.get("ci")),
            pval(d.get("p_value")),
            str(d.get("test") or DASH),
        ]
        for m, d in diffs.items()
        if isinstance(d, dict)
    ]
    return table(
        ["Metric", base, other, "Difference", "95% CI", "p-value", "Test"],
        rows,
        title=title,
        widths=["20%", "12%", "12%", "13%", "17%", "10%", "16%"],
        cls="small",
    )


def _not_computed_note(periods: list[dict[str, Any]]) -> str:
    """Say which periods lack which statistic and why, from the audit's own per-period notes."""
    kinds: dict[str, tuple[list[str], str]] = {}
    for p in periods:
        for note in p.get("notes") or []:
            head, _, rest = str(note).partition(":")
            rules = re.findall(r"\(([^()]{5,})\)", rest)  # "(need >= 5 of each)", not "(s)"
            rule = (
                f"({rules[-1]})"
                if rules
                else "(" + re.sub(r"^\s*[\d.]+ \S+\s*", "", rest).split(";")[0] + ")"
            )
            labels, first_rule = kinds.setdefault(head.strip(), ([], rule))
            labels.append(str(p.get("period") or DASH))
    if not kinds:
        return ""
    parts = [f"{head} {first_rule}: {', '.join(labels)}" for head, (labels, first_rule) in kinds.items()]
    return " A dash marks a statistic not computed, rather than noise: " + "; ".join(parts) + "."


def temporal(result: AuditResult, sec: dict[str, Any]) -> list[Block]:
    out: list[Block] = []
    out.append(
        kv(
            [
                ("Date column", str(sec.get("date_column") or DASH)),
                ("Date range", " to ".join(map(str, sec.get("date_range") or [])) or DASH),
                (
                    "Period",
                    f"{sec.get('period') or DASH} "
                    f"({sec.get('period_reason') or sec.get('dates_reason') or DASH})",
                ),
                ("Smallest period interpreted", f"{count(sec.get('min_period_rows'))} rows"),
                (
                    "Confidence intervals",
                    f"{sec.get('ci_method', DASH)}; {count(sec.get('n_bootstrap'))} resamples",
                ),
            ],
            title="Set-up",
        )
    )
    periods = [p for p in sec.get("periods") or [] if isinstance(p, dict)]
    if periods:
        labels = [str(p.get("period", i)) for i, p in enumerate(periods)]
        amber, red = _thr(result, "psi_amber"), _thr(result, "psi_red")
        bands = [
            (v, f"{n} {v:g}", c)
            for v, n, c in ((amber, "psi_amber", charts.AMBER), (red, "psi_red", charts.RED))
            if v is not None
        ]
        out += chart(
            charts.line_chart(
                labels,
                {"score PSI vs development": [p.get("psi_vs_dev") for p in periods]},
                title="Score PSI by period",
                ylabel="PSI",
                bands=bands,
            ),
            "Score PSI of each period against the development sample; dashed lines at the PSI thresholds.",
        )
        out += chart(
            charts.line_chart(
                labels,
                {
                    "AUC": [p.get("auc") for p in periods],
                    "event rate": [p.get("event_rate") for p in periods],
                    "adverse rate": [p.get("adverse_rate") for p in periods],
                },
                title="AUC, event rate and adverse rate by period",
                ylabel="value",
            ),
            "Discrimination and outcome rates by period (periods below the minimum size are omitted "
            "where the statistic is undefined).",
        )
        out.append(
            table(
                WINDOW_COLS,
                [_window_row(str(p.get("period") or DASH), p, result) for p in periods],
                title="Performance by period",
                note=f"PSI coloured at psi_amber = {_thr_label(result, 'psi_amber')} and psi_red = "
                f"{_thr_label(result, 'psi_red')}; AUC red below auc_min = "
                f"{_thr_label(result, 'auc_min')}. Obs/pred = observed / predicted event rate."
                + _not_computed_note(periods),
                widths=WINDOW_WIDTHS,
                cls="small",
            )
        )
    elif sec.get("dates_reason"):
        out.append(para(f"Periods, regimes, change points and vintages: {sec['dates_reason']}.", "muted"))
    cp = sec.get("change_points")
    if isinstance(cp, dict):
        breaks = [b for b in cp.get("breaks") or [] if isinstance(b, dict)]
        out.append(heading("Change points in the event rate"))
        out.append(
            para(
                f"Method: {cp.get('method', DASH)} (alpha {num(cp.get('alpha'))}, minimum segment "
                f"{count(cp.get('min_size'))} periods)." + (f" {cp['reason']}" if cp.get("reason") else ""),
                "note",
            )
        )
        if breaks:
            out.append(
                table(
                    [
                        "First period after",
                        "Last period before",
                        "Rate before",
                        "Rate after",
                        "Statistic",
                        "Dispersion",
                        "p-value",
                    ],
                    [
                        [
                            str(b.get("period") or DASH),
                            str(b.get("previous_period") or DASH),
                            pct(b.get("before_rate")),
                            pct(b.get("after_rate")),
                            num(b.get("statistic"), 1),
                            num(b.get("dispersion"), 2),
                            pval(b.get("p_value")),
                        ]
                        for b in breaks
                    ],
                )
            )
        else:
            out.append(para("No change point detected.", "muted"))
    oot = sec.get("out_of_time")
    out.append(heading("Out-of-time comparison"))
    if isinstance(oot, dict):
        out.append(
            para(
                f"Source: {oot.get('source', DASH)}. Score PSI out-of-time vs development: "
                f"{num(oot.get('psi_oot_vs_dev'))}.",
                "note",
            )
        )
        wins = [(k, oot[k]) for k in ("dev", "oot") if isinstance(oot.get(k), dict)]
        if wins:
            out.append(
                table(
                    WINDOW_COLS,
                    [_window_row(k, w, result) for k, w in wins],
                    title="Development vs out-of-time",
                    widths=WINDOW_WIDTHS,
                    cls="small",
                )
            )
        if isinstance(oot.get("differences"), dict):
            out.append(
                _diff_table(oot["differences"], "Out-of-time minus development", "Development", "Out-of-time")
            )
    else:
        out.append(para(f"Not run: {sec.get('out_of_time_reason') or 'no out-of-time sample'}.", "muted"))
    reg = sec.get("regimes")
    if isinstance(reg, dict):
        out.append(heading("Economic regimes"))
        out.append(para(f"Regimes: {reg.get('source', DASH)}; {reg.get('boundaries', '')}.", "note"))
        wins = [
            (str(r.get("name", i)), r) for i, r in enumerate(reg.get("regimes") or []) if isinstance(r, dict)
        ]
        if isinstance(reg.get("outside"), dict):
            wins.append(("outside all regimes", reg["outside"]))
        if wins:
            out.append(
                table(
                    WINDOW_COLS,
                    [_window_row(k, w, result) for k, w in wins],
                    title="Performance inside each regime window",
                    widths=WINDOW_WIDTHS,
                    cls="small",
                )
            )
        for name, w in wins:
            if isinstance(w.get("vs_outside"), dict) and not w.get("too_small"):
                out.append(
                    _diff_table(w["vs_outside"], f"Regime {name} minus outside all regimes", "Outside", name)
                )
        outside = reg.get("windows_outside_data")
        if outside:
            out.append(
                para(
                    "Regime windows outside the data: "
                    + ", ".join(str(x.get("name", x)) if isinstance(x, dict) else str(x) for x in outside)
                    + ".",
                    "note",
                )
            )
    vin = sec.get("vintage")
    if isinstance(vin, dict):
        out += _vintage(vin, sec)
    stress = [s for s in sec.get("stress") or [] if isinstance(s, dict)]
    if stress:
        out += _stress(stress)
    out += _rest(
        sec,
        {
            "date_column",
            "dates_reason",
            "period",
            "period_reason",
            "date_range",
            "min_period_rows",
            "n_bootstrap",
            "ci_method",
            "periods",
            "change_points",
            "out_of_time",
            "out_of_time_reason",
            "regimes",
            "vintage",
            "stress",
        },
    )
    return out


def _vintage(vin: dict[str, Any], sec: dict[str, Any]) -> list[Block]:
    out: list[Block] = [heading("Vintage curves")]
    out.append(para(f"Column {vin.get('column', DASH)}: {vin.get('definition', DASH)}.", "note"))
    min_n = sec.get("min_period_rows") or 0
    cohorts = [
        c for c in vin.get("cohorts") or [] if isinstance(c, dict) and is_num(c.get("n")) and c["n"] >= min_n
    ]
    exp = vin.get("expected") if isinstance(vin.get("expected"), dict) else None
    curves = ([exp] if exp else []) + cohorts[-7:]
    if curves:
        xs = sorted({float(m) for c in curves for m in c.get("months_on_book") or [] if is_num(m)})
        series: dict[str, Sequence[float | None]] = {}
        for c in curves:
            pts = dict(zip(c.get("months_on_book") or [], c.get("cumulative_event_rate") or [], strict=False))
            series[str(c.get("cohort", "?"))] = [pts.get(x) for x in xs]
        out += chart(
            charts.line_chart(
                [f"{x:g}" for x in xs],
                series,
                title="Cumulative event rate by months on book",
                ylabel="cumulative event rate",
            ),
            f"Vintage curves: the development pool and the {len(cohorts[-7:])} latest cohorts with at "
            f"least {min_n} rows (all cohorts are in audit.json).",
        )
    return out


def _stress(stress: list[dict[str, Any]]) -> list[Block]:
    out: list[Block] = [heading("Stress scenarios")]
    rows = []
    for s in stress:
        b, st, ch = s.get("base") or {}, s.get("stressed") or {}, s.get("change") or {}
        shocks = ", ".join(f"{k} {v}" for k, v in (s.get("shocks") or {}).items()) or DASH
        if not s.get("rescored", True):
            rows.append(
                [str(s.get("name")), shocks, f"not rescored: {s.get('reason') or DASH}", DASH, DASH, DASH]
            )
            continue
        rows.append(
            [
                str(s.get("name")),
                shocks,
                f"{count(s.get('rows_changed'))} of {count(s.get('n'))}",
                f"+{count(s.get('flipped_to_adverse'))} / −{count(s.get('flipped_to_favorable'))}",
                f"{pct(b.get('adverse_rate'))} → {pct(st.get('adverse_rate'))} "
                f"({num(ch.get('adverse_rate'))})",
                f"{num(b.get('mean_score'))} → {num(st.get('mean_score'))} ({num(ch.get('mean_score'))})",
            ]
        )
    out.append(
        table(
            [
                "Scenario",
                "Shocks",
                "Rows changed",
                "Flipped to adverse / favourable",
                "Adverse rate",
                "Mean score",
            ],
            rows,
            title="Scenario results (inputs shifted, rescored through the model)",
            widths=["17%", "21%", "12%", "14%", "18%", "18%"],
            cls="small",
        )
    )
    arows = []
    for s in stress:
        for a, groups in (s.get("air") or {}).items():
            for g, v in (groups or {}).items():
                if isinstance(v, dict) and is_num(v.get("base_air")):
                    arows.append(
                        [
                            str(s.get("name")),
                            a,
                            str(g),
                            num(v.get("base_air")),
                            num(v.get("stressed_air")),
                            num(v.get("change")),
                        ]
                    )
    if arows:
        out.append(
            table(
                ["Scenario", "Attribute", "Group", "AIR before", "AIR after", "Change"],
                arows,
                title="AIR under stress (non-reference groups)",
                cls="small",
            )
        )
    return out


# ---------------------------------------------------------------- drift


def drift(result: AuditResult, sec: dict[str, Any]) -> list[Block]:
    out: list[Block] = []
    summ = sec.get("summary") or {}
    score = sec.get("score") or {}
    pred = sec.get("prediction") or {}
    out.append(
        kv(
            [
                (
                    "Reference / current",
                    f"{sec.get('reference', DASH)} ({count(sec.get('n_reference'))} rows) / "
                    f"{sec.get('current', DASH)} ({count(sec.get('n_current'))} rows)",
                ),
                ("Score PSI", _psi_light(result, score.get("psi"))),
                (
                    "Features drifted (amber / red of total)",
                    f"{count(summ.get('n_amber'))} / {count(summ.get('n_red'))} of "
                    f"{count(summ.get('n_features'))}",
                ),
                ("Largest feature PSI", f"{summ.get('max_psi_feature', DASH)}: {num(summ.get('max_psi'))}"),
                (
                    "Mean score (reference → current)",
                    f"{num(pred.get('reference_mean_score'))} → {num(pred.get('mean_score'))}",
                ),
                (
                    "Adverse rate (reference → current)",
                    f"{pct(pred.get('reference_adverse_rate'))} → "
                    f"{pct(pred.get('adverse_rate'))} (p {pval(pred.get('adverse_rate_p_value'))})",
                ),
            ],
            title="Drift summary",
        )
    )
    feats = {k: v for k, v in (sec.get("features") or {}).items() if isinstance(v, dict)}
    order = sorted(feats, key=lambda k: -(float(feats[k]["psi"]) if is_num(feats[k].get("psi")) else -1.0))
    amber, red = _thr(result, "psi_amber"), _thr(result, "psi_red")
    out += chart(
        charts.bar_chart(
            [(k, feats[k].get("psi"), None) for k in order],
            title="Feature PSI (CSI)",
            xlabel="PSI, current vs reference",
            lines=[(v, c) for v, c in ((amber, charts.AMBER), (red, charts.RED)) if v is not None],
        ),
        "Population stability of each feature, largest first; dashed lines at psi_amber and psi_red.",
    )
    rows = []
    for k in order:
        f = feats[k]
        if f.get("kind") == "numeric":
            shape = (
                f"KS {num(f.get('ks'))} (p {pval(f.get('ks_p_value'))}); "
                f"W/σ {num(f.get('wasserstein_normed'))}"
            )
            centre = f"mean {num(f.get('reference_mean'))} → {num(f.get('mean'))}"
        else:
            shape = f"JS {num(f.get('js'))}; χ² p {pval(f.get('chi2_p_value'))}"
            new = f.get("new_categories") or []
            centre = f"unseen share {pct(f.get('unseen_share'))}" + (
                f"; new: {', '.join(map(str, new[:5]))}" if new else ""
            )
        rows.append(
            [
                k,
                str(f.get("kind") or DASH),
                _psi_light(result, f.get("psi")),
                shape,
                centre,
                f"{pct(f.get('reference_missing_rate'))} → {pct(f.get('missing_rate'))}",
            ]
        )
    if rows:
        out.append(
            table(
                ["Feature", "Type", "PSI", "Distribution test", "Location / categories", "Missing"],
                rows,
                title="Drift by feature",
                note=f"PSI coloured at psi_amber = {_thr_label(result, 'psi_amber')} and psi_red = "
                f"{_thr_label(result, 'psi_red')}. W/σ: Wasserstein distance over the reference "
                "standard deviation.",
                widths=["20%", "10%", "9%", "25%", "22%", "14%"],
                cls="small",
            )
        )
    conv = sec.get("conventions")
    if isinstance(conv, dict) and conv:
        out.append(
            table(
                ["Statistic", "Convention"],
                [[human(k), str(v)] for k, v in conv.items()],
                title="Conventions",
                widths=["18%", "82%"],
                cls="small",
            )
        )
    fair = sec.get("fairness")
    if isinstance(fair, dict) and any(v for v in fair.values()):
        out.append(heading("Fairness drift"))
        out += generic(fair)
    out += _rest(
        sec,
        {
            "reference",
            "current",
            "n_reference",
            "n_current",
            "conventions",
            "features",
            "score",
            "summary",
            "prediction",
            "fairness",
        },
    )
    return out


# ---------------------------------------------------------------- explanations (conceptual soundness)


def _matrix(
    rows_keys: list[str],
    cols: dict[str, dict[str, Any]],
    *,
    title: str,
    key_label: str,
    note: str = "",
    fmt: Any = num,
) -> Block:
    """A features × groups (or codes × groups) table from ``{column: {row: value}}``."""
    names = list(cols)
    width = f"{max(8, 70 // max(len(names), 1))}%"
    return table(
        [key_label] + [str(c) for c in names],
        [[r] + [fmt(cols[c].get(r)) for c in names] for r in rows_keys],
        title=title,
        note=note,
        widths=["30%"] + [width] * len(names),
        cls="small",
    )


def explanations(result: AuditResult, sec: dict[str, Any]) -> list[Block]:
    out: list[Block] = []
    out.append(
        kv(
            [
                ("Method", str(sec.get("method") or DASH)),
                ("Scale", f"{sec.get('scale', DASH)}: {sec.get('scale_note', '')}"),
                (
                    "Rows explained / population",
                    f"{count(sec.get('sample_size'))} / {count(sec.get('population_size'))}",
                ),
                ("Base value", num(sec.get("base_value"))),
            ],
            title="Method",
        )
    )
    feats = sec.get("features")
    if isinstance(feats, dict) and feats:
        order = sorted(feats, key=lambda f: (feats[f] or {}).get("rank") or 10**9)
        out.append(
            table(
                ["Rank", "Feature", "Mean |SHAP|", "95% CI", "Mean SHAP"],
                [
                    [
                        count((feats[f] or {}).get("rank")),
                        f,
                        num((feats[f] or {}).get("mean_abs_shap")),
                        ci((feats[f] or {}).get("mean_abs_shap_ci")),
                        num((feats[f] or {}).get("mean_shap")),
                    ]
                    for f in order
                ],
                title="Global importance",
                widths=["8%", "40%", "17%", "20%", "15%"],
                cls="small",
            )
        )
    mono = sec.get("monotone")
    if isinstance(mono, dict) and mono:
        rows = [
            [
                f,
                str(v.get("declared") or DASH).replace("_", " "),
                num(v.get("spearman_rho")),
                count(v.get("n")),
                light(str(v.get("status") or DASH), "red" if v.get("contradicts") else "green"),
            ]
            for f, v in mono.items()
            if isinstance(v, dict)
        ]
        out.append(
            table(
                ["Feature", "Declared", "Spearman ρ (feature, SHAP)", "n", "Result"],
                rows,
                title="Monotonicity: declared direction against the model's attributions",
                note=f"A direction is contradicted when ρ has the wrong sign and |ρ| ≥ monotone_rho_min "
                f"= {num(sec.get('monotone_rho_min'))}.",
                widths=["24%", "16%", "18%", "10%", "32%"],
            )
        )
    feature_order = (
        sorted(feats, key=lambda f: (feats[f] or {}).get("rank") or 10**9) if isinstance(feats, dict) else []
    )
    for aname, att in (sec.get("attributes") or {}).items():
        if not isinstance(att, dict):
            continue
        groups = {str(g): v for g, v in (att.get("groups") or {}).items() if isinstance(v, dict)}
        cols = {f"{g} (n {count(v.get('n'))})": (v.get("mean_shap") or {}) for g, v in groups.items()}
        rows_keys = feature_order or sorted({k for c in cols.values() for k in c})
        if cols:
            out.append(
                _matrix(
                    rows_keys,
                    cols,
                    key_label="Feature",
                    title=f"Mean SHAP by group: {aname} (reference {att.get('reference', DASH)})",
                    note="Positive values push toward the adverse decision.",
                )
            )
        diffs = [d for d in att.get("top_differences") or [] if isinstance(d, dict)]
        if diffs:
            out.append(
                table(
                    ["Group", "Feature", "Group mean", "Reference mean", "Difference"],
                    [
                        [
                            str(d.get("group")),
                            str(d.get("feature")),
                            num(d.get("group_mean")),
                            num(d.get("reference_mean")),
                            num(d.get("difference")),
                        ]
                        for d in diffs
                    ],
                    title=f"Largest attribution differences vs the reference: {aname}",
                    cls="small",
                )
            )
    out += _rest(
        sec,
        {
            "method",
            "scale",
            "scale_note",
            "sample_size",
            "population_size",
            "base_value",
            "features",
            "attributes",
            "monotone",
            "monotone_rho_min",
        },
    )
    return out


# ---------------------------------------------------------------- adverse-action reasons


def reasons(result: AuditResult, sec: dict[str, Any]) -> list[Block]:
    out: list[Block] = []
    thr = sec.get("thresholds") or {}
    src = thr.get("source", "default")
    fid, stab, base = (
        sec.get("fidelity") or {},
        sec.get("stability") or {},
        sec.get("baseline_sensitivity") or {},
    )

    def gate(value: Any, minimum: Any) -> Any:
        if not is_num(value) or not is_num(minimum):
            return num(value)
        return light(num(value), "green" if value >= minimum else "red")

    out.append(
        kv(
            [
                ("Method", str(sec.get("method") or DASH)),
                ("Grouping", str(sec.get("grouping") or DASH)),
                (
                    "Reference applicants",
                    f"{sec.get('reference', DASH)}, {count(sec.get('reference_size'))} rows: "
                    f"{sec.get('reference_description', '')}",
                ),
                (
                    "Declined / explained / without a reason",
                    f"{count(sec.get('declined'))} / {count(sec.get('explained'))} / "
                    f"{count(sec.get('no_reason_count'))}",
                ),
                (
                    "Features never given as a reason",
                    ", ".join(map(str, sec.get("blocked_features") or [])) or "none",
                ),
                (
                    "Fidelity: top reason moves toward approval",
                    gate(fid.get("top1_toward_approval_rate"), thr.get("fidelity_min")),
                ),
                (
                    "Stability: mean Jaccard of reason sets under resampling",
                    gate(stab.get("mean_jaccard"), thr.get("stability_min")),
                ),
                (
                    "Baseline sensitivity: mean Jaccard vs the other reference",
                    gate(base.get("mean_jaccard"), thr.get("baseline_jaccard_min")),
                ),
                (
                    "Thresholds",
                    ", ".join(f"{k} {num(v)}" for k, v in thr.items() if k != "source") + f" ({src})",
                ),
            ],
            title="Method and quality gates",
        )
    )
    excl = sec.get("excluded_features")
    if isinstance(excl, dict) and excl:
        out.append(
            table(
                ["Feature", "Why excluded"],
                [[k, str(v)] for k, v in excl.items()],
                title="Excluded features",
                widths=["30%", "70%"],
            )
        )
    cov = sec.get("coverage")
    share = sec.get("primary_reason_share_by_group")
    codes = list(cov) if isinstance(cov, dict) else []
    if isinstance(share, dict) and share:
        codes += [c for v in share.values() if isinstance(v, dict) for c in v if c not in codes]
        cols = {"all declined": cov if isinstance(cov, dict) else {}}
        cols.update({str(g): v for g, v in share.items() if isinstance(v, dict)})
        out.append(
            _matrix(
                codes,
                cols,
                key_label="Reason code",
                fmt=pct,
                title="Primary reason share: all declined applicants and by group",
            )
        )
    disp = sec.get("disparity")
    if isinstance(disp, dict):
        flags = [
            dict(f, attribute=a)
            for a, v in disp.items()
            if isinstance(v, dict)
            for f in v.get("flags") or []
            if isinstance(f, dict)
        ]
        if flags:
            out.append(
                table(
                    ["Attribute", "Group", "Reason code", "Share", "Reference share", "Ratio"],
                    [
                        [
                            f["attribute"],
                            str(f.get("group")),
                            str(f.get("code")),
                            pct(f.get("share")),
                            pct(f.get("reference_share")),
                            light(num(f.get("ratio"), 2), "amber"),
                        ]
                        for f in flags
                    ],
                    title="Reason-share disparities flagged",
                    note=f"A code is flagged when a group's share is at least disparity_min_share = "
                    f"{num(thr.get('disparity_min_share'))} and disparity_ratio = "
                    f"{num(thr.get('disparity_ratio'))} times the reference group's ({src}).",
                )
            )
        else:
            out.append(para("No reason code is disproportionately frequent for any protected group.", "note"))
    out += _rest(
        sec,
        {
            "method",
            "grouping",
            "reference",
            "reference_size",
            "reference_description",
            "declined",
            "explained",
            "no_reason_count",
            "blocked_features",
            "excluded_features",
            "coverage",
            "primary_reason_share_by_group",
            "disparity",
            "thresholds",
            "quality_sample",
        },
    )
    return out
