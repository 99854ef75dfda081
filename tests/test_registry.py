"""The registry parses every descriptor into typed fields at load, and refuses a bad one naming
the file and the key."""

from __future__ import annotations

import pytest

from opendepot.registry import (
    Consolidated,
    ErrorBudget,
    RegistryError,
    ShrinkGuard,
    load_descriptor,
    load_registry,
    parse_dataset,
)

HOSP = "donnees-hospitalieres-covid19"


def test_every_shipped_descriptor__loads_typed():
    registry = load_registry()
    assert len(registry.datasets) == 18
    cc = registry.get("chiffres-cles")
    # declared rows limit; areas keep the default (the guard is on by default)
    assert cc.shrink_guard == ShrinkGuard(max_row_loss_percent=20.0, max_area_loss_percent=50.0)
    assert cc.error_budget == ErrorBudget(max_bad_rows_percent=1.0, exact_duplicate_rows="leave-out")
    assert isinstance(cc.consolidated, Consolidated)
    assert cc.consolidated.key == ("date", "maille_code")
    assert cc.consolidated.priority_order[0] == "ministere-sante"
    assert (cc.consolidated.then_field, cc.consolidated.then_last) == ("producer", ("opencovid19-fr",))
    assert [f.dataset for f in cc.feeds] == [HOSP]
    assert cc.feeds[0].filter == {"sexe": 0} and cc.feeds[0].templates == {"maille_code": "DEP-{dep}"}
    assert cc.mode_of("opencovid19-fr") == "snapshot" and cc.mode_of("ministere-sante") == "append"
    assert cc.yaml is not None and cc.yaml.code_column == "maille_code"
    hosp = registry.get(HOSP)
    assert hosp.max_bad_rows_percent == 0.5 and hosp.error_budget.exact_duplicate_rows == "reject"
    assert hosp.shrink_guard == ShrinkGuard(50, 50)  # none declared: the default guard
    assert hosp.consolidated is None and hosp.feeds == ()
    assert hosp.excel_sheet == 0 and hosp.yaml is None
    assert registry.get("sp-pos-quot-dep").shrink_guard == ShrinkGuard(20.0, 5.0)


def _refused(descriptor: dict) -> str:
    with pytest.raises(RegistryError) as caught:
        parse_dataset(descriptor, f"{HOSP}.json")
    return str(caught.value)


def test_unknown_key__is_refused_naming_file_and_key():
    d = load_descriptor(HOSP)
    d["shrinkGard"] = {"maxRowLossPercent": 20}  # a typo
    assert _refused(d) == f"{HOSP}.json: shrinkGard: unknown key"


def test_unknown_nested_key__is_refused_with_its_path():
    d = load_descriptor(HOSP)
    d["errorBudget"]["maxBadRowPercent"] = 2
    assert _refused(d) == f"{HOSP}.json: errorBudget.maxBadRowPercent: unknown key"
    d = load_descriptor(HOSP)
    d["schema"]["fields"][2]["contraints"] = {}
    assert _refused(d) == f"{HOSP}.json: schema.fields[2].contraints: unknown key"


def test_wrong_type__is_refused_naming_the_key_and_value():
    d = load_descriptor(HOSP)
    d["errorBudget"]["maxBadRowsPercent"] = "0.5"
    assert _refused(d) == (
        f"{HOSP}.json: errorBudget.maxBadRowsPercent: expected a number, got '0.5'")
    d = load_descriptor(HOSP)
    d["provenance"] = "yes"
    assert _refused(d) == f"{HOSP}.json: provenance: expected true or false, got 'yes'"
    d = load_descriptor(HOSP)
    d["mode"] = "snapshots"
    assert _refused(d) == f"{HOSP}.json: mode: expected one of snapshot, append, got 'snapshots'"
    d = load_descriptor(HOSP)
    d["measures"]["hosp"] = "stocks"
    assert "measures.hosp: expected one of stock, cumulative, incidence, rate, distinct" in _refused(d)


def test_names_outside_the_schema__are_refused():
    d = load_descriptor(HOSP)
    d["measures"]["lits"] = "stock"
    assert _refused(d) == f"{HOSP}.json: measures.lits: not a field"
    d = load_descriptor("chiffres-cles")
    d["feeds"][0]["producer"] = "opencovid19-fr"  # an uploading producer
    with pytest.raises(RegistryError, match="may also upload"):
        parse_dataset(d)


def test_missing_required_key__is_refused():
    d = load_descriptor(HOSP)
    del d["producers"]
    assert _refused(d) == f"{HOSP}.json: producers: missing (expected a list of texts)"


def test_shrink_guard_and_excel_sheet__parse_from_a_descriptor():
    d = load_descriptor(HOSP)
    d["shrinkGuard"] = {"maxAreaLossPercent": 5, "note": "why"}
    d["excel"] = {"sheet": "Données"}
    ds = parse_dataset(d)
    assert ds.shrink_guard == ShrinkGuard(max_row_loss_percent=50.0, max_area_loss_percent=5.0)
    assert ds.excel_sheet == "Données"
    d["excel"] = {"sheet": 1.5}
    assert _refused(d) == f"{HOSP}.json: excel.sheet: expected a sheet name or position"
