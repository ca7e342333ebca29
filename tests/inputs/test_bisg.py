"""BISG (CFPB 2014): hand computations from the Census/CFPB tables, fallbacks, cleaning, bad inputs.

Independent references:
* ``fixtures/bisg/cfpb_zip_attr_sample.csv``: the CFPB's *own published* P(race | ZCTA) and
  P(ZCTA | race) (github.com/cfpb/proxy-methodology ``zip_attr_over18.dta``), so our reallocation of
  the raw adult counts is checked against the CFPB's numbers, not against our code.
* ``fixtures/bisg/census_surnames_sample.csv``: verbatim Census 2010 surname rows; the test applies
  the CFPB suppressed-cell rule and Bayes' rule by hand with plain Python arithmetic.
* The Census 2010 adult population (237,386,565 incl. Puerto Rico, CFPB tract table) as a sanity total.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import InputError
from service.inputs import bisg
from tests.conftest import FIXTURES, run_cli

BISG_FIX = FIXTURES / "bisg"
ORDER_CFPB = ["white", "black", "api", "aian", "mult_other", "hispanic"]  # = bisg.GROUPS order
PCT = ["pctwhite", "pctblack", "pctapi", "pctaian", "pct2prace", "pcthispanic"]
TOL = 1e-6  # CFPB attr file stores float32-derived values; agreement is ~1e-8 relative


@pytest.fixture(scope="module")
def census_surnames() -> pd.DataFrame:
    return pd.read_csv(BISG_FIX / "census_surnames_sample.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def cfpb_attr() -> pd.DataFrame:
    return pd.read_csv(BISG_FIX / "cfpb_zip_attr_sample.csv", dtype={"GeoInd": str}).set_index("GeoInd")


def hand_p_race_given_surname(row: pd.Series) -> list[float]:
    """CFPB surname_creation_lower.do: suppressed '(S)' cells share the remainder equally."""
    vals = [None if row[c] == "(S)" else float(row[c]) / 100 for c in PCT]
    known = sum(v for v in vals if v is not None)
    n_sup = sum(v is None for v in vals)
    fill = max(1.0 - known, 0.0) / n_sup if n_sup else 0.0
    return [fill if v is None else v for v in vals]


def hand_bisg(p_r_s: list[float], p_g_r: list[float]) -> list[float]:
    u = [a * b for a, b in zip(p_r_s, p_g_r, strict=True)]
    tot = sum(u)
    return [x / tot for x in u]


# --------------------------------------------------------------------------- geography step vs the CFPB


def test_zcta_race_composition_matches_cfpb_published_attr(cfpb_attr):
    idx, p_r_g, p_g_r = bisg.geography_table("zcta")
    for zcta, r in cfpb_attr.iterrows():
        i = idx.get_loc(int(zcta))
        np.testing.assert_allclose(p_r_g[i], [r[f"geo_pr_{g}"] for g in ORDER_CFPB], atol=1e-9)
        np.testing.assert_allclose(p_g_r[i], [r[f"here_given_{g}"] for g in ORDER_CFPB], rtol=1e-6)


def test_tract_composition_by_hand_and_census_total():
    # tract 01001020100 has no "Other"/multi-other counts, so P(r | tract) is the raw shares
    counts = pd.read_csv(BISG_FIX / "tract_counts_sample.csv", dtype={"GEOID10_Tract": str})
    r = counts.set_index("GEOID10_Tract").loc["01001020100"]
    assert r["NH_Other_alone"] == 0 and r["NH_Mult_Total"] == 13
    expect = np.array([1200, 144, 9, 11, 13, 28]) / 1405
    idx, p_r_g, p_g_r = bisg.geography_table("tract")
    np.testing.assert_allclose(p_r_g[idx.get_loc(1001020100)], expect, atol=1e-12)
    # P(g | r) is a distribution over geographies for each race
    np.testing.assert_allclose(p_g_r.sum(axis=0), 1.0, atol=1e-9)
    raw = pd.read_parquet(bisg.DATA_DIR / "tract_2010.parquet")
    assert int(raw["Total_Pop"].sum()) == 237_386_565  # Census 2010 adults, US + PR (SOURCE.md)
    assert (raw["state"] == 72).sum() > 0 and not np.isin(idx, raw.loc[raw["state"] == 72, "geoid"]).any()


def test_surname_table_imputes_suppressed_cells_as_cfpb(census_surnames):
    names, table = bisg.surname_table()
    for _, row in census_surnames.iterrows():
        np.testing.assert_allclose(
            table[names.get_loc(row["name"])], hand_p_race_given_surname(row), atol=1e-12
        )
    doriott = census_surnames.set_index("name").loc["DORIOTT"]
    assert (doriott[PCT] == "(S)").sum() == 2  # the case the imputation rule exists for
    assert "ALL OTHER NAMES" not in names


# --------------------------------------------------------------------------- the estimate vs hand computation


CASES = [
    ("Smith", "60619"),
    ("GARCIA", "90022"),
    ("Nguyen", "94110"),
    ("Washington", "10027"),
    ("O'Connor", "02134"),
    ("Begay", "86045"),
    ("Yazzie", "33125"),
    ("Doriott", "02134"),
    ("McDonald-Smith", "10027"),  # hyphenated: first part (MCDONALD) is in the list
]


def test_estimate_matches_hand_computation(census_surnames, cfpb_attr):
    sur = census_surnames.set_index("name")
    est = bisg.estimate(pd.Series([c[0] for c in CASES]), pd.Series([c[1] for c in CASES]))
    assert est.groups == ["white", "black", "api", "aian", "multiracial", "hispanic"]
    for i, (name, z) in enumerate(CASES):
        key = {"O'Connor": "OCONNOR", "McDonald-Smith": "MCDONALD"}.get(name, name.upper())
        p_r_s = hand_p_race_given_surname(sur.loc[key])
        p_g_r = [cfpb_attr.loc[z, f"here_given_{g}"] for g in ORDER_CFPB]
        np.testing.assert_allclose(est.probabilities[i], hand_bisg(p_r_s, p_g_r), atol=TOL, err_msg=name)
    assert (est.source == "surname+geography").all()
    np.testing.assert_allclose(est.probabilities.sum(axis=1), 1.0, atol=1e-12)


def test_known_direction_of_common_cases():
    names = pd.Series(["Garcia", "Nguyen", "Washington", "Begay"])
    alone = bisg.estimate(names, pd.Series(["99999"] * 4))  # ZIP not in the 2010 table: surname alone
    assert [alone.groups[j] for j in alone.probabilities.argmax(axis=1)] == [
        "hispanic",
        "api",
        "black",
        "aian",
    ]
    # geography moves the estimate: WASHINGTON in East Los Angeles (90022) is most likely Hispanic
    la = bisg.estimate(names, pd.Series(["90022"] * 4))
    assert la.groups[la.probabilities[2].argmax()] == "hispanic"
    assert la.probabilities[2, 1] < alone.probabilities[2, 1]


def test_fallbacks_geography_only_surname_only_none(census_surnames, cfpb_attr):
    s = pd.Series(["Xqzwyv", "Smith", "Xqzwyv", None])
    g = pd.Series(["60619", "99999", "99999", "60619"])
    est = bisg.estimate(s, g)
    assert list(est.source) == ["geography", "surname", "none", "geography"]
    geo = [cfpb_attr.loc["60619", f"geo_pr_{c}"] for c in ORDER_CFPB]
    np.testing.assert_allclose(est.probabilities[0], geo, atol=1e-9)
    np.testing.assert_allclose(est.probabilities[3], geo, atol=1e-9)
    smith = hand_p_race_given_surname(census_surnames.set_index("name").loc["SMITH"])
    np.testing.assert_allclose(est.probabilities[1], np.array(smith) / sum(smith), atol=1e-12)
    assert (est.probabilities[2] == 0).all()
    d = est.diagnostics
    assert (d["both_matched"], d["geography_only"], d["surname_only"], d["unassigned"]) == (0, 2, 1, 1)
    assert d["coverage"] == pytest.approx(0.75) and d["surname_missing"] == 1


def test_tract_estimate_by_hand(census_surnames):
    idx, _, p_g_r = bisg.geography_table("tract")
    raw = pd.read_parquet(bisg.DATA_DIR / "tract_2010.parquet")
    raw = raw[raw["state"] != 72]
    nat = bisg.allocate_counts(raw).sum(axis=0)  # national adult counts by BISG group
    tract = np.array([1200, 144, 9, 11, 13, 28], dtype=float)  # 01001020100, no reallocation needed
    smith = hand_p_race_given_surname(census_surnames.set_index("name").loc["SMITH"])
    expect = hand_bisg(smith, list(tract / nat))
    est = bisg.estimate(pd.Series(["smith"]), pd.Series(["01001020100"]))
    assert est.diagnostics["geography_kind"] == "tract"
    np.testing.assert_allclose(est.probabilities[0], expect, atol=1e-9)


def test_surname_cleaning_cfpb_rules():
    s = pd.Series(
        ["O'Connor", "McDonald-Smith", "Rivera Jr.", "Muñoz", "de la Cruz", "J. Smith", "Smith III"]
    )
    first, second = bisg.clean_surnames(s)
    assert first.tolist() == ["OCONNOR", "MCDONALD", "RIVERA", "MUNOZ", "DELACRUZ", "SMITH", "SMITH"]
    assert second.iloc[1] == "SMITH"
    # the second part of a hyphenated name is used when the first is unknown
    both = bisg.estimate(pd.Series(["Xqzwyv-Garcia", "Garcia"]), pd.Series(["90022", "90022"]))
    np.testing.assert_allclose(both.probabilities[0], both.probabilities[1])


def test_numeric_and_zip4_geographies_are_accepted():
    ref = bisg.estimate(pd.Series(["Smith", "Garcia"]), pd.Series(["02134", "90022"]))
    num = bisg.estimate(pd.Series(["Smith", "Garcia"]), pd.Series([2134, 90022]))
    z4 = bisg.estimate(pd.Series(["Smith", "Garcia"]), pd.Series(["02134-1234", "90022-0001"]))
    np.testing.assert_allclose(num.probabilities, ref.probabilities)
    np.testing.assert_allclose(z4.probabilities, ref.probabilities)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Smith", "Garcia", "Lee", "Begay", "Xqzwyv", "O'Brien", None]),
            st.sampled_from(["10027", "60619", "99999", "86045", "02134", None]),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_rows_are_distributions_and_order_free(rows):
    s = pd.Series([r[0] for r in rows], dtype=object)
    g = pd.Series([r[1] for r in rows], dtype=object)
    if s.isna().all() or g.isna().all():
        with pytest.raises(InputError):
            bisg.estimate(s, g)
        return
    est = bisg.estimate(s, g)
    sums = est.probabilities.sum(axis=1)
    assert np.all((np.abs(sums - 1) < 1e-12) | (sums == 0))
    assert np.all((sums == 0) == (est.source == "none"))
    perm = np.arange(len(rows))[::-1]
    rev = bisg.estimate(s.iloc[perm].reset_index(drop=True), g.iloc[perm].reset_index(drop=True))
    np.testing.assert_allclose(rev.probabilities, est.probabilities[perm])


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("surnames", "geos", "match"),
    [
        ([None, None], ["02134", "10027"], r"surname column 'last' is entirely missing"),
        ([12, 34], ["02134", "10027"], r"holds numbers"),
        (["A123", "B456"], ["02134", "10027"], r"containing digits.*id or code column"),
        (["Smith", "Lee"], ["2134", "10027"], r"wrong format.*'2134'"),
        (["Smith", "Lee"], ["ABCDE", "10027"], r"wrong format"),
        (["Smith", "Lee"], ["02134", "01001020100"], r"mixes 5-digit ZIP codes"),
        (["Smith", "Lee"], [None, None], r"geography column 'zip' is entirely missing"),
        (["Smith", "Lee"], [2134.5, 10027], r"non-integer"),
        (["Smith", "Lee"], [123456, 10027], r"not 11-digit tract codes|not 5-digit"),
    ],
)
def test_bad_inputs_name_file_field_and_expectation(surnames, geos, match):
    with pytest.raises(InputError, match=match) as ei:
        bisg.estimate(pd.Series(surnames, name="last"), pd.Series(geos, name="zip"), source="apps.csv")
    msg = str(ei.value)
    assert msg.startswith("apps.csv: field 'bisg.") and "Expected:" in msg


def test_kind_mismatch_is_an_error():
    with pytest.raises(InputError, match=r"11-digit census tract GEOIDs"):
        bisg.estimate(pd.Series(["Smith"]), pd.Series(["02134"], name="geo"), kind="tract")


def _bisg_spec(tmp_path: Path, frame: pd.DataFrame, **protected) -> Path:
    frame.to_csv(tmp_path / "apps.csv", index=False)
    spec = yaml.safe_load((BISG_FIX / "audit.yaml").read_text())
    spec["dataset"] = "apps.csv"
    spec["protected"] = [{"name": "race", "bisg": {"surname": "last_name", "geography": "zip"}, **protected}]
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_cli_exit_2_for_bad_geography_and_bad_reference(tmp_path):
    frame = pd.read_csv(BISG_FIX / "applicants.csv", dtype={"zip": str})
    bad = frame.copy()
    bad.loc[:5, "zip"] = "0213X"
    r = run_cli("audit", str(_bisg_spec(tmp_path, bad, reference="white")), "--out", str(tmp_path / "o1"))
    assert r.returncode == 2, r.stderr
    assert "apps.csv" in r.stderr and "bisg.geography (zip)" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(
        "audit", str(_bisg_spec(tmp_path, frame, reference="caucasian")), "--out", str(tmp_path / "o2")
    )
    assert r.returncode == 2 and "protected[race].reference" in r.stderr and "white, black" in r.stderr
    assert not (tmp_path / "o1" / "audit.json").exists() and not (tmp_path / "o2" / "audit.json").exists()


# --------------------------------------------------------------------------- end to end: weighted metrics


@pytest.fixture(scope="module")
def bisg_audit(tmp_path_factory):
    out = tmp_path_factory.mktemp("bisg_audit")
    r = run_cli("audit", str(BISG_FIX / "audit.yaml"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    return json.loads((out / "audit.json").read_text())


def test_fixture_audit_reports_estimated_attribute_with_weighted_counts(bisg_audit):
    frame = pd.read_csv(BISG_FIX / "applicants.csv", dtype={"zip": str})
    est = bisg.estimate(frame["last_name"], frame["zip"])
    p = est.probabilities
    y = frame["default_12m"].to_numpy()
    rep = bisg_audit["sections"]["representation"]["attributes"]["race"]
    assert rep["estimated"] is True and rep["method"].startswith("BISG")
    assert rep["diagnostics"]["unassigned"] == int((p.sum(axis=1) == 0).sum())
    for j, g in enumerate(est.groups):
        assert rep["groups"][g]["n"] == pytest.approx(p[:, j].sum(), rel=1e-9)
        assert rep["groups"][g]["event_rate"] == pytest.approx((p[:, j] * y).sum() / p[:, j].sum(), rel=1e-9)
    # fairness: AR_g = Σ p_ig·favorable_i / Σ p_ig (REGULATORY.md §(b).4, CFPB probability weighting)
    fair = bisg_audit["sections"]["fairness"]["attributes"]["race"]["groups"]
    fav = (frame["score"].to_numpy() < 0.3).astype(float)
    rates = {g: (p[:, j] * fav).sum() / p[:, j].sum() for j, g in enumerate(est.groups)}
    checked = 0
    for j, (g, rate) in enumerate(rates.items()):
        if fair[g]["suppressed"]:  # below min_group_size (expected count): metrics withheld
            assert p[:, j].sum() < 30 and fair[g]["favorable_rate"] is None
            continue
        assert fair[g]["favorable_rate"] == pytest.approx(rate, rel=1e-9)
        assert fair[g]["air"] == pytest.approx(rate / rates["white"], rel=1e-9)
        checked += 1
    assert checked >= 4
    texts = " ".join(f["detail"] for f in bisg_audit["findings"] if f["section"] == "representation")
    assert "BISG" in texts or "estimated" in texts


def test_error_counts_rows_not_distinct_values():
    with pytest.raises(InputError, match=r"has 3 value\(s\) in the wrong format"):
        bisg.estimate(pd.Series(["Smith"] * 4), pd.Series(["ABCDE", "ABCDE", "1234", "10027"], name="zip"))
    with pytest.raises(InputError, match=r"ZIP codes \(2\) and 11-digit tracts \(1\)"):
        bisg.estimate(pd.Series(["Smith"] * 3), pd.Series(["02134", "02134", "01001020100"], name="zip"))
