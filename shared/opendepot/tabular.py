"""Row-level queries over a published Parquet file, in data.gouv.fr api-tabular's terms.

api-tabular (``datagouv/api-tabular``) answers ``/api/resources/{rid}/data/`` from PostgREST;
here the same query string runs over the Parquet copy of a resource's current version:

- ``parse_query``: the query string (pairs as received) -> a typed ``Plan`` against the file's
  Arrow schema: ``{column}__{operator}={value}`` filters (``exact``, ``differs``, ``isnull``,
  ``isnotnull``, ``contains``, ``notcontains``, ``in``, ``notin``, ``less``, ``greater``,
  ``strictly_less``, ``strictly_greater``; values parsed to the column's type: ISO dates,
  integers, numbers in ASCII digits within the column's range, ``true``/``false``:
  ``parse_value``), ``{column}__sort=asc|desc`` (in the order given), ``columns=a,b`` (at least
  one name), ``page`` (from 1) and ``page_size`` (1 to ``PAGE_SIZE_MAX``). Anything else, an
  unknown column, a value of the wrong type or out of range: ``index.BadRequest`` naming it.
- ``ParquetSource``: one published object read through the storage port. Up to
  ``WHOLE_READ_MAX_BYTES`` the object is read with one GET and kept (``CACHE_BYTES`` in all,
  least recently used out: a version's file never changes); larger ones are read by ranges (the
  last ``TAIL_BYTES`` once, for the footer, then the column chunks a row group needs, coalesced
  by Arrow's pre-buffering) when the store has ``get_range``.
- ``query``: one page and the total. The filter is one Arrow expression: ``pyarrow.dataset``
  keeps only the row groups whose statistics may match (predicate pushdown; ``Result`` says how
  many were read), then rows are filtered, sorted (nulls last ascending, first descending, as
  PostgreSQL; ties by row) and cut. ``__id`` is the row's 1-based position in the file.
- ``export``: the whole selection in batches of ``EXPORT_BATCH_ROWS`` rows (one row group in
  memory at a time), at most ``EXPORT_MAX_ROWS`` rows (api-tabular's own limit).
- ``jsonable``: rows as JSON values (dates as ISO strings, nulls as null, NaN as null).
"""

from __future__ import annotations

import bisect
import io
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from opendepot.index import BadRequest, TooLarge
from opendepot.paging import positive_integer, shown
from opendepot.storage import Store
from opendepot.tabular_params import EXPORT_MAX_ROWS as EXPORT_MAX_ROWS  # the API's terms
from opendepot.tabular_params import FILTERS as FILTERS
from opendepot.tabular_params import PAGE_SIZE_DEFAULT as PAGE_SIZE_DEFAULT
from opendepot.tabular_params import PAGE_SIZE_MAX as PAGE_SIZE_MAX

EXPORT_BATCH_ROWS = 10_000
"""Rows formatted at once in an export."""
ROW_ID = "__id"
"""The row number column (api-tabular's, from 1, in the file's order)."""
NO_VALUE = ("isnull", "isnotnull")
AGGREGATORS = ("groupby", "count", "avg", "min", "max", "sum")
"""api-tabular's aggregators (on an allow-list of resources there): refused here."""
WHOLE_READ_MAX_BYTES = 8 << 20
"""Objects up to this size are read whole (one GET) and kept; larger ones by ranges."""
CACHE_BYTES = 32 << 20
"""Bytes of whole objects kept in memory (per process)."""
TAIL_BYTES = 64 << 10
"""Bytes read at the end of a ranged object, once: Arrow's first footer read."""
COLUMN_CACHE_BYTES = 64 << 20
"""Bytes of decoded columns kept in memory (per process): a version's file never changes, so
a column chunk is decoded once (the Lambda has 512 MB)."""


# --- the plan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    """One ``{column}__{op}={value}`` parameter, its value(s) parsed to the column's type."""

    column: str
    op: str
    values: tuple[Any, ...]
    param: str
    """The parameter as received (named in errors)."""

    def expression(self, arrow_type: pa.DataType) -> ds.Expression:
        """The Arrow expression (PostgREST's semantics: ``differs`` keeps nulls, as ``IS
        DISTINCT FROM``; ``notin`` and ``notcontains`` drop them)."""
        f = ds.field(self.column)
        v = self.values[0] if self.values else None
        if self.op in ("contains", "notcontains"):
            text = f if _is_text(arrow_type) else f.cast(pa.string())
            hit = pc.match_substring(text, pattern=str(v), ignore_case=True)
            return hit if self.op == "contains" else f.is_valid() & ~hit
        exprs: dict[str, Any] = {
            "exact": lambda: f == v,
            "differs": lambda: (f != v) | f.is_null(),
            "isnull": lambda: f.is_null(),
            "isnotnull": lambda: f.is_valid(),
            "in": lambda: f.isin(pa.array(self.values, arrow_type)),
            "notin": lambda: f.is_valid() & ~f.isin(pa.array(self.values, arrow_type)),
            "less": lambda: f <= v,
            "greater": lambda: f >= v,
            "strictly_less": lambda: f < v,
            "strictly_greater": lambda: f > v,
        }
        expr: ds.Expression = exprs[self.op]()
        return expr


@dataclass(frozen=True)
class Plan:
    """A parsed query against one file's schema."""

    schema: pa.Schema
    """The file's Arrow schema."""
    filters: tuple[Filter, ...] = ()
    sorts: tuple[tuple[str, bool], ...] = ()
    """(column, descending), in the order given."""
    columns: tuple[str, ...] = ()
    """Output columns, ``ROW_ID`` first unless ``columns=`` chose."""
    page: int = 1
    page_size: int = PAGE_SIZE_DEFAULT
    params: tuple[tuple[str, str], ...] = ()
    """The query as received (for the pager links)."""

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    def expression(self) -> ds.Expression | None:
        """Every filter, and-ed (None: no filter)."""
        out: ds.Expression | None = None
        for f in self.filters:
            e = f.expression(self.schema.field(f.column).type)
            out = e if out is None else out & e
        return out

    def filter_columns(self) -> list[str]:
        return list(dict.fromkeys(f.column for f in self.filters))


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def parse_query(pairs: Sequence[tuple[str, str]], schema: pa.Schema, paged: bool = True) -> Plan:
    """Read an api-tabular query string against ``schema`` (see module docstring). ``paged``
    False (exports): ``page`` and ``page_size`` are refused like any unknown parameter.

    Raises:
        BadRequest: a parameter that is not one of the above, an unknown column, an operator a
            column's type does not allow, a value that is not of the column's type, ``page`` or
            ``page_size`` out of range; the message names it.
    """
    filters: list[Filter] = []
    sorts: list[tuple[str, bool]] = []
    columns: tuple[str, ...] = (ROW_ID, *schema.names)
    page, size = 1, PAGE_SIZE_DEFAULT
    for name, value in pairs:
        if paged and name in ("page", "page_size"):
            n = positive_integer(name, value)
            if name == "page_size" and n > PAGE_SIZE_MAX:
                raise BadRequest(f"page_size: {n} is above the maximum, {PAGE_SIZE_MAX}")
            page, size = (n, size) if name == "page" else (page, n)
        elif name == "columns":
            columns = _columns(value, schema) if value.strip() else (ROW_ID, *schema.names)
            if not columns:
                raise BadRequest(f"columns={shown(value)} names no column (columns: "
                                 f"{', '.join([ROW_ID, *schema.names])})")
        elif "__" in name:
            column, op = name.rsplit("__", 1)
            _known(column, schema, name)
            if op.lower() == "sort":
                if value not in ("asc", "desc"):
                    raise BadRequest(f"{name}: {value!r} is not asc or desc")
                sorts.append((column, value == "desc"))
            else:
                filters.append(_filter(name, column, op.lower(), value, schema))
        else:
            raise BadRequest(f"argument {name}={value!r} could not be parsed: expected "
                             "{column}__{operator}=value, columns, page or page_size")
    return Plan(schema, tuple(filters), tuple(sorts), columns, page, size, tuple(pairs))


def _known(column: str, schema: pa.Schema, param: str) -> None:
    if column not in schema.names:
        raise BadRequest(f"{param}: no column {column!r} (columns: {', '.join(schema.names)})")


def _columns(value: str, schema: pa.Schema) -> tuple[str, ...]:
    names = tuple(c.strip() for c in value.split(",") if c.strip())
    for c in names:
        if c != ROW_ID:
            _known(c, schema, "columns")
    return tuple(dict.fromkeys(names))


def _filter(name: str, column: str, op: str, value: str, schema: pa.Schema) -> Filter:
    if op in AGGREGATORS:
        raise BadRequest(f"{name}: aggregation ({op}) is not available on this API")
    if op not in FILTERS:
        raise BadRequest(f"{name}: unknown operator {op!r} (operators: {', '.join(FILTERS)}, "
                         "sort)")
    arrow_type = schema.field(column).type
    if op in NO_VALUE:
        return Filter(column, op, (), name)
    if op in ("contains", "notcontains"):
        if not (_is_text(arrow_type) or pa.types.is_temporal(arrow_type)):
            raise BadRequest(f"{name}: {op} applies to text and date columns, not to {column} "
                             f"({type_name(arrow_type)})")
        return Filter(column, op, (value,), name)
    raw = value.split(",") if op in ("in", "notin") else [value]
    return Filter(column, op, tuple(parse_value(name, column, v, arrow_type) for v in raw), name)


def type_name(t: pa.DataType) -> str:
    """The Table Schema type of an Arrow type (``integer``, ``number``, ``date``...)."""
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "datetime"
    return "string"


_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+)?(Z|[+-][0-9]{2}:?[0-9]{2})?")


def type_range(t: pa.DataType) -> tuple[Any, Any] | None:
    """The smallest and largest value of a numeric Arrow type (None: not an integer or
    floating type): ``int8`` -128..127, ``uint32`` 0..4294967295, ``float64`` +-1.797e308."""
    if pa.types.is_integer(t):
        info = np.iinfo(t.to_pandas_dtype())
        return int(info.min), int(info.max)
    if pa.types.is_floating(t):
        finfo = np.finfo(t.to_pandas_dtype())
        return float(finfo.min), float(finfo.max)
    return None


def parse_value(param: str, column: str, raw: str, t: pa.DataType) -> Any:
    """``raw`` as a value of type ``t``: integers and numbers in ASCII digits (``+``/``-``,
    numbers with ``.`` and an exponent; no ``nan``/``inf``, no other script's digits) within
    the type's range (``type_range``), dates ``YYYY-MM-DD``, times ISO 8601, ``true``/``false``.

    Raises:
        BadRequest: naming ``param``, the value (cut to ``paging.ECHO_CHARS``) and ``column``:
            not of the type, or out of the type's range.
    """
    name = type_name(t)
    try:
        value = _parsed(raw, t)
    except (ValueError, KeyError, OverflowError, pa.ArrowException):
        raise BadRequest(f"{param}: {shown(raw)} is not a valid {name} (column {column} is "
                         f"{name})") from None
    bounds = type_range(t)
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise BadRequest(f"{param}: {shown(raw)} is out of range for column {column} ({name}, "
                         f"{t}: {bounds[0]} to {bounds[1]})")
    return value


def _parsed(raw: str, t: pa.DataType) -> Any:
    """``raw`` as a Python value of type ``t`` (unchecked range). Raises ValueError, KeyError."""
    if pa.types.is_integer(t):
        if not _INTEGER.fullmatch(raw):
            raise ValueError(raw)
        digits = raw.lstrip("+-").lstrip("0")
        if len(digits) > 20:  # beyond any 64-bit integer: never int() of thousands of digits
            return -(10**21) if raw.startswith("-") else 10**21
        return int(raw)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        if not _NUMBER.fullmatch(raw):
            raise ValueError(raw)
        return float(raw)  # 1e999 is inf: out of range
    if pa.types.is_boolean(t):
        return {"true": True, "false": False}[raw.lower()]
    if pa.types.is_date(t):
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    if pa.types.is_timestamp(t):
        if not _DATETIME.fullmatch(raw):
            raise ValueError(raw)
        return pa.scalar(datetime.fromisoformat(raw.replace("Z", "+00:00")), t)
    return raw


# --- reading the published object --------------------------------------------------------------


@dataclass
class Reads:
    """What a source read from the store (for tests and the bench)."""

    gets: int = 0
    """Requests made (whole GETs and ranged GETs)."""
    bytes: int = 0


class Lru:
    """Values kept up to ``limit`` bytes in all, least recently used out (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0
        self._items: OrderedDict[tuple[Any, ...], tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: tuple[Any, ...], value: Any, size: int) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = (value, size)
            self.size += size
            while self.size > self.limit and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self.size -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.size = 0


_bodies = Lru(CACHE_BYTES)
"""Whole objects by ``ParquetSource.identity``."""
_tails = Lru(CACHE_BYTES // 8)
"""(start, bytes) of the end of ranged objects by ``ParquetSource.identity``."""
_decoded = Lru(COLUMN_CACHE_BYTES)
"""Decoded columns by (*``ParquetSource.identity``, row group, column)."""


def forget_cache() -> None:
    """Drop every kept object and decoded column (tests, the bench: a cold start)."""
    for lru in (_bodies, _tails, _decoded):
        lru.clear()


@dataclass
class ParquetSource:
    """One published Parquet object (immutable: a version's file), read through ``store``."""

    store: Store
    bucket: str
    key: str
    size: int
    """The object's size in bytes (from the manifest)."""
    sha256: str = ""
    """Its SHA-256 (from the manifest): with the key, what the caches know it by."""
    reads: Reads = field(default_factory=Reads)

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.bucket, self.key, self.sha256)

    @property
    def ranged(self) -> bool:
        """Read by ranges (large object, and the store can)."""
        return self.size > WHOLE_READ_MAX_BYTES and hasattr(self.store, "get_range")

    def open(self) -> pa.NativeFile:
        """A new file over the object (one per query: readers keep a position)."""
        if self.ranged:
            return pa.PythonFile(_RangedFile(self), mode="r")
        return pa.BufferReader(self._whole())

    def fragment(self) -> ds.ParquetFileFragment:
        """The file as one ``pyarrow.dataset`` fragment (footer read)."""
        return ds.ParquetFileFormat().make_fragment(self.open())

    def _whole(self) -> bytes:
        k = self.identity
        body: bytes | None = _bodies.get(k)
        if body is None:
            body = self.store.get(self.bucket, self.key)
            self.reads.gets += 1
            self.reads.bytes += len(body)
            _bodies.put(k, body, len(body))
        return body

    def read_range(self, start: int, length: int) -> bytes:
        """Bytes of the object from ``start`` (its last ``TAIL_BYTES`` read once and kept)."""
        k = self.identity
        tail = _tails.get(k)
        if tail is None and start + length > self.size - TAIL_BYTES:
            t0 = max(0, self.size - TAIL_BYTES)
            tail = (t0, self._get_range(t0, self.size - t0))
            _tails.put(k, tail, len(tail[1]))
        if tail is not None and start >= tail[0]:
            data: bytes = tail[1][start - tail[0]:start - tail[0] + length]
            return data
        return self._get_range(start, length)

    def _get_range(self, start: int, length: int) -> bytes:
        data: bytes = self.store.get_range(self.bucket, self.key, start, length)  # type: ignore[attr-defined]
        self.reads.gets += 1
        self.reads.bytes += len(data)
        return data


class _RangedFile(io.RawIOBase):
    """A read-only, seekable file over a ``ParquetSource`` by ranged reads."""

    def __init__(self, source: ParquetSource) -> None:
        super().__init__()
        self._source, self._pos = source, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._source.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), max(0, self._source.size - self._pos))
        if n == 0:
            return 0
        data = self._source.read_range(self._pos, n)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


# --- running a plan -----------------------------------------------------------------------------


@dataclass
class Result:
    """One page of a query."""

    rows: pa.Table
    """The page's rows, the plan's columns (``jsonable`` makes them JSON values)."""
    total: int
    """Rows matching the filters, in the whole file."""
    row_groups_read: int
    row_groups_total: int


@dataclass
class _Groups:
    """The file's row groups: fragments of those the filter may match, and where each starts."""

    source: ParquetSource
    kept: list[ds.ParquetFileFragment]
    starts: list[int]
    """First row (0-based) of every row group of the file."""
    total: int

    @classmethod
    def of(cls, source: ParquetSource, expr: ds.Expression | None) -> _Groups:
        frag = source.fragment()
        meta = frag.metadata
        starts, at = [], 0
        for i in range(meta.num_row_groups):
            starts.append(at)
            at += meta.row_group(i).num_rows
        kept = frag.split_by_row_group(filter=expr) if expr is not None else \
            frag.split_by_row_group()
        return cls(source, list(kept), starts, meta.num_row_groups)

    def columns(self, frag: ds.ParquetFileFragment, names: Sequence[str]) -> pa.Table:
        """A row group's columns ``names`` (``ROW_ID`` made, never read), whole: columns
        already decoded are taken from memory, the others decoded in one read."""
        group = frag.row_groups[0]
        wanted = [c for c in dict.fromkeys(names) if c != ROW_ID]
        where = (*self.source.identity, group.id)
        found = {c: _decoded.get((*where, c)) for c in wanted}
        missing = [c for c, v in found.items() if v is None]
        if missing:
            decoded = frag.to_table(columns=missing)
            for c in missing:
                found[c] = decoded[c]
                _decoded.put((*where, c), decoded[c], decoded[c].nbytes)
        start = self.starts[group.id] + 1
        ids = pa.array(np.arange(start, start + group.num_rows, dtype=np.int64))
        return pa.table([*(found[c] for c in wanted), ids], names=[*wanted, ROW_ID])

    def read(self, frag: ds.ParquetFileFragment, names: Sequence[str],
             expr: ds.Expression | None, by: Sequence[str] = ()) -> pa.Table:
        """A row group's rows that pass ``expr`` (over columns ``by``), columns ``names`` and
        ``ROW_ID``: the filter runs on ``by`` alone, the other columns are only taken at the
        rows it keeps."""
        if expr is None:
            return self.columns(frag, names)
        kept = self.columns(frag, by).filter(expr)
        if set(names) <= {*by, ROW_ID}:
            return kept.select(list(dict.fromkeys([*names, ROW_ID])))
        start = self.starts[frag.row_groups[0].id] + 1
        at = pc.subtract(kept[ROW_ID], pa.scalar(start, pa.int64()))
        return self.columns(frag, names).take(at)


def query(source: ParquetSource, plan: Plan) -> Result:
    """One page of ``plan`` over ``source`` and the total (see module docstring)."""
    expr = plan.expression()
    groups = _Groups.of(source, expr)
    if plan.sorts:
        ids, total = _sorted_ids(groups, plan, expr, plan.offset + plan.page_size)
        page = ids.slice(plan.offset, plan.page_size)
        rows = _rows_by_id(groups, page, plan.columns)[0].select(list(plan.columns)) \
            if len(page) else _concat([], plan)  # no match, or a page past the end
        return Result(rows, total, len(groups.kept), groups.total)
    lo, hi = plan.offset, plan.offset + plan.page_size
    parts: list[pa.Table] = []
    seen = read = 0
    for frag in groups.kept:
        n = frag.row_groups[0].num_rows
        if expr is None:  # no filter: only the row groups of the page are read
            if seen < hi and seen + n > lo:
                parts.append(groups.read(frag, plan.columns, None).slice(
                    max(0, lo - seen), hi - max(lo, seen)))
                read += 1
            seen += n
            continue
        filling = seen < hi  # past the page, only the filter's columns, to count
        table = groups.read(frag, plan.columns if filling else [ROW_ID], expr,
                            plan.filter_columns())
        read += 1
        if filling and seen + table.num_rows > lo:
            parts.append(table.slice(max(0, lo - seen), hi - max(lo, seen)))
        seen += table.num_rows
    return Result(_concat(parts, plan), seen, read, groups.total)


def _concat(parts: list[pa.Table], plan: Plan) -> pa.Table:
    if parts:
        return pa.concat_tables(parts).select(list(plan.columns))
    schema = pa.schema([pa.field(ROW_ID, pa.int64()) if c == ROW_ID else plan.schema.field(c)
                        for c in plan.columns])
    return schema.empty_table()


def _sorted_ids(groups: _Groups, plan: Plan, expr: ds.Expression | None,
                k: int | None = None) -> tuple[pa.Array, int]:
    """The ``ROW_ID`` of the matching rows in the plan's order (only the first ``k`` when
    given: a selection, not a full sort), and how many rows match."""
    sort_cols = [c for c, _ in plan.sorts]
    parts = [groups.read(f, sort_cols, expr, plan.filter_columns()) for f in groups.kept]
    if not parts:
        return pa.array([], pa.int64()), 0
    table = pa.concat_tables(parts)
    keys: list[tuple[str, str]] = []
    for i, (column, desc) in enumerate(plan.sorts):
        order = "descending" if desc else "ascending"
        if table[column].null_count:  # nulls last ascending, first descending
            table = table.append_column(f"__null{i}", pc.is_null(table[column]))
            keys.append((f"__null{i}", order))
        keys.append((column, order))
    keys.append((ROW_ID, "ascending"))  # ties: in the file's order
    if k is not None and k < table.num_rows:
        order = pc.select_k_unstable(table, k, sort_keys=keys)
    else:
        order = pc.sort_indices(table, sort_keys=keys)
    return table[ROW_ID].take(order).combine_chunks(), table.num_rows


def _rows_by_id(groups: _Groups, ids: pa.Array, columns: Sequence[str]) -> tuple[pa.Table, int]:
    """The rows whose ``ROW_ID`` are ``ids``, in that order, and how many row groups were read."""
    wanted = ids.to_pylist()
    by_group: dict[int, list[int]] = {}
    for i in wanted:
        g = bisect.bisect_right(groups.starts, i - 1) - 1
        by_group.setdefault(g, []).append(i)
    parts = []
    for frag in groups.kept:
        g = frag.row_groups[0].id
        if g in by_group:
            table = groups.columns(frag, columns)
            local = pa.array([i - 1 - groups.starts[g] for i in by_group[g]], pa.int64())
            parts.append(table.take(local))
    if not parts:
        return pa.schema([pa.field(ROW_ID, pa.int64())]).empty_table(), 0
    table = pa.concat_tables(parts)
    where = pc.index_in(ids, value_set=table[ROW_ID])
    return table.take(where), len(parts)


def export(source: ParquetSource, plan: Plan) -> Iterator[pa.Table]:
    """Every row of ``plan`` (no paging), in batches of at most ``EXPORT_BATCH_ROWS`` rows.

    Raises:
        TooLarge: more than ``EXPORT_MAX_ROWS`` rows (raised before the first batch when
            sorted, else when the count passes the limit).
    """
    expr = plan.expression()
    groups = _Groups.of(source, expr)
    if plan.sorts:
        ids, total = _sorted_ids(groups, plan, expr)
        _check_export(total)
        for start in range(0, total, EXPORT_BATCH_ROWS):
            rows, _ = _rows_by_id(groups, ids.slice(start, EXPORT_BATCH_ROWS), plan.columns)
            yield rows.select(list(plan.columns))
        if not total:
            yield _concat([], plan)
        return
    count = 0
    for frag in groups.kept:
        table = groups.read(frag, plan.columns, expr, plan.filter_columns()).select(
            list(plan.columns))
        count += table.num_rows
        _check_export(count)
        for start in range(0, table.num_rows, EXPORT_BATCH_ROWS):
            yield table.slice(start, EXPORT_BATCH_ROWS)
    if not count:
        yield _concat([], plan)  # the columns, no row (a CSV header alone)


def _check_export(rows: int) -> None:
    if rows > EXPORT_MAX_ROWS:
        raise TooLarge(f"the selection has more than {EXPORT_MAX_ROWS} rows: filter it "
                         "further, or download the whole file")


def jsonable(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as JSON values: dates and times as ISO 8601 strings, NaN as null."""
    columns = []
    for f, col in zip(table.schema, table.columns, strict=True):
        if pa.types.is_date(f.type):
            col = pc.cast(col, pa.string())
        elif pa.types.is_timestamp(f.type):
            fmt = "%Y-%m-%dT%H:%M:%S" + ("%z" if f.type.tz else "")
            col = pc.strftime(col, format=fmt)
        elif pa.types.is_floating(f.type):
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, f.type), col)
        columns.append(col)
    rows: list[dict[str, Any]] = pa.table(columns, names=table.column_names).to_pylist()
    return rows
