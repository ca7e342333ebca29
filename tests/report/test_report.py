"""The PDF report: parses, carries its evidence, prints what audit.json holds, lays out without overflow,
and is byte-for-byte reproducible. Expected values come from audit.json itself (the report must print
them), from sha256 of the bytes, or from hand-built synthetic results; never from the report's output."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import pypdf
import pytest

from service.report import render_html_for, render_pdf
from service.result import AuditResult, Finding, InputInfo, Meta
from service.runs import result_json, thresholds_table
from tests.conftest import REPO, run_cli

CHAPTERS = [
    "Executive summary",
    "Scope and risk tier",
    "Model description and intended use",
    "Data and data governance",
    "Conceptual soundness",
    "Outcomes analysis",
    "Robustness, regimes and stress",
    "Fair-lending assessment",
    "Adverse-action reason quality",
    "Ongoing monitoring plan",
    "Limitations and compensating controls",
    "Findings tracker",
    "Appendix A. Thresholds",
    "Appendix B. Regulatory cross-reference",
    "Appendix C. Inputs, hashes and library versions",
]


def _text(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return "\n".join(p.extract_text() or "" for p in reader.pages)


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _outline_titles(reader: pypdf.PdfReader) -> list[str]:
    out: list[str] = []

    def walk(items):
        for it in items:
            if isinstance(it, list):
                walk(it)
            else:
                out.append(it.title)

    walk(reader.outline)
    return out


def _meta(**over) -> Meta:
    base = dict(
        run_id="0123456789abcdef0123456789abcdef",
        created_at="2026-12-03T10:00:00Z",
        finished_at="2026-12-03T10:00:05Z",
        assay_version="0.1.0",
        python_version="3.11.7",
        libraries={"numpy": "2.4.6"},
        seed=1,
        model_name="synthetic-model",
        model_kind="lightgbm",
        inputs={"dataset": InputInfo(path="d.csv", sha256="ab" * 32, rows=10, columns=3)},
        spec={"model_name": "synthetic-model", "target": "bad", "protected": []},
        thresholds={
            "air_min": {"value": 0.8, "source": "policy"},
            "psi_red": {"value": 0.25, "source": "default"},
        },
    )
    base.update(over)
    return Meta(**base)


def _render(result: AuditResult, tmp_path: Path, name: str = "r.pdf") -> tuple[bytes, bytes]:
    payload = result_json(result)
    out = tmp_path / name
    render_pdf(result, payload, out)
    return out.read_bytes(), payload


# ------------------------------------------------------------------ German credit, the real thing


@pytest.fixture(scope="module")
def german(tmp_path_factory, german_spec):
    from service.runs import build_result

    result = build_result(german_spec, run_id="fixedrunid0001")
    tmp = tmp_path_factory.mktemp("german")
    pdf, payload = _render(result, tmp)
    (tmp / "audit.json").write_bytes(payload)
    return {"result": result, "pdf": pdf, "json": payload, "dir": tmp, "text": _flat(_text(pdf))}


def test_pdf_parses_with_sane_page_count_and_pinned_dates(german):
    reader = pypdf.PdfReader(io.BytesIO(german["pdf"]))
    assert 10 <= len(reader.pages) <= 80
    created = german["result"].meta.created_at  # e.g. 2026-12-03T20:21:33Z
    stamp = "D:" + re.sub(r"[-:TZ]", "", created) + "Z"
    assert reader.metadata["/CreationDate"] == stamp
    assert reader.metadata["/ModDate"] == stamp
    assert german["result"].meta.model_name in reader.metadata.title


def test_pdfa3b_declared_and_audit_json_embedded_byte_for_byte(german):
    reader = pypdf.PdfReader(io.BytesIO(german["pdf"]))
    assert list(reader.attachments) == ["audit.json"]
    assert reader.attachments["audit.json"][0] == german["json"]
    xmp = reader.xmp_metadata
    assert xmp is not None
    raw = xmp.stream.get_data()
    assert b"pdfaid:part" in raw and b"3" in raw and b"pdfaid:conformance" in raw
    # the report states the sha256 of the embedded JSON
    assert hashlib.sha256(german["json"]).hexdigest() in german["text"].replace(" ", "")


def test_chapter_headings_in_text_and_outline(german):
    reader = pypdf.PdfReader(io.BytesIO(german["pdf"]))
    titles = _outline_titles(reader)
    for i, chapter in enumerate(CHAPTERS, start=1):
        expected = chapter if chapter.startswith("Appendix") else f"{i}. {chapter}"
        assert expected in titles, f"{expected!r} missing from the outline {titles}"
        assert chapter in german["text"]


def test_every_section_printed_or_marked_not_run(german):
    result, text = german["result"], german["text"]
    for name in (
        "data",
        "representation",
        "proxies",
        "imbalance",
        "performance",
        "fairness",
        "temporal",
        "explanations",
        "drift",
    ):
        if name not in result.sections:
            assert "Not run" in text
    # headline numbers of the sections that did run are printed as the JSON holds them
    dev = result.sections["performance"]["splits"]["dev"]
    assert f"{dev['auc']:.3f} [{dev['auc_ci'][0]:.3f}, {dev['auc_ci'][1]:.3f}]" in text
    assert f"{dev['ks']:.3f}" in text
    assert f"{result.sections['data']['rows']:,}" in text
    for f in result.findings:
        assert f.id in text


def test_every_air_value_in_the_json_is_printed(german):
    result = german["result"]
    fair = result.sections.get("fairness")
    if fair is None:  # not registered in this build: the chapter must say so (AIR printing: synthetic test)
        assert "Not run: " in german["text"][german["text"].index("8. Fair-lending assessment", 3000) :]
        return
    airs = [
        g["air"]
        for a in fair["attributes"].values()
        for g in a["groups"].values()
        if g.get("air") is not None
    ]
    inter = fair.get("intersections") or {}
    inter_groups = inter.get("groups", inter) if isinstance(inter, dict) else {}
    airs += [g["air"] for g in inter_groups.values() if isinstance(g, dict) and g.get("air") is not None]
    assert airs
    for a in airs:
        assert f"{a:.3f}" in german["text"]


def test_thresholds_appendix_labels_every_threshold(german, german_spec):
    text = german["text"]
    table = thresholds_table(german_spec)
    assert table["air_min"]["source"] == "policy"  # set in fixtures/german_credit/audit.yaml
    assert table["psi_red"]["source"] == "default"
    start = text.index("Appendix A. Thresholds", text.index("Appendix A. Thresholds") + 1)
    appendix = text[start:]
    for name, row in table.items():
        m = re.search(re.escape(name) + r" (\S+) (default|policy)", appendix)
        assert m, f"threshold {name} not labelled in the appendix"
        assert m.group(2) == row["source"]


def test_regulatory_text_is_current(german):
    text = german["text"]
    assert "SR 26-2" in text and "17 Apr 2026" in text
    assert "SR 11-7 (legacy)" in text
    assert "2022-03 was withdrawn" in text
    assert "not presented as a federal ECOA violation" in text


def test_same_audit_json_gives_same_bytes_across_processes(german):
    out = german["dir"] / "again.pdf"
    proc = run_cli("report", str(german["dir"] / "audit.json"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == german["pdf"]


# ------------------------------------------------------------------ synthetic edge cases


def test_result_with_every_section_missing_still_renders(tmp_path):
    result = AuditResult(
        meta=_meta(thresholds={}, spec={}, inputs={}),
        not_run={"fairness": "no protected attributes were given in the spec"},
    )
    pdf, payload = _render(result, tmp_path)
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert reader.attachments["audit.json"][0] == payload
    text = _flat(_text(pdf))
    assert "Not run: no protected attributes were given in the spec" in text
    assert "Not run: this capability was not part of this audit" in text
    assert "[to be completed]" in text
    assert 8 <= len(reader.pages) <= 30


LONG = "a group label that is deliberately very long to test wrapping in narrow table cells " * 2


def _synthetic_big() -> AuditResult:
    feats = [f"feature_{i:03d}_with_a_rather_long_descriptive_name_{'x' * (i % 7)}" for i in range(200)]
    groups = {
        "reference-group": {
            "n": 500,
            "favorable_rate": 0.8,
            "adverse_rate": 0.2,
            "air": 1.0,
            "air_ci": [1.0, 1.0],
            "air_p_value": None,
            "shortfall": 0,
            "smd": 0.0,
        },
        LONG: {
            "n": 120,
            "favorable_rate": 0.5712,
            "adverse_rate": 0.4288,
            "air": 0.714,
            "air_ci": [0.61, 0.8123],
            "air_p_value": 0.0004,
            "air_q_value": 0.0012,
            "shortfall": 27.4,
            "smd": 0.41,
            "true_positive_rate": 0.7,
            "false_positive_rate": 0.22,
        },
        "g3": {
            "n": 12,
            "favorable_rate": 0.9,
            "adverse_rate": 0.1,
            "air": 1.1251,
            "air_ci": [0.9, 1.3],
            "air_p_value": 0.6,
            "shortfall": 0.0,
            "smd": -0.1,
        },
    }
    fairness = {
        "attributes": {"attr": {"reference": "reference-group", "groups": groups}},
        "intersections": {
            "attr=reference-group|x=1": {"n": 40, "air": 0.9312, "air_ci": [0.8, 1.05]},
            f"attr={LONG}|x=2": {"n": 35, "air": 0.6427, "air_ci": [0.5, 0.79]},
        },
    }
    data = {
        "rows": 1000,
        "columns": 201,
        "features": feats,
        "n_features": 200,
        "target": "bad",
        "events": 100,
        "event_rate": 0.1,
        "types": {"numeric": 201},
        "column_profiles": [
            {
                "name": f,
                "kind": "numeric",
                "is_feature": True,
                "missing_rate": 0.0,
                "n_unique": 10,
                "min": 0.0,
                "max": 123456789.123,
                "mean": 1.5,
            }
            for f in feats
        ],
        "leakage": [{"feature": f, "auc": 0.51, "flagged": False} for f in feats],
    }
    explanations = {
        "method": "TreeExplainer",
        "global": [
            {"feature": f, "mean_abs_shap": 1 / (i + 1), "ci": [0.5 / (i + 1), 1.5 / (i + 1)]}
            for i, f in enumerate(feats)
        ],
    }
    findings = [
        Finding(
            id="F001",
            severity="high",
            section="fairness",
            title="AIR below policy for " + LONG,
            detail="x" * 400,
            metric="air",
            value=0.714,
            threshold=0.8,
            threshold_source="policy",
        )
    ]
    return AuditResult(
        meta=_meta(spec={"model_name": "synthetic-model", "features": feats, "report": {"paper": "Letter"}}),
        sections={
            "data": data,
            "fairness": fairness,
            "explanations": explanations,
            "brand_new_section": {"alpha": 1.5, "nested": {"k": {"v": 2}}},
        },
        findings=findings,
    )


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    result = _synthetic_big()
    pdf, payload = _render(result, tmp_path_factory.mktemp("big"))
    return {"result": result, "pdf": pdf, "text": _flat(_text(pdf))}


def test_synthetic_air_values_printed_including_intersections(big):
    for a in (1.0, 0.714, 1.1251, 0.9312, 0.6427):
        assert f"{a:.3f}" in big["text"]
    assert "[0.610, 0.812]" in big["text"]  # the CI as printed, 3 decimals
    assert "0.001" in big["text"]  # q-value column


def test_letter_paper_from_spec(big):
    reader = pypdf.PdfReader(io.BytesIO(big["pdf"]))
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (612, 792)


def test_unknown_section_rendered_in_appendix(big):
    assert "Appendix D. Further sections" in big["text"]
    assert "Brand New Section" in big["text"] or "brand new section" in big["text"].lower()


def test_long_names_and_200_features_wrap_inside_the_page():
    """Lay the document out and check that no box reaches beyond the page's content area."""
    from service.report.pdf import layout

    result = _synthetic_big()
    doc = layout(render_html_for(result, result_json(result)))
    assert len(doc.pages) > 10  # 200 rows of profile, leakage and importance split across pages
    overflow = []
    for page_no, page in enumerate(doc.pages, start=1):
        pb = page._page_box
        right = pb.content_box_x() + pb.width + 0.5
        for box in pb.descendants():
            if type(box).__name__ in ("PageBox", "MarginBox") or not hasattr(box, "position_x"):
                continue
            if getattr(box, "width", None) is None:
                continue
            edge = box.position_x + box.margin_width()
            if edge > right:
                overflow.append((page_no, type(box).__name__, getattr(box, "text", "")[:40], edge - right))
    assert not overflow, overflow[:5]


# ------------------------------------------------------------------ templates and CLI errors


def test_reports_dir_override(tmp_path, monkeypatch):
    folder = tmp_path / "tpl"
    shutil.copytree(REPO / "reports", folder)
    tpl = folder / "report.html.j2"
    tpl.write_text(tpl.read_text().replace("<body>", "<body><p>OVERRIDE-MARKER</p>"))
    monkeypatch.setenv("ASSAY_REPORTS_DIR", str(folder))
    result = AuditResult(meta=_meta())
    assert "OVERRIDE-MARKER" in render_html_for(result, result_json(result))
    monkeypatch.setenv("ASSAY_REPORTS_DIR", str(tmp_path / "missing"))
    from service.errors import InputError

    with pytest.raises(InputError, match="report templates not found in .*missing"):
        render_html_for(result, result_json(result))


def test_cli_report_bad_inputs_exit_2(tmp_path):
    proc = run_cli("report", str(tmp_path / "nope.json"), "--out", str(tmp_path / "r.pdf"))
    assert proc.returncode == 2
    assert "nope.json: file not found" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema_version": "1", "sections": {}}))
    proc = run_cli("report", str(bad), "--out", str(tmp_path / "r.pdf"))
    assert proc.returncode == 2
    assert "field 'meta'" in proc.stderr and "not an Assay audit result" in proc.stderr
    (tmp_path / "junk.json").write_text("{not json")
    proc = run_cli("report", str(tmp_path / "junk.json"), "--out", str(tmp_path / "r.pdf"))
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr
    assert not (tmp_path / "r.pdf").exists()


# ------------------------------------------------------------------ data-governance and stability chapters


def _chapter(text: str, title: str, nxt: str) -> str:
    """The body of a chapter (after its TOC line), up to the next chapter's heading."""
    start = text.index(title, text.index(title) + 1)
    return text[start : text.index(nxt, start)]


def test_representation_counts_match_pandas_on_the_fixture(german):
    """Group sizes, shares and event rates in chapter 4 equal an independent pandas count of the CSV."""
    import pandas as pd

    df = pd.read_csv(REPO / "fixtures" / "german_credit" / "german_credit.csv")
    body = _chapter(german["text"], "4. Data and data governance", "5. Conceptual soundness")
    counts = df["sex"].value_counts()
    rates = df.groupby("sex")["label_bad"].mean()
    for g in ("male", "female"):
        share = f"{100 * counts[g] / len(df):.1f}%"
        rate = f"{100 * rates[g]:.1f}%"
        row = re.search(re.escape(g) + r"(?: \(reference\))? (\S+) (\S+) ", body)
        assert row, f"no representation row for {g}"
        assert row.group(1) == f"{counts[g]:,}" and row.group(2) == share
        assert rate in body
    young = int((df["age_years"] < 26).sum())
    assert re.search(r"18-25 " + re.escape(f"{young:,}") + " ", body)


def test_proxy_and_imbalance_numbers_printed(german):
    body = _chapter(german["text"], "4. Data and data governance", "5. Conceptual soundness")
    prox = german["result"].sections["proxies"]
    for name, att in prox["attributes"].items():
        red = att["redundant_encoding"]
        lo, hi = red["auc_ci"]
        assert f"{red['auc']:.3f} [{lo:.3f}, {hi:.3f}]" in body, name
        for f in att["features"]:
            assert f["feature"] in body
    imb = german["result"].sections["imbalance"]
    assert f"{imb['imbalance_ratio']:.2f}" in body
    dev = imb["splits"]["dev"]
    conf = dev["confusion"]
    assert f"{int(conf['tp'])} {int(conf['fn'])} {int(conf['fp'])} {int(conf['tn'])}" in body


def test_stress_scenarios_printed(german):
    body = _chapter(german["text"], "7. Robustness, regimes and stress", "8. Fair-lending assessment")
    for s in german["result"].sections["temporal"]["stress"]:
        assert s["name"] in body.replace(" ", "")  # a long name may wrap inside its cell
        b, st = s["base"]["adverse_rate"], s["stressed"]["adverse_rate"]
        assert f"{100 * b:.1f}% → {100 * st:.1f}%" in body


def _temporal_drift_result() -> AuditResult:
    """Hand-built temporal and drift sections in the SPEC §5 shape, with PSI values on each side of the
    default thresholds (amber 0.10, red 0.25)."""

    def window(n, er, auc, psi):
        return {
            "n": n,
            "event_rate": er,
            "adverse_rate": er / 2,
            "auc": auc,
            "auc_ci": [auc - 0.05, auc + 0.04],
            "ks": 0.4,
            "calibration_ratio": 1.1,
            "psi_vs_dev": psi,
            "air": {"sex": {"female": 0.8771}},
        }

    periods = [
        dict(window(500 + i, 0.1 + 0.01 * i, 0.71 + 0.01 * i, psi), period=f"2008-Q{i + 1}")
        for i, psi in enumerate([0.0412, 0.1234, 0.3456, 0.0999])
    ]
    temporal = {
        "date_column": "application_date",
        "period": "quarter",
        "period_reason": "auto",
        "min_period_rows": 30,
        "date_range": ["2008-01-01", "2008-12-31"],
        "n_bootstrap": 200,
        "ci_method": "bootstrap",
        "periods": periods,
        "change_points": {
            "method": "binary segmentation",
            "alpha": 0.01,
            "min_size": 2,
            "breaks": [
                {
                    "period": "2008-Q3",
                    "previous_period": "2008-Q2",
                    "before_rate": 0.105,
                    "after_rate": 0.125,
                    "statistic": 12.5,
                    "dispersion": 1.0,
                    "p_value": 0.0004,
                }
            ],
        },
        "out_of_time": None,
        "out_of_time_reason": "no out-of-time sample (planted reason)",
        "regimes": {
            "source": "spec",
            "boundaries": "inclusive",
            "regimes": [dict(window(300, 0.2, 0.6543, 0.2222), name="great-recession")],
            "outside": window(1700, 0.1, 0.75, 0.01),
        },
        "stress": [
            {
                "name": "income-shock",
                "shocks": {"income": "×0.8"},
                "rescored": True,
                "n": 2000,
                "rows_changed": 2000,
                "flipped_to_adverse": 77,
                "flipped_to_favorable": 0,
                "base": {"adverse_rate": 0.2, "mean_score": 0.3},
                "stressed": {"adverse_rate": 0.24, "mean_score": 0.33},
                "change": {"adverse_rate": 0.04, "mean_score": 0.03},
                "air": {"sex": {"female": {"base_air": 0.9111, "stressed_air": 0.8222, "change": -0.0889}}},
            }
        ],
        "a_key_added_later": {"note": "printed generically"},
    }
    drift = {
        "reference": "dev",
        "current": "oot",
        "n_reference": 1000,
        "n_current": 900,
        "features": {
            "income": {
                "kind": "numeric",
                "psi": 0.3141,
                "ks": 0.21,
                "ks_p_value": 0.0001,
                "wasserstein_normed": 0.3,
                "mean": 41000.0,
                "reference_mean": 45000.0,
                "missing_rate": 0.0,
                "reference_missing_rate": 0.0,
            },
            "region": {
                "kind": "categorical",
                "psi": 0.1717,
                "js": 0.12,
                "chi2_p_value": 0.02,
                "unseen_share": 0.01,
                "new_categories": ["mars"],
                "missing_rate": 0.0,
                "reference_missing_rate": 0.0,
            },
            "tenure": {"kind": "numeric", "psi": 0.0123, "ks": 0.02, "ks_p_value": 0.9},
        },
        "score": {"psi": 0.2718},
        "summary": {
            "n_features": 3,
            "n_amber": 1,
            "n_red": 1,
            "max_psi_feature": "income",
            "max_psi": 0.3141,
        },
        "prediction": {"mean_score": 0.31, "reference_mean_score": 0.29},
    }
    thresholds = {
        "psi_amber": {"value": 0.1, "source": "default"},
        "psi_red": {"value": 0.25, "source": "default"},
        "auc_min": {"value": 0.6, "source": "default"},
    }
    return AuditResult(meta=_meta(thresholds=thresholds), sections={"temporal": temporal, "drift": drift})


def _light_of(html: str, value: str) -> str:
    m = re.search(r'<td class="tl tl-(\w+)">' + re.escape(value) + "</td>", html)
    assert m, f"{value} not printed in a traffic-light cell"
    return m.group(1)


def test_temporal_and_drift_values_and_traffic_lights(tmp_path):
    result = _temporal_drift_result()
    html = render_html_for(result, result_json(result))
    # PSI colours follow the thresholds: >= 0.25 red, >= 0.10 amber, else green
    assert _light_of(html, "0.041") == "green"
    assert _light_of(html, "0.123") == "amber"
    assert _light_of(html, "0.346") == "red"
    assert _light_of(html, "0.314") == "red"  # drift: income
    assert _light_of(html, "0.172") == "amber"  # drift: region
    assert _light_of(html, "0.012") == "green"  # drift: tenure
    assert _light_of(html, "0.272") == "red"  # score PSI
    pdf, _ = _render(result, tmp_path)
    text = _flat(_text(pdf))
    for label in ("2008-Q1", "2008-Q4", "great-recession", "income-shock", "mars"):
        assert label in text
    assert "20.0% → 24.0%" in text  # stress adverse rate base → stressed
    assert "0.911 0.822 -0.089" in text  # AIR under stress
    assert "no out-of-time sample (planted reason)" in text
    assert "<0.001" in text  # the change point's p-value
    assert "sex: female 0.877" in text  # AIR per period
    assert "printed generically" in text  # keys added later still print
    # charts drawn: PSI and AUC by period, feature PSI
    assert html.count('<img src="data:image/svg+xml;base64,') >= 3
    assert "Score PSI of each period against the development sample" in html
    assert "Population stability of each feature" in html


def test_render_uses_no_model_or_data_files(tmp_path, monkeypatch):
    """The report is built from audit.json alone: it renders from a working directory with nothing in it."""
    monkeypatch.chdir(tmp_path)
    result = _temporal_drift_result()
    pdf, payload = _render(result, tmp_path)
    assert pypdf.PdfReader(io.BytesIO(pdf)).attachments["audit.json"][0] == payload


def test_explanations_and_reasons_chapters_print_the_json(german):
    text = german["text"]
    body = _chapter(text, "5. Conceptual soundness", "6. Outcomes analysis")
    exp = german["result"].sections.get("explanations")
    if exp is None:
        assert "Not run" in body
    else:
        for f, v in exp["features"].items():
            lo, hi = v["mean_abs_shap_ci"]
            assert f"{f} {v['mean_abs_shap']:.3f} [{lo:.3f}, {hi:.3f}]" in body
        for v in (exp.get("monotone") or {}).values():
            assert f"{v['spearman_rho']:.3f}" in body and v["status"] in body
    body = _chapter(text, "9. Adverse-action reason quality", "10. Ongoing monitoring plan")
    rs = german["result"].sections.get("reasons")
    if rs is None:
        assert "Not run" in body
    else:
        for code, share in rs["coverage"].items():
            assert f"{code} {100 * share:.1f}%" in body
        for att in rs["disparity"].values():
            for flag in att["flags"]:
                assert f"{flag['code']} {100 * flag['share']:.1f}%" in body


def test_pdfa_associated_file_and_output_intent(german):
    """PDF/A-3 structure veraPDF would look at: the attachment is an associated file of the document
    (catalog /AF, /AFRelationship /Source) and an sRGB output intent is present."""
    reader = pypdf.PdfReader(io.BytesIO(german["pdf"]))
    root = reader.trailer["/Root"]
    af = [o.get_object() for o in root["/AF"]]
    assert {f["/UF"] for f in af} == {"audit.json"}
    assert all(f["/AFRelationship"] == "/Source" for f in af)
    assert [o.get_object()["/S"] for o in root["/OutputIntents"]] == ["/GTS_PDFA1"]
    assert root["/Lang"] == "en"


def test_fairness_splits_rendered_as_air_tables(tmp_path):
    """Per-split fairness (e.g. out-of-time) gets the same AIR table as the development split."""

    def groups(air):
        return {
            "m": {"n": 400, "favorable_rate": 0.8, "air": 1.0},
            "f": {"n": 300, "favorable_rate": 0.8 * air, "air": air, "air_ci": [air - 0.1, air + 0.1]},
        }

    fair = {
        "attributes": {
            "sex": {
                "reference": "m",
                "groups": groups(0.9123),
                "summary": {"min_air": 0.9123, "demographic_parity_difference": 0.0701},
            }
        },
        "splits": {"oot": {"n": 700, "attributes": {"sex": {"reference": "m", "groups": groups(0.7345)}}}},
    }
    result = AuditResult(meta=_meta(), sections={"fairness": fair})
    html = render_html_for(result, result_json(result))
    assert "Adverse impact ratio: sex (oot)" in html
    # below air_min 0.8 with no significance threshold set: red (there is no amber band to fall into)
    assert _light_of(html, "0.735") == "red"
    assert _light_of(html, "0.912") == "green"
    assert "demographic parity difference" in html and "0.070" in html
    assert "splits ›" not in html  # not dumped generically


def test_periods_without_a_statistic_say_why(tmp_path):
    """A dash in the period table is explained: which periods lack which statistic, and the rule."""
    result = _temporal_drift_result()
    periods = result.sections["temporal"]["periods"]
    periods.append(
        {
            "period": "2009-Q1",
            "n": 12,
            "too_small": True,
            "notes": ["too small: 12 row(s) < min_period_rows = 30; statistics not computed"],
        }
    )
    periods.append(
        {
            "period": "2009-Q2",
            "n": 60,
            "event_rate": 0.05,
            "notes": [
                "AUC/KS not computed: 3 event(s) and 57 non-event(s) (need >= 5 events and >= 5 non-events)",
                "PSI not computed: 60 row(s) (need >= 100, 10 per development score bin)",
            ],
        }
    )
    pdf, _ = _render(result, tmp_path)
    text = _flat(_text(pdf))
    assert "too small (< min_period_rows = 30): 2009-Q1" in text
    assert "AUC/KS not computed (need >= 5 events and >= 5 non-events): 2009-Q2" in text
    assert "PSI not computed (need >= 100, 10 per development score bin): 2009-Q2" in text
