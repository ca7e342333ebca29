"""Static regulatory text for the report: cross-reference matrix, EU AI Act Annex IV checklist,
threshold meanings and a glossary (source: docs/REGULATORY.md §0, §(a), §(d), §(e)).

Current US model-risk guidance is SR 26-2 / OCC Bulletin 2026-13 / FDIC FIL-15-2026 (17 Apr 2026),
which replaced SR 11-7 / OCC 2011-12; SR 11-7 is given only as the legacy cross-reference that bank
policies still cite. CFPB Circular 2022-03 is withdrawn (12 May 2025) and cited only as history.
The Regulation B effects-test language was removed on 21 Jul 2026, so an AIR below the screen is
never presented as a federal ECOA violation.
"""

from __future__ import annotations

# chapter id -> (SR 26-2 (current), SR 11-7 (legacy), EU AI Act, ECOA / Reg B / other)
CROSS_REFERENCE: list[tuple[str, str, str, str, str]] = [
    (
        "Cover and document control",
        "§VI Governance and controls (roles, conflicts of interest); §III effective challenge",
        "Roles and responsibilities; independence",
        "Annex IV 2(g) (signed, dated)",
        "PRA SS1/23 Principle 2",
    ),
    (
        "Executive summary",
        "§V validation: reliability and limitations",
        "§V validation reports: executive summary",
        "Annex IV 3",
        "—",
    ),
    (
        "Scope and risk tier",
        "§III materiality (exposure × purpose); §VI inventory",
        "Model inventory",
        "Art 6(2), Annex III 5(b)",
        "SS1/23 Principle 1",
    ),
    (
        "Model description and intended use",
        "§IV development and use",
        "Statement of purpose",
        "Art 13(3)(b)(i); Annex IV 1(a)–(h)",
        "—",
    ),
    (
        "Data and data governance",
        "§IV data selection; §V developmental testing",
        "Data quality",
        "Art 10(2)–(4); Annex IV 2(d)",
        "Reg B 12 CFR 1002.5(b) (data collection limits)",
    ),
    (
        "Conceptual soundness",
        "§V conceptual soundness (design, interpretability, benchmarking)",
        "§V.1 evaluation of conceptual soundness",
        "Annex IV 2(b)",
        "ECB guide (ML explainability)",
    ),
    (
        "Outcomes analysis",
        "§V outcomes analysis (established performance thresholds)",
        "Outcomes analysis, back-testing",
        "Art 15(1); Annex IV 2(g), 3",
        "CRR Art 175 (out-of-time tests)",
    ),
    (
        "Robustness, regimes and stress",
        "§V ongoing monitoring (market conditions)",
        "Range of economic conditions",
        "Art 15(1), (4)",
        "Fed stress-test scenarios (2025 NPR)",
    ),
    (
        "Fair-lending assessment",
        "§V validation of limitations",
        "—",
        "Art 10(2)(f)–(g); Annex IV 2(g), 3",
        "ECOA 15 USC 1691(a); FHA; state law (Reg B effects test removed 21 Jul 2026)",
    ),
    (
        "Adverse-action reason quality",
        "§V conceptual soundness (interpretability)",
        "—",
        "Art 13(3)(b)(iv),(vii); Art 86",
        "Reg B 12 CFR 1002.9(b)(2), comments 9(b)(2)-1 to -9; FCRA §615(a)",
    ),
    (
        "Ongoing monitoring plan",
        "§V ongoing model monitoring",
        "Ongoing monitoring; periodic review",
        "Art 72; Annex IV 9; Art 12",
        "SS1/23 Principle 4",
    ),
    (
        "Limitations and compensating controls",
        "§V (material model risk can remain)",
        "Model uncertainty; compensating controls",
        "Annex IV 3",
        "SS1/23 Principle 5",
    ),
    (
        "Findings tracker",
        "§III effective challenge (effect appropriate changes)",
        "Issue tracking",
        "Art 9",
        "—",
    ),
    (
        "Appendices",
        "§VI documentation",
        "Documentation for parties unfamiliar with the model",
        "Annex IV 2(g) (test logs); Art 12",
        "—",
    ),
]

# Annex IV item, content, A/P/H, where in this report
ANNEX_IV: list[tuple[str, str, str, str]] = [
    ("1(a)", "Intended purpose, provider, version", "P", "Cover; chapter 3 (purpose supplied by a person)"),
    ("1(b)", "Interaction with other systems", "P", "Chapter 3 (human)"),
    ("1(c)", "Versions of relevant software", "A", "Appendix C (library versions)"),
    ("1(d)", "Forms placed on the market", "H", "—"),
    ("1(e)", "Hardware", "P", "Appendix C (runtime); production hardware human"),
    ("1(f)", "Product photos / markings", "H", "Usually not applicable"),
    ("1(g)", "Deployer user interface", "H", "—"),
    ("1(h)", "Instructions for use (Art 13)", "P", "Chapters 6, 8, 12 draft accuracy and limitations"),
    ("2(a)", "Development methods, third-party components", "P", "Chapter 3 (human)"),
    (
        "2(b)",
        "Design specifications, choices, trade-offs",
        "P",
        "Chapter 5 (importance auto; rationale human)",
    ),
    ("2(c)", "Architecture; compute", "P", "Appendix C (runtime); narrative human"),
    ("2(d)", "Datasheets: data provenance, selection, cleaning", "P", "Chapter 4; provenance human"),
    ("2(e)", "Human-oversight assessment (Art 14)", "P", "Chapter 9 (reason tooling); oversight human"),
    ("2(f)", "Pre-determined changes", "H", "Chapter 10 (drift triggers recorded)"),
    (
        "2(g)",
        "Validation and testing; discriminatory impacts; signed test logs",
        "A + H signature",
        "Chapters 6–8, Appendix C; sign-off block on the cover",
    ),
    ("2(h)", "Cybersecurity measures", "H", "—"),
    ("3", "Capabilities, limitations, accuracy for groups", "P", "Chapters 6, 8 and 11"),
    ("4", "Appropriateness of performance metrics", "P", "Chapter 6 and glossary; human confirms"),
    ("5", "Risk-management system (Art 9)", "H (P: test evidence)", "Findings tracker"),
    ("6", "Relevant changes through the lifecycle", "A", "Appendix C (hashes, run id)"),
    ("7", "Standards applied", "H", "—"),
    ("8", "EU declaration of conformity", "H", "—"),
    ("9", "Post-market monitoring plan (Art 72(3))", "P", "Chapter 10; human approves"),
]

THRESHOLD_MEANING: dict[str, str] = {
    "air_min": "Adverse impact ratio below which a group is flagged "
    "(four-fifths screen, 29 CFR 1607.4(D) by analogy)",
    "smd_max": "Absolute standardized mean difference of the score flagged as adverse (Cohen 'small')",
    "psi_amber": "Population stability index at which drift is amber",
    "psi_red": "Population stability index at which drift is red (action required)",
    "min_group_size": "Smallest group for which group statistics are interpreted",
    "significance": "p-value (after Benjamini-Hochberg where stated) below which a gap is significant",
    "error_rate_gap_max": "Largest tolerated gap in error rates between a group and the reference",
    "auc_min": "Smallest acceptable AUC",
    "auc_drop_max": "Largest tolerated AUC drop from development to out-of-time",
    "calibration_ratio_max": "Largest tolerated relative gap between observed and predicted event rates",
    "leakage_auc": "Single-feature AUC above which a feature is flagged as possible target leakage",
    "missing_max": "Largest tolerated missing share per feature",
    "proxy_auc_max": "AUC of predicting a protected attribute from all features "
    "above which proxies are flagged",
    "proxy_association_max": "Single-feature association (Cramér's V / eta) above which a feature is a proxy",
    "missing_gap_max": "Largest tolerated gap in missing rates between groups",
    "low_default_events": "Event count below which the portfolio is treated as low-default",
    "low_default_rate": "Event rate below which the portfolio is treated as low-default",
}

GLOSSARY: list[tuple[str, str]] = [
    (
        "AUC / Gini",
        "Area under the ROC curve: the probability that a random adverse-event case scores riskier "
        "than a random non-event case. Gini = 2·AUC − 1.",
    ),
    (
        "KS",
        "Kolmogorov-Smirnov statistic: the largest gap between the cumulative score distributions of events "
        "and non-events.",
    ),
    ("Brier score", "Mean squared difference between predicted probability and outcome (lower is better)."),
    ("Hosmer-Lemeshow", "Chi-square test comparing observed and predicted events across score deciles."),
    (
        "AIR",
        "Adverse impact ratio: favourable-decision rate of a group divided by that of the reference group. "
        "The 0.80 screen is the employment 'four-fifths rule' used by analogy; it is not a lending rule.",
    ),
    (
        "SMD",
        "Standardized mean difference of the score between a group and the reference, in pooled "
        "standard deviations.",
    ),
    ("q-value", "p-value adjusted for multiple comparisons (Benjamini-Hochberg)."),
    (
        "Shortfall",
        "Additional favourable decisions the group would need to reach the reference group's rate.",
    ),
    ("PSI", "Population stability index over reference deciles: Σ (a − e)·ln(a / e)."),
    (
        "BISG",
        "Bayesian Improved Surname Geocoding: estimated race/ethnicity probabilities from surname and "
        "geography, used as weights when the attribute is not collected.",
    ),
    (
        "SHAP",
        "Shapley additive explanations: each feature's contribution to a score relative to a reference.",
    ),
    (
        "Traffic light",
        "Red: breach of a threshold or high/critical finding; amber: near a threshold or medium "
        "finding; green: within thresholds.",
    ),
]

LEGAL_FRAMING = (
    "Fair-lending metrics are reported as a model-risk and disparate-impact screen. Since 21 Jul 2026 "
    "Regulation B (12 CFR 1002.6(a)) no longer carries effects-test language, so a low adverse impact "
    "ratio is not presented as a federal ECOA violation; disparate impact remains relevant under the Fair "
    "Housing Act, state law, private litigation and EU AI Act Art 10(2)(f)–(g). Disparate-treatment "
    "analysis remains a federal expectation. Legal conclusions are for counsel."
)

__all__ = ["ANNEX_IV", "CROSS_REFERENCE", "GLOSSARY", "LEGAL_FRAMING", "THRESHOLD_MEANING"]
