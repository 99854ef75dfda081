"""Issues as data (``opendepot.issues``): one catalogue, keyword-built issues, and reports whose
totals, ``errorsByType`` and cap always agree, built once from the final lists."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from report_invariant import assert_agrees, assert_report_agrees

from opendepot import checks
from opendepot.issues import CATALOGUE, Issue, IssueCountError, IssueList, Issues, issue
from opendepot.registry import load_cog, load_registry
from opendepot.report import build_report, issue_dict
from opendepot.validate import Validation, validate

HOSP = "donnees-hospitalieres-covid19"
SINGLE_COLUMN = "dep sexe jour hosp rea rad dc\n75 0 2020-03-24 1 1 1 1\n"
"""A header that cannot be split: a format-error, an extra label and 7 missing labels."""


def run(body: str, **kw) -> Validation:
    return validate(body.encode(), load_registry().get(HOSP), load_cog(), name="t.csv", **kw)


def test_measured_bug__nine_errors_whose_types_summed_to_eight():
    v = run(SINGLE_COLUMN)
    report = build_report(v, None, {"key": "t.csv"})
    stats = report["tasks"][0]["stats"]
    assert stats["errors"] == 9 == sum(stats["errorsByType"].values())
    assert stats["errorsByType"] == {"format-error": 1, "extra-label": 1, "missing-label": 7}
    assert [e["type"] for e in report["tasks"][0]["errors"]][:2] == ["format-error", "extra-label"]
    assert_report_agrees(report)


def test_measured_bug__capped_at_two_errors_listed_three():
    v = run(SINGLE_COLUMN, max_errors=2)
    report = build_report(v, None, {"key": "t.csv"})
    assert [e["type"] for e in report["tasks"][0]["errors"]] == ["format-error", "extra-label"]
    assert report["stats"]["errors"] == 9 and report["opendepot"]["error_limit"] == 2
    assert report["tasks"][0]["warnings"][0] == "reached error limit: 2 errors shown of 9 found"
    assert_report_agrees(report)


def test_held_upload__its_issue_first_counted_and_capped_like_any():
    body = "dep;sexe;jour;hosp;rea;rad;dc\n" + "".join(
        f"75;0;2020-03-{d:02d};x;1;1;1\n" for d in range(1, 4)) + "".join(
        f"75;0;2020-04-{d:02d};1;1;1;1\n" for d in range(1, 29))
    v = run(body, max_errors=2)  # 3 type errors, 2 listed
    shrink = issue("snapshot-shrink", now=3, what="rows", loss="90", before=30, previous="k",
                   received_at="2020-01-01T00:00:00Z", limit=50, confirm="f.confirm.csv")
    held = v.hold(shrink)
    report = build_report(held, None, {"key": "t.csv"})
    assert report["opendepot"]["status"] == "held" and report["valid"] is False
    assert [e["type"] for e in report["tasks"][0]["errors"]] == ["snapshot-shrink", "type-error"]
    assert report["tasks"][0]["stats"]["errorsByType"] == {"snapshot-shrink": 1, "type-error": 3}
    assert report["opendepot"]["rejection"].startswith("this upload has 3 rows, 90% fewer")
    assert_report_agrees(report)
    assert v.errors.total == 3  # the validation held is a new one


# Property: any issues, added or counted past the limit, and a held issue: the report agrees.

SLUGS = sorted(CATALOGUE)


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(1, 6),
       found=st.lists(st.tuples(st.sampled_from(SLUGS), st.integers(1, 4)), max_size=30),
       held=st.booleans())
def test_any_issue_list__totals_types_and_cap_agree(limit, found, held):
    issues = Issues.limited(limit)
    for n, (slug, many) in enumerate(found):
        target = issues.of(slug)
        built = min(many, target.room())  # as the checks do: built while there is room
        for _ in range(built):
            target.add(Issue(type=slug, message=f"m{n}", row_number=n + 2))
        target.count(many - built, slug)
    v = Validation(name="k", errors=issues.errors, warnings=issues.warnings)
    if held:
        v = v.hold(Issue(type="snapshot-shrink", message="held"))
    report = build_report(v, None, {"key": "k"})
    assert_report_agrees(report)
    assert report["tasks"][0]["stats"]["errors"] == sum(
        many for slug, many in found if CATALOGUE[slug].severity == "error") + held


def test_issue__message_and_note_from_the_catalogue_templates():
    one = issue("type-error", line=7, field="hosp", number=4, cell="x", expected="an integer",
                type="integer")
    assert one == Issue(type="type-error", message="Line 7, column hosp: value 'x' is not an "
                        "integer", row_number=7, field_name="hosp", field_number=4, cell="x",
                        note="type is integer")
    assert issue_dict(one)["title"] == "Type Error"
    assert issue_dict(one)["tags"] == ["#table", "#row", "#cell"]
    with pytest.raises(KeyError, match="not-a-type"):
        issue("not-a-type")
    with pytest.raises(TypeError):
        Issue("type-error", "positional")  # type: ignore[misc]


def test_catalogue__every_registered_check_emits_catalogued_types_only():
    for check in checks.CHECKS:
        assert check.emits, check.__name__
        assert set(check.emits) <= set(CATALOGUE), check.__name__
    severities = {slug: t.severity for slug, t in CATALOGUE.items()}
    assert {s for s, sev in severities.items() if sev == "warning"} == {
        "padded-code", "cumulative-decrease", "missing-day", "total-below-parts", "missing-total",
        "formula-cell", "implausible-rise", "excel-sheet", "excel-header", "excel-other-sheets",
        "excel-cached-formulas", "reuse-no-image"}


def test_issue_list__prepended_keeps_the_cap():
    full = IssueList(2)
    for n in range(3):
        full.add(Issue(type="blank-row", message=str(n)))
    first = Issue(type="source-error", message="first")
    out = full.prepended(first)
    assert [i.message for i in out.items] == ["first", "0"]
    assert out.total == 4 and out.by_type == {"blank-row": 3, "source-error": 1}
    assert dataclasses.asdict(full)["total"] == 3  # unchanged


def test_every_validation_here__agrees():
    for body in (SINGLE_COLUMN, "dep;sexe\n", "dep;sexe;jour;hosp;rea;rad;dc\n;;;;;;\n\n"):
        assert_agrees(run(body, max_errors=1))


def test_counts_that_disagree__are_refused_before_any_report_is_written():
    v = Validation(name="t.csv", errors=IssueList(2), warnings=IssueList(2))
    one = issue("source-error", detail="the file is empty")
    v.errors.items.extend([one, one, one])  # listed past the cap, without being counted
    v.errors.total = 3
    v.errors.by_type = {"source-error": 3}
    with pytest.raises(IssueCountError, match="3 kept, limit 2"):
        build_report(v, None, {"key": "t.csv"})
    v.errors.items[:] = [one, one]
    v.errors.by_type = {"source-error": 2}  # 3 counted, 2 by type: the 9-vs-8 bug
    with pytest.raises(IssueCountError, match="total 3"):
        build_report(v, None, {"key": "t.csv"})
    v.errors.by_type = {"source-error": 3}
    assert_report_agrees(build_report(v, None, {"key": "t.csv"}))
