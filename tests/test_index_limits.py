"""The index refuses what it cannot parse with a 400, whatever the size (issue 13, item 9).

Query values of any length and shape (5,000 digits, ``1e400``, huge negative numbers, NUL,
100,000 characters) on every route that reads ``page``/``page_size``/``sort``/``level``: a 400
with the error envelope and a short message, never a 500; the parsers (``opendepot.paging``)
tested directly as well.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.index_api import app as index_api
from opendepot import index, paging
from opendepot.config import Settings
from test_index_api import (
    BUCKET,
    COVID,
    FILES,
    NOW,
    CountingStore,
    body,
    catalog_entry,
    covid_manifest,
    get,
    put_catalog,
    put_json,
    rea_entry,
)

PAGED = ("/api/1/datasets/", f"/api/1/datasets/{COVID}/versions/")
HUGE = "9" * 5000


@pytest.fixture(autouse=True)
def configured() -> None:
    store = CountingStore()
    put_catalog(store, catalog_entry(), rea_entry())
    put_json(store, f"{COVID}/manifest.json", covid_manifest())
    settings = Settings(published_bucket=BUCKET, public_base_url=FILES, api_base_url="")
    index_api.configure(store, settings, clock=lambda: NOW)


def bad(path: str, query: str) -> dict[str, Any]:
    r = get(path, query)
    assert r["statusCode"] == 400, (path, query[:50], r["statusCode"])
    assert r["headers"]["Cache-Control"] == "no-cache"
    doc = body(r)
    assert doc["status"] == 400
    assert len(doc["message"]) < 200
    return doc  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", PAGED)
@pytest.mark.parametrize(
    ("query", "message"),
    [
        (f"page={HUGE}",
         f"page='{'9' * 40}'... must be at least 1 and at most 9007199254740991"),
        ("page=9007199254740992",  # 2**53: past the largest integer every JSON reader keeps
         "page=9007199254740992 must be at least 1 and at most 9007199254740991"),
        (f"page_size={HUGE}", f"page_size='{'9' * 40}'... must be at least 1 and at most 100"),
        ("page_size=1e400", "page_size='1e400' is not an integer"),
        (f"page=-{HUGE}", f"page='-{'9' * 39}'... is not an integer"),
        (f"page_size=-{HUGE}", f"page_size='-{'9' * 39}'... is not an integer"),
        ("page=%00", "page='\\x00' is not an integer"),
        ("page=1%2B1", "page='1+1' is not an integer"),
        ("page=" + "0" * 5000, "page=0 must be at least 1"),
    ],
)
def test_unparseable_page__400_short_message(path: str, query: str, message: str) -> None:
    assert bad(path, query)["message"] == message


def test_leading_zeros__the_number_they_write() -> None:
    r = get("/api/1/datasets/", "page_size=" + "0" * 5000 + "1")
    assert r["statusCode"] == 200
    assert body(r)["page_size"] == 1
    assert len(body(r)["data"]) == 1


def test_largest_page__200_empty_page_not_an_error() -> None:
    r = get("/api/1/datasets/", "page=9007199254740991")
    assert r["statusCode"] == 200
    doc = body(r)
    assert (doc["data"], doc["total"], doc["next_page"]) == ([], 2, None)
    assert doc["previous_page"].endswith("page=9007199254740990")


def test_long_sort_and_level__400_with_the_value_cut() -> None:
    doc = bad("/api/1/datasets/", "sort=" + "x" * 100_000)
    assert doc["message"].startswith(f"sort='{'x' * 40}'... is not one of title")
    doc = bad(f"/api/1/datasets/{COVID}/schema/", "level=" + "y" * 100_000)
    assert doc["message"] == f"level='{'y' * 40}'... is not one of dep, reg, fra"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60) | st.integers().map(str) | st.floats().map(str))
def test_any_page_value__a_number_or_a_bad_request(raw: str) -> None:
    try:
        query = paging.parse_page_query([("page", raw), ("page_size", raw)])
    except index.BadRequest as exc:
        assert len(str(exc)) < 200
    else:
        if raw.strip():
            assert query.page == query.page_size == int(raw.strip()) <= 100
        else:  # an empty value counts as absent
            assert (query.page, query.page_size) == (1, index.DEFAULT_PAGE_SIZE)
