"""Typed options of a dataset descriptor, parsed strictly by the registry.

Each record here is one block of a descriptor in ``opendepot/datasets/*.json`` (see
docs/design.md, "Dataset registry"). ``Reader`` walks a parsed JSON object and fails with a
``RegistryError`` naming the file and the key's path (``chiffres-cles.json:
shrinkGuard.maxRowLossPercent: expected a number, got 'x'``) for an unknown key or a value of the
wrong type: a bad descriptor is found when the registry loads (at cold start, and by
``make test``), never at publish time.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

Measure = Literal["stock", "cumulative", "incidence", "rate", "distinct"]
Mode = Literal["snapshot", "append"]
MEASURE_KINDS: tuple[Measure, ...] = ("stock", "cumulative", "incidence", "rate", "distinct")
"""Measure kinds a descriptor may declare (see ``opendepot.registry``, "Measure kinds")."""
MODES: tuple[Mode, ...] = ("snapshot", "append")
T = TypeVar("T")


class RegistryError(ValueError):
    """A descriptor is malformed (a bug in the shipped registry, caught by the tests)."""


class Reader:
    """A JSON object of a descriptor being parsed: typed getters that name the key's path on error,
    and ``done()`` that refuses any key no getter asked for."""

    def __init__(self, data: object, where: str, *, top: bool = False) -> None:
        if not isinstance(data, dict):
            raise RegistryError(f"{where}: expected an object, got {_show(data)}")
        self.data: dict[str, Any] = data
        self.where = where
        """``file.json`` for a descriptor, ``file.json: block.sub`` inside it."""
        self.top = top
        self.seen: set[str] = set()

    def has(self, key: str) -> bool:
        """Whether ``key`` is present (and counts it as known)."""
        self.seen.add(key)
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        """The value as parsed, unchecked (for free-form blocks such as a Table Schema field)."""
        self.seen.add(key)
        return self.data.get(key, default)

    def _get(
        self, key: str, kinds: tuple[type, ...], what: str, default: Any, required: bool
    ) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise RegistryError(f"{self.path(key)}: missing (expected {what})")
            return default
        value = self.data[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise RegistryError(f"{self.path(key)}: expected {what}, got {_show(value)}")
        return value

    def path(self, key: str) -> str:
        """``file.json: block.key`` for messages."""
        return f"{self.where}: {key}" if self.top else f"{self.where}.{key}"

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> Any:
        return self._get(key, (str,), "text", default, required)

    def optional_text(self, key: str) -> str | None:
        """Text or null."""
        self.seen.add(key)
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise RegistryError(f"{self.path(key)}: expected text or null, got {_show(value)}")
        return value

    def number(self, key: str, default: float | None = None) -> float | None:
        """A number as written (an integer stays an integer: messages say ``20%``)."""
        value = self._get(key, (int, float), "a number", default, False)
        return None if value is None else value

    def integer(self, key: str, default: int | None = None) -> int | None:
        value = self._get(key, (int,), "an integer", default, False)
        return None if value is None else int(value)

    def flag(self, key: str, default: bool = False) -> bool:
        return bool(self._get(key, (bool,), "true or false", default, False))

    def texts(
        self, key: str, default: tuple[str, ...] = (), *, required: bool = False
    ) -> tuple[str, ...]:
        values = self._get(key, (list,), "a list of texts", list(default), required)
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise RegistryError(f"{self.path(key)}[{i}]: expected text, got {_show(v)}")
        return tuple(values)

    def values(self, key: str) -> tuple[Any, ...]:
        """A list of JSON scalars."""
        values = self._get(key, (list,), "a list", [], False)
        for i, v in enumerate(values):
            if isinstance(v, (dict, list)):
                raise RegistryError(f"{self.path(key)}[{i}]: expected a scalar, got {_show(v)}")
        return tuple(values)

    def mapping(self, key: str, *, values: type | tuple[type, ...] = str) -> dict[str, Any]:
        """An object whose values all have the given type(s) (text by default)."""
        found = self._get(key, (dict,), "an object", {}, False)
        kinds = values if isinstance(values, tuple) else (values,)
        for k, v in found.items():
            if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
                names = " or ".join(t.__name__ for t in kinds)
                raise RegistryError(f"{self.path(key)}.{k}: expected {names}, got {_show(v)}")
        return dict(found)

    def scalars(self, key: str) -> dict[str, Any]:
        """An object of JSON scalars (text, number, boolean, null)."""
        return self.mapping(key, values=(str, int, float, bool, type(None)))

    def child(self, key: str, *, required: bool = False) -> Reader | None:
        """The object under ``key`` as a reader (None when absent)."""
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise RegistryError(f"{self.path(key)}: missing (expected an object)")
            return None
        return Reader(self.data[key], self.path(key))

    def children(self, key: str) -> Iterator[Reader]:
        """Readers of each object of the list under ``key``."""
        for i, item in enumerate(self._get(key, (list,), "a list of objects", [], False)):
            yield Reader(item, f"{self.path(key)}[{i}]")

    def choice(self, key: str, allowed: tuple[T, ...], default: T) -> T:
        value = self._get(key, (str,), "text", default, False)
        if value not in allowed:
            choices = ", ".join(map(str, allowed))
            raise RegistryError(f"{self.path(key)}: expected one of {choices}, got {_show(value)}")
        return value  # type: ignore[no-any-return]

    def done(self) -> None:
        """Refuse any key no getter asked for (a typo never goes unnoticed)."""
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise RegistryError(f"{self.path(unknown[0])}: unknown key"
                                + (f" (and {', '.join(unknown[1:])})" if unknown[1:] else ""))


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


DEFAULT_MAX_LOSS_PERCENT = 50
"""The shrink guard's default limit, for rows and for areas, in percent: a snapshot upload that
loses more than half of the previous accepted upload's rows (or areas) is held."""


@dataclass(frozen=True)
class ShrinkGuard:
    """``shrinkGuard``: a snapshot upload losing more than this vs the producer's previous
    accepted upload is held until re-uploaded with ``.confirm.`` in its name.

    On by default for every dataset with a snapshot producer (``DEFAULT_MAX_LOSS_PERCENT`` for
    rows and for areas; a declared limit replaces the default of its own measure only); a
    dataset opts out with ``{"off": "why"}`` (``off_reason``)."""

    max_row_loss_percent: float | None = DEFAULT_MAX_LOSS_PERCENT
    """Largest share of rows an upload may lose, in percent, 0..100 (None: not checked;
    100: never held, a loss is at most 100%)."""
    max_area_loss_percent: float | None = DEFAULT_MAX_LOSS_PERCENT
    """Largest share of distinct areas an upload may lose, in percent, 0..100 (None: not
    checked)."""
    off_reason: str | None = None
    """Why the dataset opts out of the guard (descriptor ``off``; None: the guard is on)."""

    @property
    def on(self) -> bool:
        """Whether uploads are checked (False: opted out, ``off_reason`` says why)."""
        return self.off_reason is None

    @classmethod
    def parse(cls, r: Reader | None) -> ShrinkGuard:
        """The guard of a descriptor's ``shrinkGuard`` block (None: absent, the defaults).

        Raises RegistryError for an ``off`` without a reason (not text, or blank), ``off``
        beside a limit, or a limit outside 0..100."""
        if r is None:
            return cls()
        r.text("note")
        if r.has("off"):
            reason = r.text("off")
            if not reason.strip():
                raise RegistryError(f"{r.path('off')}: expected the reason the dataset opts out "
                                    "of the shrink guard, got ''")
            limits = [k for k in ("maxRowLossPercent", "maxAreaLossPercent") if k in r.data]
            if limits:
                raise RegistryError(f"{r.path(limits[0])}: the guard is off; a limit is "
                                    "meaningless beside 'off'")
            r.done()
            return cls(None, None, off_reason=reason.strip())
        guard = cls(_percent(r, "maxRowLossPercent"), _percent(r, "maxAreaLossPercent"))
        r.done()
        return guard


def _percent(r: Reader, key: str) -> float:
    value = _at_least(r, key, DEFAULT_MAX_LOSS_PERCENT, 0)
    if value > 100:
        raise RegistryError(f"{r.path(key)}: expected at most 100, got {_show(value)}")
    return value


@dataclass(frozen=True)
class Plausibility:
    """``plausibility``: how the statistical checks judge the figures (see docs/design.md,
    "Totals and series")."""

    total_below_parts: Literal["error", "warning"] = "warning"
    """A total row below the sum of its parts: an ``error`` (the file is refused) or a
    ``warning`` (published)."""
    rise_factor: float = 50.0
    """A cumulative series rising in one day by more than this many times its median positive
    daily rise gets an ``implausible-rise`` warning (0: never)."""
    rise_minimum: float = 100.0
    """... and by at least this much (counts: small series rise by jumps of a few units)."""
    rise_history: int = 7
    """... in a series with at least this many positive daily rises (a median to compare with)."""

    @classmethod
    def parse(cls, r: Reader | None) -> Plausibility:
        if r is None:
            return cls()
        r.text("note")
        default = cls()
        found = cls(
            total_below_parts=r.choice("totalBelowParts", ("error", "warning"), "warning"),
            rise_factor=float(_at_least(r, "riseFactor", default.rise_factor, 0)),
            rise_minimum=float(_at_least(r, "riseMinimum", default.rise_minimum, 0)),
            rise_history=int(_at_least(r, "riseHistory", default.rise_history, 1, whole=True)),
        )
        r.done()
        return found


def _at_least(r: Reader, key: str, default: float, low: float, *, whole: bool = False) -> float:
    value = r.integer(key, int(default)) if whole else r.number(key, default)
    assert value is not None
    if value < low:
        raise RegistryError(f"{r.path(key)}: expected at least {low}, got {_show(value)}")
    return value


@dataclass(frozen=True)
class ErrorBudget:
    """``errorBudget``: which bad rows may be left out instead of rejecting the file."""

    max_bad_rows_percent: float = 0.0
    """Rows failing a check are left out while they stay within this share of rows, in percent."""
    exact_duplicate_rows: Literal["reject", "leave-out"] = "reject"
    """``leave-out``: a row equal in every cell to an earlier one is a ``duplicate-row`` row
    error (left out within the budget) instead of a primary-key conflict."""

    @classmethod
    def parse(cls, r: Reader | None) -> ErrorBudget:
        if r is None:
            return cls()
        r.text("note")
        budget = cls(
            max_bad_rows_percent=float(r.number("maxBadRowsPercent", 0.0) or 0.0),
            exact_duplicate_rows=r.choice("exactDuplicateRows", ("reject", "leave-out"), "reject"),
        )
        r.done()
        return budget


@dataclass(frozen=True)
class Consolidated:
    """``consolidated``: an extra published table with one row per ``key``, chosen by source
    priority."""

    name: str
    """Suffix of the table's files (``{dataset}-{name}.csv``)."""
    key: tuple[str, ...]
    """Columns identifying a row of the table."""
    priority_field: str
    """Column whose value orders the candidates."""
    priority_order: tuple[Any, ...]
    """Values of ``priority_field``, best first."""
    then_field: str | None = None
    """Tie-break column between equal priorities (None: none)."""
    then_last: tuple[Any, ...] = ()
    """Rows whose ``then_field`` is one of these lose a tie."""

    @classmethod
    def parse(cls, r: Reader) -> Consolidated:
        r.text("note")
        r.text("description")
        priority = r.child("priority", required=True)
        assert priority is not None
        priority.text("note")
        then = priority.child("then")
        then_field, then_last = None, ()
        if then is not None:
            then.text("note")
            then_field, then_last = then.text("field", required=True), then.values("last")
            then.done()
        spec = cls(
            name=r.text("name", required=True),
            key=r.texts("key", required=True),
            priority_field=priority.text("field", required=True),
            priority_order=priority.values("order"),
            then_field=then_field,
            then_last=then_last,
        )
        priority.done()
        r.done()
        return spec


@dataclass(frozen=True)
class FeedSpec:
    """One ``feeds`` entry: rows taken from another dataset's current published version (see
    ``opendepot.feeds``)."""

    dataset: str
    """The fed dataset (its published version is read)."""
    producer: str
    """Provenance of the fed rows (must not be an uploading producer of the target)."""
    level: str
    """Published level of the fed dataset to read (``dep``)."""
    filter: dict[str, Any]
    """Column of the fed table -> value the rows must have (``sexe``: 0)."""
    columns: dict[str, str]
    """Target column -> fed column copied into it."""
    templates: dict[str, str]
    """Target column -> ``str.format`` template over fed columns (``DEP-{dep}``)."""
    names: dict[str, str]
    """Target column -> fed column holding an area code, written as the area's name."""
    constants: dict[str, Any]
    """Target column -> constant value."""

    @classmethod
    def parse(cls, r: Reader) -> FeedSpec:
        r.text("note")
        spec = cls(
            dataset=r.text("dataset", required=True),
            producer=r.text("producer", required=True),
            level=r.text("level", "dep"),
            filter=r.scalars("filter"),
            columns=r.mapping("columns"),
            templates=r.mapping("templates"),
            names=r.mapping("names"),
            constants=r.scalars("constants"),
        )
        r.done()
        return spec

    def targets(self) -> list[str]:
        """Every target column the feed writes (each at most once)."""
        return [*self.columns, *self.templates, *self.names, *self.constants]

    def sources(self) -> set[str]:
        """Columns of the fed table this feed reads."""
        used = {*self.filter, *self.columns.values(), *self.names.values()}
        for template in self.templates.values():
            used |= {name for _, name, _, _ in string.Formatter().parse(template) if name}
        return used


def check_mapping(values: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """Every value of ``values`` is one of ``allowed``."""
    for k, v in values.items():
        if v not in allowed:
            choices = ", ".join(allowed)
            raise RegistryError(f"{where}.{k}: expected one of {choices}, got {_show(v)}")


@dataclass(frozen=True)
class YamlSpec:
    """``yaml``: how a dataset reads YAML bulletins (see ``opendepot.formats``).

    A bulletin is a mapping: a date, a source, and blocks of figures, each block one area (a
    mapping) or several (a list of mappings with their own code and name). Every key found in
    a block must be declared (a measure, an alias of one, the code or name key, or ignored):
    an undeclared key with a value rejects the file, so a typo never loses a figure silently.
    """

    date: str
    """Column of the bulletin's top-level ``date``."""
    source: dict[str, str]
    """Key of the ``source`` mapping -> column (``nom`` -> ``source_nom``...)."""
    blocks: dict[str, dict[str, str]]
    """Block key -> constant columns of its rows (``donneesNationales``: ``maille_code`` FRA)."""
    area: dict[str, str]
    """Key of an area -> column (``code`` -> ``maille_code``, ``nom`` -> ``maille_nom``)."""
    code_column: str
    """The column that holds the area code."""
    kind_column: str | None
    """Column derived from the code's prefix (``granularite``), or None."""
    kinds: dict[str, str]
    """Code prefix (before ``-``) -> value of ``kind_column`` (``DEP`` -> ``departement``)."""
    measures: dict[str, str]
    """Lower-cased key (declared name or alias) -> column."""
    ignored: frozenset[str]
    """Lower-cased keys skipped inside a block (nested ``victimes`` lists, bed capacities...)."""
    ignored_top: frozenset[str]
    """Lower-cased top-level keys skipped (``time``)."""
    by_producer: dict[str, dict[str, str]]
    """Column -> {producer id or ``prefix-*`` -> value}: columns taken from the upload's
    producer (the second segment of its key), e.g. the source family ``source_type``."""
    columns: tuple[str, ...]
    """Header of the CSV written, in the dataset's field order."""

    @classmethod
    def parse(cls, r: Reader, field_order: tuple[str, ...]) -> YamlSpec:
        """Raises RegistryError: an unknown key, a wrong type, or a column that is not a field."""
        r.text("note")
        area = r.mapping("area") or {"code": "maille_code", "nom": "maille_nom"}
        code_column = area.get("code", "maille_code")
        kind = r.child("kind")
        kind_column, kinds = None, {}
        if kind is not None:
            kind_column, kinds = kind.text("column"), kind.mapping("byCodePrefix")
            kind.done()
        measures = {k.lower(): v for k, v in r.mapping("measures").items()}
        for alias, target in r.mapping("aliases").items():
            measures[alias.lower()] = measures.get(target.lower(), target)
        blocks_reader = r.child("blocks", required=True)
        assert blocks_reader is not None
        blocks = {k: dict(blocks_reader.mapping(k) or {}) for k in list(blocks_reader.data)}
        by_producer_reader = r.child("byProducer")
        by_producer: dict[str, dict[str, str]] = {}
        if by_producer_reader is not None:
            by_producer = {c: by_producer_reader.mapping(c) for c in list(by_producer_reader.data)}
        date = r.text("date", "date")
        source = r.mapping("source")
        ignored = frozenset(k.lower() for k in r.texts("ignore"))
        ignored_top = frozenset(k.lower() for k in r.texts("ignoreTopLevel"))
        r.done()
        wanted = {date, *source.values(), *area.values(), *measures.values(), *by_producer}
        wanted |= {c for constants in blocks.values() for c in constants}
        if kind_column:
            wanted.add(kind_column)
        unknown = wanted - set(field_order)
        if unknown:
            raise RegistryError(
                f"{r.where}: columns {sorted(unknown)} are not fields of the dataset")
        return cls(
            date=date,
            source=source,
            blocks=blocks,
            area=area,
            code_column=code_column,
            kind_column=kind_column,
            kinds=kinds,
            measures=measures,
            ignored=ignored,
            ignored_top=ignored_top,
            by_producer=by_producer,
            columns=tuple(f for f in field_order if f in wanted),
        )
