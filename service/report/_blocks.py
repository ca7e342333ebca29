"""Report building blocks: paragraphs, tables, charts, "not run" notes and a generic renderer for any
JSON section, plus small accessors on the result (thresholds, spec, sections). Shared by the chapter
builders in ``context.py`` and ``_sections.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.report._format import DASH, cell, human, is_num, num
from service.result import AuditResult

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


def table(
    columns: list[str],
    rows: list[list[Any]],
    *,
    title: str = "",
    note: str = "",
    widths: list[str] | None = None,
    cls: str = "",
) -> Block:
    """A table block; a cell is a string or ``{"t": text, "c": css class}``."""
    more = len(rows) - MAX_ROWS
    if more > 0:
        rows = rows[:MAX_ROWS]
        note = (note + " " if note else "") + f"{more} further rows are in audit.json."
    return {
        "kind": "table",
        "title": title,
        "columns": columns,
        "rows": [[c if isinstance(c, dict) else {"t": str(c), "c": ""} for c in r] for r in rows],
        "note": note,
        "widths": widths or [],
        "cls": cls,
    }


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
    return (
        v is None
        or isinstance(v, str | int | float | bool)
        or (isinstance(v, list | tuple) and all(not isinstance(x, dict | list) for x in v))
    )


def _dict_table(
    obj: dict[str, Any], key_label: str, title: str
) -> tuple[Block | None, list[tuple[str, Any]]]:
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
    note = (
        "" if len(cols) <= MAX_COLS else f"Columns not shown (in audit.json): {', '.join(cols[MAX_COLS:])}."
    )
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
