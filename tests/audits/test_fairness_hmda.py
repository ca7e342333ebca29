"""A published figure: Boston Fed HMDA 1990 denial rates by race.

Munnell, Tootell, Browne & McEneaney (1996), "Mortgage Lending in Boston: Interpreting HMDA Data",
American Economic Review 86(1): 25–53; as tabulated by Stock & Watson, *Introduction to
Econometrics* (2nd ed., 2007, ch. 11): about 28% of black and 9% of white applicants were denied.

The fixture (fixtures/hmda_boston/HMDA_AER.csv, see its SOURCE.md) holds the lender's decision
``deny`` and ``afam``. The audit is run with the decision itself as the score (``deny_flag`` ≥ 0.5 ⇒
adverse), so the audit's adverse rate of a group is its denial rate. Exact figures are recomputed
here from the file with the csv module, independently of pandas and of the audit.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from service.audits import fairness
from service.config import parse_spec
from service.inputs.prepare import prepare

HMDA = Path(__file__).resolve().parents[2] / "fixtures" / "hmda_boston" / "HMDA_AER.csv"
PUBLISHED = {"black": 0.28, "white": 0.09}  # Stock & Watson (2007) from Munnell et al. (1996)
PUBLISHED_TOL = 0.005  # the published figures are rounded to whole percent


def _independent_counts() -> dict[str, tuple[int, int]]:
    """(denied, applicants) per race straight from the CSV text."""
    out = {"black": [0, 0], "white": [0, 0]}
    with HMDA.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            race = "black" if row["afam"] == "yes" else "white"
            out[race][0] += row["deny"] == "yes"
            out[race][1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


@pytest.fixture(scope="module")
def hmda_section(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hmda")
    df = pd.read_csv(HMDA)
    df["race"] = df["afam"].map({"yes": "black", "no": "white"})
    df["deny_flag"] = (df["deny"] == "yes").astype(int)
    df.to_csv(tmp / "hmda.csv", index=False)
    spec = parse_spec(
        {
            "model_name": "boston-hmda-1990-lender-decisions",
            "dataset": "hmda.csv",
            "target": "deny",
            "event_value": "yes",
            "score": {"column": "deny_flag", "direction": "higher_is_riskier", "threshold": 0.5},
            "protected": [{"name": "race", "column": "race", "reference": "white"}],
        },
        source=str(tmp / "spec.json"),
        base_dir=tmp,
    )
    return fairness.run(prepare(spec).context)


def test_denial_rates_reproduce_the_published_figures(hmda_section):
    counts = _independent_counts()
    assert counts == {"black": (96, 339), "white": (189, 2041)}  # as stated in fixtures/.../SOURCE.md
    groups = hmda_section.section.attributes["race"].groups
    for race, (denied, n) in counts.items():
        g = groups[race]
        assert g.n == n
        assert g.adverse_rate == pytest.approx(denied / n, abs=1e-12)
        assert g.adverse_rate == pytest.approx(PUBLISHED[race], abs=PUBLISHED_TOL)


def test_air_test_and_shortfall_on_hmda(hmda_section):
    (xb, nb), (xw, nw) = _independent_counts()["black"], _independent_counts()["white"]
    g = hmda_section.section.attributes["race"].groups["black"]
    fb, fw = (nb - xb) / nb, (nw - xw) / nw
    assert g.air == pytest.approx(fb / fw, abs=1e-12)  # 0.790: below the four-fifths line
    # two-proportion z on the approval counts == Pearson chi-square without continuity correction
    chi2 = stats.chi2_contingency([[nb - xb, xb], [nw - xw, xw]], correction=False)
    assert g.air_test == "two_proportion_z"
    assert g.air_p_value == pytest.approx(chi2.pvalue, rel=1e-9)
    # shortfall: smallest k with (approved + k) / n_black >= 0.8 * approval rate of white applicants
    k = math.ceil(0.8 * fw * nb - (nb - xb) - 1e-9)
    assert g.shortfall == k and (nb - xb + k) / nb >= 0.8 * fw > (nb - xb + k - 1) / nb
    # AIR below 0.80 and significant (q < 0.05, one test here) -> a high finding
    air = [f for f in hmda_section.findings if f.metric == "air"]
    assert len(air) == 1 and air[0].severity == "high" and air[0].threshold_source == "default"
    assert "race=black" in air[0].title
