"""The row-level API's terms (api-tabular's), without its engine: what the HTTP layer declares
in the OpenAPI document at import time, so the index function loads pyarrow only when a row
query comes (``opendepot.tabular`` runs them; issue 17: the index's cold start)."""

from __future__ import annotations

PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 50
"""api-tabular's ``PAGE_SIZE_DEFAULT`` and ``PAGE_SIZE_MAX``."""
EXPORT_MAX_ROWS = 50_000
"""Rows an export may hold (api-tabular's ``BATCH_SIZE``; more: 403, download the file)."""
FILTERS = ("exact", "differs", "isnull", "isnotnull", "contains", "notcontains", "in", "notin",
           "less", "greater", "strictly_less", "strictly_greater")
"""The filter operators, as api-tabular names them."""
