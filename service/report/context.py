"""``AuditResult`` → template context. Everything the PDF prints is decided and formatted here; the
Jinja templates only lay out strings, tables and chart images (no arithmetic in templates).

The report follows docs/REGULATORY.md §(a): cover and document control, executive summary, scope,
model description, data, conceptual soundness, outcomes, robustness, fair lending, adverse-action
reasons, monitoring plan, limitations, findings tracker and appendices. Sections land from different
audits over time, so every builder reads the section dict defensively (``.get``): a missing key
prints a dash, a missing section prints "Not run" with its reason, and a section nobody planned for
is rendered generically in an appendix.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.findings import counts_by_severity
from service.report import _regulatory as reg
from service.report import charts
from service.report._format import DASH, cell, ci, count, human, is_num, num, pct, pval
from service.result import SEVERITY_ORDER, AuditResult

Block = dict[str, Any]
MAX_ROWS = 250
MAX_COLS = 9
NOT_PART = "this capability was not part of this audit"

SEVERITY_CLASS = {"critical": "red", "high": "red", "medium": "amber", "low": "green", "info": "grey"}


@dataclass
class Chapter:
    id: str
    title: str
    intro: str = ""
    blocks: list[Block] = field(default_factory=list)
    appendix: bool = False
    number: str = ""


# ---------------------------------------------------------------- block helpers


def para(text: str, cls: str = "") -> Block:
    return {"kind": "p", "text": text, "cls": cls}


def heading(text: str) -> Block:
    return {"kind": "h3", "text": text}


def table(columns: list[str], rows: list[list[Any]], *, title: str = "", note: str = "",
          widths: list[str] | None = None, cls: str = "") -> Block:
    """A table block; a cell is a string or ``{"t": text, "c": css class}``."""
    more = len(rows) - MAX_ROWS
    if more > 0:
        rows = rows[:MAX_ROWS]
        note = (note + " " if note else "") + f"{more} further rows are in audit.json."
    return {"kind": "table", "title": title, "columns": columns,
            "rows": [[c if isinstance(c, dict) else {"t": str(c), "c": ""} for c in r] for r in rows],
            "note": note, "widths": widths or [], "cls": cls}


def kv(pairs: list[tuple[str, Any]], *, title: str = "") -> Block:
    return table(["Item", "Value"], [[k, v] for k, v in pairs], title=title, widths=["35%", "65%"], cls="kv")


def chart(uri: str | None, caption: str) -> list[Block]:
    return [{"kind": "chart", "uri": uri, "caption": caption}] if uri else []


def not_run(result: AuditResult, section: str, label: str) -> Block:
    reason = result.not_run.get(section)
    text = f"Not run: {reason}" if reason else f"Not run: {NOT_PART}."
    return {"kind": "notrun", "section": section, "label": label, "text": text}


def light(text: str, colour: str) -> dict[str, str]:
    return {"t": text, "c": f"tl tl-{colour}"}


# ---------------------------------------------------------------- generic rendering


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool) or (
        isinstance(v, list | tuple) and all(not isinstance(x, dict | list) for x in v))


def _dict_table(obj: dict[str, Any], key_label: str, title: str) -> tuple[Block | None, list[tuple[str, Any]]]:
    """Rows = keys of ``obj`` (each a dict); columns = their scalar fields. Returns the nested leftovers."""
    cols: list[str] = []
    nested: list[tuple[str, Any]] = []
    for k, v in obj.items():
        for ck, cv in v.items():
            if _scalar(cv):
                if ck not in cols:
                    cols.append(ck)
            else:
                nested.append((f"{k} › {human(ck)}", cv))
    if not cols:
        return None, nested
    shown = cols[:MAX_COLS]
    note = "" if len(cols) <= MAX_COLS else f"Columns not shown (in audit.json): {', '.join(cols[MAX_COLS:])}."
    rows = [[str(k)] + [cell(v.get(c), c) for c in shown] for k, v in obj.items()]
    return table([key_label] + [human(c) for c in shown], rows, title=title, note=note), nested


def generic(obj: Any, title: str = "", depth: int = 0) -> list[Block]:
    """Render an arbitrary JSON section: scalars as an item/value table, dicts of dicts and lists of
    dicts as tables, deeper structure recursively with sub-titles (bounded depth)."""
    out: list[Block] = []
    if depth > 3:
        return [para(f"{title}: nested detail is in audit.json.", "muted")]
    if isinstance(obj, list):
        if obj and all(isinstance(x, dict) for x in obj):
            blk, nested = _dict_table({str(i + 1): x for i, x in enumerate(obj)}, "#", title)
            if blk:
                out.append(blk)
            for t, v in nested[:20]:
                out += generic(v, f"{title} › {t}" if title else t, depth + 1)
        elif obj:
            out.append(kv([(title or "values", cell(obj))]))
        return out
    if not isinstance(obj, dict):
        return [kv([(title or "value", cell(obj, title))])]
    scal = [(k, v) for k, v in obj.items() if _scalar(v)]
    if scal:
        out.append(kv([(human(k), cell(v, k)) for k, v in scal], title=title))
    for k, v in obj.items():
        if _scalar(v):
            continue
        sub = f"{title} › {human(k)}" if title else human(k)
        if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
            blk, nested = _dict_table(v, "Key", sub)
            if blk:
                out.append(blk)
            for t, vv in nested[:20]:
                out += generic(vv, f"{sub} › {t}", depth + 1)
        else:
            out += generic(v, sub, depth + 1)
    return out


# ---------------------------------------------------------------- helpers on the result


def _thresholds(result: AuditResult) -> dict[str, tuple[Any, str]]:
    return {k: (v.get("value"), v.get("source", "default")) for k, v in result.meta.thresholds.items()}


def _thr(result: AuditResult, name: str) -> float | None:
    v = result.meta.thresholds.get(name, {}).get("value")
    return float(v) if is_num(v) else None


def _thr_label(result: AuditResult, name: str) -> str:
    t = result.meta.thresholds.get(name)
    if not t:
        return DASH
    return f"{num(t.get('value'))} ({t.get('source', 'default')})"


def _spec(result: AuditResult) -> dict[str, Any]:
    return result.meta.spec or {}


def _owner(result: AuditResult) -> dict[str, Any]:
    return _spec(result).get("owner") or {}


def _sec(result: AuditResult, name: str) -> dict[str, Any] | None:
    s = result.sections.get(name)
    return s if isinstance(s, dict) else None


def _human_input(v: Any) -> str:
    return str(v) if v not in (None, "") else "[to be completed]"


# ---------------------------------------------------------------- chapters


def _cover(result: AuditResult, json_sha: str) -> dict[str, Any]:
    m = result.meta
    o = _owner(result)
    inputs = [[name, info.path, info.sha256] for name, info in m.inputs.items()]
    roles = [
        ["Model owner", _human_input(o.get("model_owner"))],
        ["Developer", _human_input(o.get("developer"))],
        ["Validator", _human_input(o.get("validator"))],
        ["Approver", _human_input(o.get("approver"))],
    ]
    return {
        "model_name": m.model_name,
        "run_id": m.run_id,
        "date": m.created_at[:10],
        "control": [
            ("Model identifier", m.model_name),
            ("Model version", _human_input(o.get("model_version"))),
            ("Model type", m.model_kind or DASH),
            ("Validation type", o.get("validation_type") or "initial"),
            ("Review period", _human_input(o.get("review_period"))),
            ("Risk tier / materiality", _human_input(o.get("risk_tier"))),
            ("Report generated", f"{m.created_at} (run {m.run_id})"),
            ("Generated by", f"Assay {m.assay_version}, Python {m.python_version}"),
            ("Evidence (audit.json) sha256", json_sha),
        ],
        "inputs": table(["Input", "File", "sha256"], inputs, widths=["16%", "24%", "60%"], cls="hashes"),
        "roles": roles,
    }


def _overall(result: AuditResult) -> tuple[str, str]:
    worst = max((SEVERITY_ORDER[f.severity] for f in result.findings), default=-1)
    if worst >= SEVERITY_ORDER["critical"]:
        return "Not approved (draft)", "red"
    if worst >= SEVERITY_ORDER["high"]:
        return "Approved with conditions at most (draft)", "red"
    if worst >= SEVERITY_ORDER["medium"]:
        return "Approved with conditions (draft)", "amber"
    return "Approved (draft)", "green"


def _headline_metrics(result: AuditResult) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    perf = _sec(result, "performance") or {}
    for name, sp in (perf.get("splits") or {}).items():
        if isinstance(sp, dict):
            out.append((f"AUC ({name})", f"{num(sp.get('auc'))} {ci(sp.get('auc_ci'))}"))
            out.append((f"KS ({name})", f"{num(sp.get('ks'))} {ci(sp.get('ks_ci'))}"))
    fair = _sec(result, "fairness") or {}
    lows = []
    for aname, att in (fair.get("attributes") or {}).items():
        groups = (att or {}).get("groups") or {}
        vals = [(g, v.get("air")) for g, v in groups.items() if isinstance(v, dict) and is_num(v.get("air"))]
        if vals:
            g, a = min(vals, key=lambda t: t[1])
            lows.append(f"{aname}: {num(a)} ({g})")
    if lows:
        out.append(("Lowest AIR per attribute", "; ".join(lows)))
    data = _sec(result, "data") or {}
    if data:
        out.append(("Development sample", f"{count(data.get('rows'))} rows, event rate {pct(data.get('event_rate'))}"))
    return out


def _limitations(result: AuditResult) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for f in result.findings:
        if SEVERITY_ORDER[f.severity] >= SEVERITY_ORDER["medium"]:
            rows.append([f"{f.id}: {f.title}", f.detail, "[compensating control: owner to specify]",
                         _human_input(None)])
    for name, why in result.not_run.items():
        rows.append([f"{human(name)} not assessed", why, "[human review or a follow-up audit]", _human_input(None)])
    perf = _sec(result, "performance") or {}
    if perf and "oot" not in (perf.get("splits") or {}):
        rows.append(["No out-of-time sample", "Stability over time is not evidenced by back-testing",
                     "Tighter early monitoring (chapter 10); back-test once outcomes mature", _human_input(None)])
    rows.append(["Metrics are estimates on a finite sample", "Point values carry sampling error",
                 "95% bootstrap confidence intervals are shown; decisions should use the ranges", "Validator"])
    return rows


def _exec_summary(result: AuditResult, limitations: list[list[Any]]) -> Chapter:
    o = _owner(result)
    rating, colour = _overall(result)
    counts = counts_by_severity(result.findings)
    ch = Chapter("executive-summary", "Executive summary")
    ch.blocks.append(para("Purpose. " + (o.get("intended_use") or "The intended use was not stated in the spec "
                                         "(owner.intended_use) and must be supplied by the model owner.")))
    ch.blocks.append({"kind": "rating", "text": rating, "c": f"tl tl-{colour}",
                      "note": "Drafted from the findings below: the overall rating and any conditions of use "
                              "are the validator's decision and must be confirmed in the sign-off block."})
    n_sections = len(result.sections)
    synopsis = (f"The audit ran {n_sections} section{'s' if n_sections != 1 else ''} "
                f"({', '.join(human(s) for s in result.sections) or 'none'})")
    if result.not_run:
        synopsis += f"; {len(result.not_run)} did not run ({', '.join(human(s) for s in result.not_run)})"
    total = len(result.findings)
    synopsis += f". It raised {total} finding{'s' if total != 1 else ''}."
    ch.blocks.append(para(synopsis))
    ch.blocks.append(table(["Severity", "Findings"],
                           [[light(s, SEVERITY_CLASS[s]), str(counts[s])] for s in reversed(list(SEVERITY_ORDER))],
                           title="Findings by severity", widths=["40%", "60%"]))
    top = [f for f in result.findings if SEVERITY_ORDER[f.severity] >= SEVERITY_ORDER["medium"]][:8]
    if top:
        ch.blocks.append(table(["ID", "Severity", "Finding"],
                               [[f.id, light(f.severity, SEVERITY_CLASS[f.severity]), f.title] for f in top],
                               title="Principal findings", widths=["10%", "14%", "76%"]))
    metrics = _headline_metrics(result)
    if metrics:
        ch.blocks.append(kv(metrics, title="Key results (95% confidence intervals in brackets)"))
    ch.blocks.append(table(["Key limitation", "Why it matters"], [r[:2] for r in limitations[:6]],
                           title="Key limitations and assumptions", widths=["40%", "60%"]))
    return ch


def _scope(result: AuditResult) -> Chapter:
    o = _owner(result)
    ch = Chapter("scope", "Scope and risk tier")
    ch.blocks.append(kv([
        ("Validation type", o.get("validation_type") or "initial"),
        ("Review period", _human_input(o.get("review_period"))),
        ("Risk tier / materiality (exposure × purpose)", _human_input(o.get("risk_tier"))),
        ("Business use", _human_input(o.get("business_use"))),
        ("Sections in scope of this run", ", ".join(human(s) for s in result.sections) or "none"),
        ("Sections not run", ", ".join(f"{human(k)} ({v})" for k, v in result.not_run.items()) or "none"),
        ("US model-risk guidance", "SR 26-2 / OCC Bulletin 2026-13 / FDIC FIL-15-2026 (17 Apr 2026; replaced "
                                   "SR 11-7, cited here only as the legacy cross-reference)"),
        ("EU AI Act classification", "Creditworthiness scoring of natural persons is high-risk under Annex III "
                                     "5(b) (applies from 2 Dec 2027); confirm whether the model is in scope"),
    ]))
    return ch


def _model(result: AuditResult) -> Chapter:
    spec = _spec(result)
    o = _owner(result)
    score = spec.get("score") or {}
    data = _sec(result, "data") or {}
    feats = data.get("features") or spec.get("features") or []
    ch = Chapter("model", "Model description and intended use")
    ch.blocks.append(kv([
        ("Model name", result.meta.model_name),
        ("Model artefact", f"{(spec.get('model') or 'score column ' + str(score.get('column')))} "
                           f"({result.meta.model_kind or DASH})"),
        ("Intended use", _human_input(o.get("intended_use"))),
        ("Outcome (adverse event)", f"{spec.get('target', DASH)} = {spec.get('event_value', DASH)}"),
        ("Score direction", str(score.get("direction", DASH)).replace("_", " ")),
        ("Decision rule", f"adverse (decline/flag) at score threshold {num(score.get('threshold'))}"),
        ("Number of model features", str(len(feats)) if feats else DASH),
        ("Protected attributes tested", ", ".join(p.get("name", "?") for p in spec.get("protected") or [])
         or "none"),
        ("Restrictions on use", "[to be completed by the model owner]"),
    ]))
    if feats:
        ch.blocks.append(para("Model features: " + ", ".join(str(f) for f in feats) + ".", "features"))
    return ch


def _data_blocks(result: AuditResult, sec: dict[str, Any]) -> list[Block]:
    out: list[Block] = []
    out.append(kv([
        ("Rows / columns", f"{count(sec.get('rows'))} / {count(sec.get('columns'))}"),
        ("Out-of-time rows", count(sec.get("oot_rows"))),
        ("Target", str(sec.get("target", DASH))),
        ("Events / event rate", f"{count(sec.get('events'))} / {pct(sec.get('event_rate'))}"),
        ("Column types", ", ".join(f"{k}: {v}" for k, v in (sec.get("types") or {}).items()) or DASH),
        ("Duplicate rows / duplicate feature rows",
         f"{count((sec.get('duplicates') or {}).get('rows'))} / "
         f"{count((sec.get('duplicates') or {}).get('feature_rows'))}"),
        ("Constant columns", ", ".join(sec.get("constant_columns") or []) or "none"),
    ], title="Sample"))
    miss_max = _thr(result, "missing_max")
    prof = [p for p in sec.get("column_profiles") or [] if isinstance(p, dict)]
    rows = []
    for p in prof:
        mr = p.get("missing_rate")
        colour = "red" if miss_max is not None and is_num(mr) and mr > miss_max else "green"
        rows.append([p.get("name", DASH), p.get("kind", DASH), "yes" if p.get("is_feature") else "no",
                     light(pct(mr), colour), count(p.get("n_unique")), num(p.get("min")), num(p.get("max")),
                     num(p.get("mean"))])
    if rows:
        out.append(table(["Column", "Type", "Feature", "Missing", "Distinct", "Min", "Max", "Mean"], rows,
                         title="Data-quality profile",
                         note=f"Missing share flagged red above missing_max = {_thr_label(result, 'missing_max')}.",
                         widths=["26%", "11%", "9%", "10%", "9%", "11%", "12%", "12%"]))
    leak_thr = _thr(result, "leakage_auc")
    leak = [r for r in sec.get("leakage") or [] if isinstance(r, dict)]
    if leak:
        out.append(table(["Feature", "Single-feature AUC", "Flag"],
                         [[r.get("feature", DASH), num(r.get("auc")),
                           light("possible leakage", "red") if r.get("flagged") else light("ok", "green")]
                          for r in leak],
                         title="Leakage screen",
                         note=f"{sec.get('leakage_method', '')}. Flag at leakage_auc = "
                              f"{_thr_label(result, 'leakage_auc')}." if leak_thr is not None else
                         str(sec.get("leakage_method", "")),
                         widths=["50%", "25%", "25%"]))
    return out


def _data(result: AuditResult) -> Chapter:
    ch = Chapter("data", "Data and data governance",
                 "Representation of the development sample by protected group, proxy screen, class imbalance and "
                 "data quality (SR 26-2 §IV; EU AI Act Art 10(2)–(4)). Lineage, provenance and the legal basis for "
                 "any special-category data are to be described by the model owner.")
    for name, label, builder in (
        ("data", "Data quality", _data_blocks),
        ("representation", "Representation", None),
        ("proxies", "Proxy screen", None),
        ("imbalance", "Class imbalance", None),
    ):
        ch.blocks.append(heading(label))
        sec = _sec(result, name)
        if sec is None:
            ch.blocks.append(not_run(result, name, label))
        elif builder is not None:
            ch.blocks += builder(result, sec)
        else:
            ch.blocks += generic(sec)
    return ch


def _importance_items(sec: dict[str, Any]) -> list[tuple[str, float, tuple[float, float] | None]]:
    """Find global mean |SHAP| per feature in whichever shape the explanations section uses."""
    cands: list[Any] = [sec.get(k) for k in ("global", "importance", "global_importance", "mean_abs_shap",
                                             "features")]
    for c in cands:
        items: list[tuple[str, float, tuple[float, float] | None]] = []
        if isinstance(c, dict):
            for f, v in c.items():
                if is_num(v):
                    items.append((str(f), float(v), None))
                elif isinstance(v, dict):
                    val = next((v[k] for k in ("mean_abs_shap", "mean_abs", "importance", "value") if is_num(v.get(k))),
                               None)
                    cc = next((v[k] for k in ("mean_abs_shap_ci", "ci", "importance_ci") if isinstance(v.get(k), list)),
                              None)
                    if val is not None:
                        items.append((str(f), float(val), tuple(cc) if cc and len(cc) == 2 else None))
        elif isinstance(c, list):
            for v in c:
                if isinstance(v, dict) and "feature" in v:
                    val = next((v[k] for k in ("mean_abs_shap", "mean_abs", "importance", "value") if is_num(v.get(k))),
                               None)
                    cc = next((v[k] for k in ("mean_abs_shap_ci", "ci", "importance_ci") if isinstance(v.get(k), list)),
                              None)
                    if val is not None:
                        items.append((str(v["feature"]), float(val), tuple(cc) if cc and len(cc) == 2 else None))
        if items:
            return sorted(items, key=lambda t: -t[1])
    return []


def _conceptual(result: AuditResult) -> Chapter:
    ch = Chapter("conceptual-soundness", "Conceptual soundness",
                 "Explanations of the model's behaviour and checks of declared monotone directions against the "
                 "business expectation (SR 26-2 §V: interpretability and benchmarking). The theory, alternatives "
                 "considered and expert judgement are to be documented by the developer.")
    sec = _sec(result, "explanations")
    mono = (_spec(result).get("monotone") or {})
    if mono:
        ch.blocks.append(table(["Feature", "Declared direction"],
                               [[k, str(v).replace("_", " ")] for k, v in mono.items()],
                               title="Declared monotone directions (spec)", widths=["50%", "50%"]))
    if sec is None:
        ch.blocks.append(not_run(result, "explanations", "Explanations"))
        return ch
    items = _importance_items(sec)
    ch.blocks += chart(charts.bar_chart(items, title="Global importance: mean |SHAP| (log-odds)",
                                        xlabel="mean |SHAP| with 95% CI"),
                       "Global feature importance (top 25), from the explanations section.")
    ch.blocks += generic(sec)
    return ch


def _outcomes(result: AuditResult) -> Chapter:
    ch = Chapter("outcomes", "Outcomes analysis",
                 "Discrimination, calibration and out-of-time back-testing against the thresholds in Appendix A "
                 "(SR 26-2 §V outcomes analysis).")
    sec = _sec(result, "performance")
    if sec is None:
        ch.blocks.append(not_run(result, "performance", "Performance"))
        return ch
    auc_min = _thr(result, "auc_min")
    splits = {k: v for k, v in (sec.get("splits") or {}).items() if isinstance(v, dict)}
    rows = []
    for name, sp in splits.items():
        auc = sp.get("auc")
        colour = "red" if auc_min is not None and is_num(auc) and auc < auc_min else "green"
        rows.append([name, count(sp.get("n")), pct(sp.get("event_rate")), pct(sp.get("adverse_rate")),
                     light(f"{num(auc)} {ci(sp.get('auc_ci'))}", colour),
                     f"{num(sp.get('gini'))} {ci(sp.get('gini_ci'))}", f"{num(sp.get('ks'))} {ci(sp.get('ks_ci'))}",
                     f"{num(sp.get('pr_auc'))} {ci(sp.get('pr_auc_ci'))}", f"{num(sp.get('brier'))} {ci(sp.get('brier_ci'))}",
                     f"{num(sp.get('log_loss'))} {ci(sp.get('log_loss_ci'))}"])
    ch.blocks.append(table(["Split", "n", "Event rate", "Adverse rate", "AUC", "Gini", "KS", "PR-AUC", "Brier",
                            "Log loss"], rows, title="Discrimination and accuracy (95% CI)",
                           note=f"{sec.get('ci_method', '')}; {count(sec.get('n_bootstrap'))} resamples. AUC red below "
                                f"auc_min = {_thr_label(result, 'auc_min')}. Score kind: {sec.get('score_kind', DASH)}, "
                                f"threshold {num(sec.get('threshold'))}.",
                           widths=["7%", "7%", "8%", "8%", "13%", "12%", "12%", "11%", "11%", "11%"], cls="small"))
    if sec.get("auc_drop_oot") is not None:
        ch.blocks.append(para(f"AUC drop from development to out-of-time: {num(sec.get('auc_drop_oot'))} "
                              f"(auc_drop_max = {_thr_label(result, 'auc_drop_max')})."))
    elif "oot" not in splits:
        ch.blocks.append(para("No out-of-time sample was supplied: back-testing on a later window is not evidenced.",
                              "muted"))
    deciles = {n: ((sp.get("calibration") or {}).get("deciles") or []) for n, sp in splits.items()}
    ch.blocks += chart(charts.gains_chart(deciles), "ROC and KS curves at decile resolution, read from the "
                       "calibration table (AUC and KS above are computed on the full score table).")
    ch.blocks += chart(charts.calibration_chart(deciles), "Calibration: observed event rate vs mean predicted "
                       "probability per score decile.")
    cal_max = _thr(result, "calibration_ratio_max")
    for name, sp in splits.items():
        cal = sp.get("calibration") or {}
        if not cal:
            continue
        ratio = cal.get("calibration_ratio")
        colour = "green"
        if cal_max is not None and is_num(ratio) and abs(ratio - 1) > cal_max:
            colour = "red"
        hl_p = cal.get("hosmer_lemeshow_p")
        hl_colour = "green" if not is_num(hl_p) or hl_p >= 0.05 else ("amber" if hl_p >= 0.01 else "red")
        ch.blocks.append(kv([
            ("Observed event rate / mean predicted", f"{pct(cal.get('observed_rate'), 2)} / "
                                                     f"{pct(cal.get('mean_predicted'), 2)}"),
            ("Calibration-in-the-large (observed / predicted)", light(num(ratio), colour)),
            ("Hosmer-Lemeshow statistic (df)", f"{num(cal.get('hosmer_lemeshow'))} ({count(cal.get('hosmer_lemeshow_df'))})"),
            ("Hosmer-Lemeshow p-value", light(pval(hl_p), hl_colour)),
            ("Jeffreys test p-value (portfolio)", pval(cal.get("jeffreys_p"))),
        ], title=f"Calibration summary: {name}"))
        dec = [d for d in cal.get("deciles") or [] if isinstance(d, dict)]
        if dec:
            ch.blocks.append(table(["Decile", "n", "Events", "Mean predicted", "Observed rate"],
                                   [[str(d.get("bin", DASH)), count(d.get("n")), count(d.get("events")),
                                     num(d.get("mean_predicted")), num(d.get("observed_rate"))] for d in dec],
                                   title=f"Rank-ordering and calibration by decile: {name}"))
    return ch


def _robustness(result: AuditResult) -> Chapter:
    ch = Chapter("robustness", "Robustness, regimes and stress",
                 "Stability by period and economic regime, and named stress scenarios rescored through the model "
                 "(SR 26-2 §V; EU AI Act Art 15).")
    sec = _sec(result, "temporal")
    if sec is None:
        ch.blocks.append(not_run(result, "temporal", "Temporal, regime and stress validation"))
        return ch
    periods = sec.get("periods")
    if isinstance(periods, dict):
        plist = [dict(v, period=k) for k, v in periods.items() if isinstance(v, dict)]
    elif isinstance(periods, list):
        plist = [p for p in periods if isinstance(p, dict)]
    else:
        plist = []
    if plist:
        labels = [str(p.get("period", p.get("label", i))) for i, p in enumerate(plist)]
        amber, red = _thr(result, "psi_amber"), _thr(result, "psi_red")
        bands = []
        if amber is not None:
            bands.append((amber, f"psi_amber {amber:g}", charts.AMBER))
        if red is not None:
            bands.append((red, f"psi_red {red:g}", charts.RED))
        ch.blocks += chart(charts.line_chart(labels, {"score PSI vs development": [p.get("psi_vs_dev") for p in plist]},
                                             title="PSI by period", ylabel="PSI", bands=bands),
                           "Score PSI of each period against the development sample.")
        ch.blocks += chart(charts.line_chart(labels, {"AUC": [p.get("auc") for p in plist],
                                                      "event rate": [p.get("event_rate") for p in plist]},
                                             title="AUC and event rate by period", ylabel="value"),
                           "Discrimination and event rate by period.")
    ch.blocks += generic(sec)
    return ch


def _group_rows(groups: dict[str, Any], *, reference: str | None, air_min: float | None, sig: float | None,
                min_n: float | None) -> tuple[list[list[Any]], list[list[Any]], list[dict[str, Any]]]:
    air_rows, err_rows, pts = [], [], []
    for g, v in groups.items():
        if not isinstance(v, dict):
            continue
        air = v.get("air")
        p = v.get("air_p_value")
        q = next((v[k] for k in ("air_q_value", "q_value", "air_q") if k in v), None)
        test_p = q if is_num(q) else p
        is_ref = reference is not None and str(g) == str(reference)
        if is_ref or not is_num(air):
            colour = "grey"
        elif air_min is not None and air < air_min:
            colour = "red" if sig is None or (is_num(test_p) and test_p < sig) else "amber"
        elif air < 0.9:
            colour = "amber"
        else:
            colour = "green"
        small = is_num(v.get("n")) and min_n is not None and v["n"] < min_n
        label = f"{g} (reference)" if is_ref else str(g)
        air_rows.append([label + (" *" if small else ""), count(v.get("n")), num(v.get("favorable_rate")),
                         light(num(air), colour), ci(v.get("air_ci")), pval(p), pval(q),
                         count(v.get("shortfall")), num(v.get("smd"))])
        err_rows.append([label, num(v.get("true_positive_rate")), num(v.get("false_positive_rate")),
                         num(v.get("false_negative_rate")), num(v.get("precision")), num(v.get("auc"))])
        if not is_ref:
            pts.append({"label": label, "air": air, "ci": v.get("air_ci")})
    return air_rows, err_rows, pts


AIR_COLS = ["Group", "n", "Favourable rate", "AIR", "AIR 95% CI", "p-value", "q-value", "Shortfall", "SMD"]
AIR_WIDTHS = ["24%", "8%", "10%", "9%", "15%", "9%", "9%", "8%", "8%"]
ERR_COLS = ["Group", "TPR", "FPR", "FNR", "Precision", "AUC"]


def _fairness(result: AuditResult) -> Chapter:
    ch = Chapter("fair-lending", "Fair-lending assessment")
    ch.blocks.append(para(reg.LEGAL_FRAMING, "callout"))
    sec = _sec(result, "fairness")
    if sec is None:
        ch.blocks.append(not_run(result, "fairness", "Fairness"))
    else:
        air_min, sig, min_n = _thr(result, "air_min"), _thr(result, "significance"), _thr(result, "min_group_size")
        legend = (f"AIR red when below air_min = {_thr_label(result, 'air_min')} and significant at "
                  f"{_thr_label(result, 'significance')} (q-value where given, else p-value); amber when below "
                  f"air_min but not significant, or below 0.90; * marks groups smaller than min_group_size = "
                  f"{_thr_label(result, 'min_group_size')}. SMD of the risk score, group minus reference "
                  f"(smd_max = {_thr_label(result, 'smd_max')}).")
        pts_all: list[dict[str, Any]] = []
        for aname, att in (sec.get("attributes") or {}).items():
            if not isinstance(att, dict):
                continue
            ref = att.get("reference")
            ch.blocks.append(heading(f"Attribute: {aname}"))
            extra = [(human(k), cell(v, k)) for k, v in att.items() if k not in ("groups", "reference") and _scalar(v)]
            if extra:
                ch.blocks.append(kv([("Reference group", str(ref))] + extra))
            air_rows, err_rows, pts = _group_rows(att.get("groups") or {}, reference=ref, air_min=air_min,
                                                  sig=sig, min_n=min_n)
            ch.blocks.append(table(AIR_COLS, air_rows, title=f"Adverse impact ratio: {aname}", note=legend,
                                   widths=AIR_WIDTHS, cls="small"))
            ch.blocks.append(table(ERR_COLS, err_rows, title=f"Error-rate parity and accuracy by group: {aname}",
                                   note="Rates among observed outcomes; adverse event = positive class.",
                                   cls="small"))
            pts_all += [dict(p, label=f"{aname}: {p['label']}") for p in pts]
        inter = sec.get("intersections")
        if isinstance(inter, dict) and inter:
            ch.blocks.append(heading("Intersections"))
            groups = inter.get("groups") if isinstance(inter.get("groups"), dict) else inter
            air_rows, err_rows, pts = _group_rows(groups, reference=inter.get("reference"), air_min=air_min,
                                                  sig=sig, min_n=min_n)
            ch.blocks.append(table(AIR_COLS, air_rows, title="Adverse impact ratio: intersectional groups",
                                   note=legend, widths=AIR_WIDTHS, cls="small"))
            ch.blocks.append(table(ERR_COLS, err_rows, title="Error rates: intersectional groups", cls="small"))
            pts_all += pts
        ch.blocks[1:1] = chart(charts.air_chart(pts_all, air_min=air_min),
                               "AIR by group with 95% confidence intervals; dashed line at air_min.")
        rest = {k: v for k, v in sec.items() if k not in ("attributes", "intersections")}
        if rest:
            ch.blocks.append(heading("Method and further results"))
            ch.blocks += generic(rest)
    prox = _sec(result, "proxies")
    ch.blocks.append(heading("Proxy screen"))
    ch.blocks.append(para("Per-feature associations with each protected attribute are tabulated in chapter 4 "
                          "(Data and data governance, Proxy screen)." if prox is not None else
                          not_run(result, "proxies", "Proxy screen")["text"]))
    return ch


def _reasons(result: AuditResult) -> Chapter:
    ch = Chapter("reasons", "Adverse-action reason quality",
                 "Principal reasons for adverse action (ECOA / Regulation B 12 CFR 1002.9(b)(2) and comments "
                 "9(b)(2)-1 to -9): method, coverage, stability and the protected-proxy screen. CFPB Circular "
                 "2022-03 was withdrawn on 12 May 2025; the regulation and its commentary remain in force.")
    spec = _spec(result)
    rs = spec.get("reasons") or {}
    ch.blocks.append(kv([("Reason catalogue", str(spec.get("reason_codes") or "none configured")),
                         ("Reference applicants", str(rs.get("reference", DASH))),
                         ("Maximum reasons", str(rs.get("max_reasons", DASH))),
                         ("Grouping", str(rs.get("grouping", DASH)))], title="Configuration (spec)"))
    name = next((n for n in ("reasons", "reason_quality", "adverse_action") if n in result.sections), None)
    if name is None:
        ch.blocks.append(not_run(result, "reasons", "Reason quality"))
        return ch
    sec = result.sections[name]
    share = sec.get("primary_reason_share_by_group") or sec.get("reason_share_by_group")
    if isinstance(share, dict) and share:
        groups = {str(g): v for g, v in share.items() if isinstance(v, dict)}
        cats = sorted({c for v in groups.values() for c in v})
        ch.blocks += chart(charts.grouped_bars(cats, {g: [v.get(c) for c in cats] for g, v in groups.items()},
                                               title="Primary reason share by group", ylabel="share"),
                           "Share of adverse decisions whose first reason is each code, by group.")
    ch.blocks += generic(sec)
    return ch


MONITORING_PLAN = [
    ("Score PSI vs development", "psi_amber", "psi_red", "monthly"),
    ("Feature PSI (each model input)", "psi_amber", "psi_red", "monthly"),
    ("AUC drop vs development", None, "auc_drop_max", "quarterly, once outcomes mature"),
    ("AUC level", None, "auc_min", "quarterly"),
    ("Calibration (observed / predicted − 1)", None, "calibration_ratio_max", "quarterly"),
    ("AIR per protected group", None, "air_min", "monthly"),
    ("SMD of the score per group", None, "smd_max", "monthly"),
    ("Missing-rate change per feature", None, "missing_max", "monthly"),
]


def _monitoring(result: AuditResult) -> Chapter:
    ch = Chapter("monitoring", "Ongoing monitoring plan",
                 "Proposed metrics, thresholds and cadence (SR 26-2 §V ongoing monitoring; EU AI Act Art 72 and "
                 "Annex IV 9). Thresholds are the institution's to set; each is labelled default or policy. The "
                 "owner, escalation route and revalidation triggers require approval.")
    rows = []
    for metric, amber, red, freq in MONITORING_PLAN:
        rows.append([metric, light(_thr_label(result, amber), "amber") if amber else DASH,
                     light(_thr_label(result, red), "red") if red else DASH, freq, "[owner]"])
    ch.blocks.append(table(["Metric", "Amber at", "Red at", "Frequency", "Owner"], rows,
                           title="Monitoring metrics and thresholds",
                           note="Red breach: escalate to the model owner and validator within 5 business days and "
                                "consider revalidation; amber: investigate at the next review. A full review at "
                                "least annually.",
                           widths=["34%", "17%", "17%", "20%", "12%"]))
    sec = _sec(result, "drift")
    ch.blocks.append(heading("Drift measured in this run"))
    if sec is None:
        ch.blocks.append(not_run(result, "drift", "Drift"))
    else:
        ch.blocks += generic(sec)
    return ch


def _limitations_chapter(rows: list[list[Any]]) -> Chapter:
    ch = Chapter("limitations", "Limitations and compensating controls",
                 "Candidate limitations drafted from findings and from checks that did not run. Compensating "
                 "controls (overlays, usage restrictions, manual-review bands, tighter monitoring) and owners are "
                 "to be agreed by the model owner and validator.")
    ch.blocks.append(table(["Limitation", "Impact / evidence", "Compensating control", "Owner"], rows,
                           widths=["26%", "36%", "26%", "12%"]))
    return ch


def _tracker(result: AuditResult) -> Chapter:
    ch = Chapter("findings", "Findings tracker",
                 "Every finding with its evidence, threshold and threshold source. Owner, due date and status are "
                 "completed during remediation.")
    rows = []
    for f in result.findings:
        thr = DASH if f.threshold is None else f"{num(f.threshold)} ({f.threshold_source or 'default'})"
        rows.append([f.id, light(f.severity, SEVERITY_CLASS[f.severity]), human(f.section),
                     {"t": f.title, "c": "strong"}, f.detail,
                     f"{f.metric or DASH} = {num(f.value)}" if f.metric else DASH, thr, "", "", "open"])
    if rows:
        ch.blocks.append(table(["ID", "Severity", "Section", "Title", "Detail", "Metric", "Threshold", "Owner",
                                "Due", "Status"], rows,
                               widths=["5%", "8%", "9%", "14%", "25%", "12%", "9%", "7%", "5%", "6%"], cls="small"))
    else:
        ch.blocks.append(para("No findings were raised by the sections that ran."))
    return ch


def _appendices(result: AuditResult, json_sha: str, extra: list[str]) -> list[Chapter]:
    a = Chapter("thresholds", "Appendix A. Thresholds", "Every threshold used, labelled default (tool default, "
                "docs/REGULATORY.md §(d)) or policy (set in the audit spec).", appendix=True)
    a.blocks.append(table(["Threshold", "Value", "Source", "Meaning"],
                          [[k, num(v), light(s, "policy" if s == "policy" else "grey"), reg.THRESHOLD_MEANING.get(k, "")]
                           for k, (v, s) in _thresholds(result).items()],
                          widths=["22%", "10%", "10%", "58%"]))
    b = Chapter("cross-reference", "Appendix B. Regulatory cross-reference", "Report chapter against current US "
                "guidance (SR 26-2, 17 Apr 2026), the legacy SR 11-7 equivalent (rescinded; bank policies still cite "
                "it), the EU AI Act and ECOA / Regulation B or other texts.", appendix=True)
    b.blocks.append(table(["Chapter", "SR 26-2 (current)", "SR 11-7 (legacy)", "EU AI Act", "Reg B / other"],
                          [list(r) for r in reg.CROSS_REFERENCE], widths=["18%", "24%", "18%", "18%", "22%"],
                          cls="small"))
    b.blocks.append(table(["Annex IV item", "Content", "Auto / human", "Where"], [list(r) for r in reg.ANNEX_IV],
                          title="EU AI Act Annex IV technical documentation: A = auto, P = partial (tool drafts, "
                                "person completes), H = human",
                          widths=["10%", "38%", "14%", "38%"], cls="small"))
    m = result.meta
    d = Chapter("reproducibility", "Appendix C. Inputs, hashes and library versions", appendix=True)
    d.blocks.append(table(["Input", "Path", "sha256", "Rows", "Columns"],
                          [[k, i.path, i.sha256, count(i.rows), count(i.columns)] for k, i in m.inputs.items()],
                          widths=["12%", "20%", "50%", "9%", "9%"], cls="hashes"))
    d.blocks.append(kv([("audit.json sha256 (embedded in this PDF as an attachment)", json_sha),
                        ("Run id", m.run_id), ("Started / finished", f"{m.created_at} / {m.finished_at or DASH}"),
                        ("Seed", str(m.seed)), ("Assay version", m.assay_version), ("Python", m.python_version),
                        ("Schema version", result.schema_version)], title="Run"))
    d.blocks.append(table(["Library", "Version"], [[k, v] for k, v in m.libraries.items()], title="Libraries",
                          widths=["50%", "50%"]))
    out = [a, b, d]
    if extra:
        e = Chapter("other-sections", "Appendix D. Further sections", "Sections present in audit.json that have no "
                    "dedicated chapter, printed as recorded.", appendix=True)
        for name in extra:
            e.blocks.append(heading(human(name)))
            e.blocks += generic(result.sections[name])
        out.append(e)
    g = Chapter("glossary", f"Appendix {'E' if extra else 'D'}. Glossary", appendix=True)
    g.blocks.append(table(["Term", "Meaning"], [list(r) for r in reg.GLOSSARY], widths=["18%", "82%"]))
    out.append(g)
    return out


KNOWN_SECTIONS = {"data", "representation", "proxies", "imbalance", "performance", "fairness", "temporal",
                  "explanations", "drift", "reasons", "reason_quality", "adverse_action"}


def build_context(result: AuditResult, json_bytes: bytes) -> dict[str, Any]:
    """Everything the template prints, as strings, tables and chart URIs."""
    json_sha = hashlib.sha256(json_bytes).hexdigest()
    limitations = _limitations(result)
    builders: list[Callable[[], Chapter]] = [
        lambda: _exec_summary(result, limitations),
        lambda: _scope(result),
        lambda: _model(result),
        lambda: _data(result),
        lambda: _conceptual(result),
        lambda: _outcomes(result),
        lambda: _robustness(result),
        lambda: _fairness(result),
        lambda: _reasons(result),
        lambda: _monitoring(result),
        lambda: _limitations_chapter(limitations),
        lambda: _tracker(result),
    ]
    chapters = [b() for b in builders]
    for i, ch in enumerate(chapters, start=1):
        ch.number = str(i)
    extra = [s for s in result.sections if s not in KNOWN_SECTIONS]
    chapters += _appendices(result, json_sha, extra)
    paper = str((_spec(result).get("report") or {}).get("paper") or "A4")
    return {
        "title": f"Model risk validation report: {result.meta.model_name}",
        "cover": _cover(result, json_sha),
        "chapters": chapters,
        "paper": "Letter" if paper.lower() == "letter" else "A4",
        "json_sha256": json_sha,
        "created": result.meta.created_at,
        "legend": [("red", "breach or high / critical finding"), ("amber", "near a threshold or medium finding"),
                   ("green", "within thresholds / low"), ("grey", "informational or reference")],
    }


def created_datetime(result: AuditResult) -> dt.datetime:
    """The audit timestamp (``meta.created_at``) as an aware datetime; pins the PDF's dates."""
    text = result.meta.created_at.replace("Z", "+00:00")
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


__all__ = ["Chapter", "build_context", "created_datetime", "generic"]
