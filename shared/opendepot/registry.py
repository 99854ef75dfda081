"""The dataset registry: one descriptor per dataset, shipped with the code.

Each descriptor is a JSON file in ``opendepot/datasets/`` in Data Package / Table Schema terms
(see the project's ``docs/design.md``, "Dataset registry"). ``load_registry()`` reads them once;
``Registry.get(name)`` returns a typed ``Dataset``. The INSEE COG reference (departments and
regions, 2020) is ``reference/cog2020.json``, derived from INSEE's CSV by ``infra/build_cog.py``.

Measure kinds (descriptor ``measures``, ``specs.MEASURE_KINDS``):

- ``stock``: a count on the day (patients in hospital); summed in roll-ups;
- ``cumulative``: a count since a start (deaths, aids paid); summed in roll-ups, and in a
  dataset with a date field its series is checked for decreases and implausible rises;
- ``incidence``: new events in a period (admissions of the day); summed in roll-ups;
- ``rate``: a ratio (per 100,000, a percentage); never rolled up;
- ``distinct``: a count of distinct units (companies helped) one unit of which may count in
  several areas or parts: a region's figure is not the sum of its departments', so roll-ups
  never sum it and the totals check never compares it with its parts.

A measure that is not rolled up is not a column of the computed levels (``rollup.rollup``:
area, other key columns, summed measures).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from opendepot.specs import (
    MEASURE_KINDS,
    MODES,
    Consolidated,
    ErrorBudget,
    FeedSpec,
    Measure,
    Mode,
    Plausibility,
    Reader,
    RegistryError,
    ShrinkGuard,
    YamlSpec,
    check_mapping,
)

__all__ = [
    "LEVELS", "NATIONAL_CODE", "Cog", "Consolidated", "Dataset", "ErrorBudget", "FeedSpec",
    "Field", "Geography", "Measure", "Mode", "Registry", "RegistryError", "ShrinkGuard",
    "YamlSpec", "load_cog", "load_descriptor", "load_registry", "parse_dataset",
]

LEVELS = ("dep", "reg", "fra")
NATIONAL_CODE = "FR"


@dataclass(frozen=True)
class Field:
    """One Table Schema field."""

    name: str
    """Canonical column name."""
    type: str
    """Table Schema type: string, integer, number, date, boolean, year."""
    required: bool = False
    """Constraint ``required``: a value must be present in every row."""
    optional_column: bool = False
    """The column may be absent from a file (older format versions); it is then all null."""
    constraints: dict[str, Any] = field(default_factory=dict)
    """Table Schema constraints (``minimum``, ``enum``, ``pattern``...)."""
    date_formats: tuple[str, ...] = ("%Y-%m-%d",)
    """strptime formats accepted for a date field, tried in order."""
    pad_single_digit: bool = False
    """A code written ``1``..``9`` is read as ``01``..``09`` (with a ``padded-code`` warning)."""
    default_year: int | None = None
    """For a ``week`` field: the year of labels that give none (``Semaine 10``)."""
    descriptor: dict[str, Any] = field(default_factory=dict)
    """The field as declared (title, description...), published with the schema."""


@dataclass(frozen=True)
class Geography:
    """Which column holds the area code and how areas roll up."""

    field: str | None
    """Column of the area code (``dep``, ``reg``, ``fra``), None for a national file without one."""
    level: str
    """Level of the producer's rows: ``dep``, ``reg`` or ``fra``."""
    rollups: tuple[str, ...]
    """Levels computed from it, in order (``reg``, ``fra``)."""
    extra_codes: dict[str, dict[str, str]]
    """Codes outside the INSEE COG the dataset accepts, with meaning and source (975, 977, 978)."""


SINGLE_BYTE_ENCODINGS = ("cp1252", "iso-8859-15")
"""Single-byte encodings a dataset may declare for its producers' files (``encoding``)."""


def _encoding(r: Reader) -> str | None:
    if r.raw("encoding", None) is None:
        return None
    return r.choice("encoding", SINGLE_BYTE_ENCODINGS, SINGLE_BYTE_ENCODINGS[0])


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: metadata, who may publish it, its schema and consolidation rules,
    every option typed (see ``opendepot.specs``)."""

    name: str
    """Slug, as on data.gouv.fr."""
    title: str
    """French title."""
    description: str
    """French description (Markdown)."""
    organization: dict[str, str]
    """Publishing organization: ``name``, ``slug`` (and ``id`` when the registry gives one)."""
    license: str
    """Licence id (``lov2``: Licence Ouverte 2.0)."""
    frequency: str
    """udata frequency (``daily``, ``weekly``...; ``unknown``)."""
    tags: tuple[str, ...]
    """udata tags."""
    producers: tuple[str, ...]
    """Producers allowed to publish it (second segment of the incoming key)."""
    mode: Mode
    """``snapshot``: the newest upload is the full history; ``append``: rows merged on the
    primary key."""
    fields: tuple[Field, ...]
    """The Table Schema's fields, in order."""
    primary_key: tuple[str, ...]
    """Table Schema ``primaryKey``."""
    missing_values: tuple[str, ...]
    """Table Schema ``missingValues``."""
    aliases: dict[str, str]
    """Lower-cased alternative column name -> canonical name."""
    measures: dict[str, Measure]
    """Measure column -> kind (stocks, cumulative counts and incidences roll up; rates and
    distinct counts do not: see "Measure kinds" above)."""
    totals: dict[str, Any]
    """Code of the total row per dimension (``sexe``: 0); never summed with the parts."""
    geography: Geography
    """Area column, level and roll-ups."""
    error_budget: ErrorBudget
    """Which bad rows may be left out instead of rejecting the file."""
    schema: dict[str, Any]
    """The Table Schema as declared."""
    provenance: bool
    """Published rows carry ``producer`` and ``upload_id`` (and ``source_url`` where given)."""
    shrink_guard: ShrinkGuard | None = None
    """Holds snapshot uploads that lose too much: the defaults unless ``shrinkGuard`` says
    otherwise, or opted out (``shrink_guard.off_reason``); None only when no producer is a
    snapshot (append uploads add rows: a small one is normal)."""
    consolidated: Consolidated | None = None
    """An extra published table chosen by source priority (None: none)."""
    feeds: tuple[FeedSpec, ...] = ()
    """Rows taken from other datasets' published versions."""
    excel_sheet: str | int = 0
    """The sheet read from an ``.xlsx`` upload: a name, or a 0-based position."""
    yaml: YamlSpec | None = None
    """How YAML bulletins become rows (None: YAML uploads are not accepted)."""
    producer_modes: dict[str, Mode] = field(default_factory=dict)
    """A producer's own consolidation mode, overriding ``mode``."""
    en: dict[str, str] = field(default_factory=dict)
    """English ``title`` and ``description``."""
    plausibility: Plausibility = field(default_factory=Plausibility)
    """How the statistical checks judge totals and cumulative series."""
    encoding: str | None = None
    """The single-byte encoding (``cp1252``) the dataset's producers may send besides UTF-8
    and UTF-16 (descriptor ``encoding``); None: UTF-8 or UTF-16 only."""

    @property
    def max_bad_rows_percent(self) -> float:
        """Row error budget, in percent of the rows (``errorBudget.maxBadRowsPercent``)."""
        return self.error_budget.max_bad_rows_percent

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Primary-key columns other than the area code (``sexe``, ``jour``)."""
        return tuple(k for k in self.primary_key if k != self.geography.field)

    @property
    def time_field(self) -> str | None:
        """The primary key's date or week field."""
        for k in self.primary_key:
            if self.field(k).type in {"date", "week"}:
                return k
        return None

    @property
    def date_field(self) -> str | None:
        """The first date field of the primary key, the series' time axis."""
        for k in self.primary_key:
            if self.field(k).type == "date":
                return k
        return None

    @property
    def levels(self) -> tuple[str, ...]:
        return (self.geography.level, *self.geography.rollups)

    def mode_of(self, producer: str) -> Mode:
        """The consolidation mode of one producer's uploads: ``producerModes``, else ``mode``."""
        return self.producer_modes.get(producer, self.mode)


OUR_FIELD_KEYS = {"dateFormats", "optional", "padSingleDigit", "defaultYear"}
"""Field properties that are opendepot's own (documented in docs/design.md), not Table Schema."""
FIELD_TYPES = ("string", "integer", "number", "date", "boolean", "year", "week")
ANY_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%Y/%m/%d", "%d-%m-%Y")


def _date_formats(r: Reader) -> tuple[str, ...]:
    """strptime formats of a date field: ``dateFormats`` (ours) or the Table Schema ``format``
    (``default``: ISO; ``any``: the common French and ISO forms; else a strptime pattern)."""
    if r.has("dateFormats"):
        return r.texts("dateFormats")
    fmt = r.text("format", "default")
    if fmt == "any":
        return ANY_DATE_FORMATS
    if fmt and fmt != "default":
        return (fmt,)
    return ("%Y-%m-%d",)


def _field(r: Reader, geo_field: str | None, pad_codes: bool) -> Field:
    name = r.text("name", required=True)
    constraints = dict(r.mapping("constraints", values=(str, int, float, bool, list)))
    pad = r.flag("padSingleDigit", pad_codes and name == geo_field)
    r.text("title")
    r.text("description")
    r.text("format")
    r.mapping("en")
    parsed = Field(
        name=name,
        type=r.choice("type", FIELD_TYPES, "string"),
        required=bool(constraints.pop("required", False)),
        optional_column=r.flag("optional"),
        constraints=constraints,
        date_formats=_date_formats(r),
        pad_single_digit=pad,
        default_year=r.integer("defaultYear"),
        descriptor={k: v for k, v in r.data.items() if k not in OUR_FIELD_KEYS},
    )
    r.done()
    return parsed


def _geography(r: Reader | None) -> tuple[Geography, bool]:
    """The ``geography`` block and its ``padCodes``."""
    if r is None:
        return Geography(field=None, level="fra", rollups=(), extra_codes={}), False
    r.text("note")
    r.text("reference")
    extra = r.child("extraCodes")
    codes: dict[str, dict[str, str]] = {}
    if extra is not None:
        codes = {code: extra.mapping(code) for code in list(extra.data)}
        extra.done()
    geo = Geography(
        field=r.optional_text("field"),
        level=r.text("level", required=True),
        rollups=r.texts("rollups"),
        extra_codes=codes,
    )
    pad = r.flag("padCodes")
    r.done()
    return geo, pad


def _check_names(d: Dataset, where: str) -> None:
    names = set(d.field_names)
    geo = d.geography.field
    if not set(d.primary_key) <= names or (geo is not None and geo not in names):
        raise RegistryError(f"{where}: primaryKey or geography field not in fields")
    for m in d.measures:
        if m not in names:
            raise RegistryError(f"{where}: measures.{m}: not a field")
    for k in d.totals:
        if k not in names:
            raise RegistryError(f"{where}: totals.{k}: not a field")
    for feed in d.feeds:
        if feed.producer in d.producers:
            raise RegistryError(f"{where}: feeds: producer {feed.producer!r} may also upload; "
                                "fed and uploaded rows would share keys")
        targets = feed.targets()
        unknown = set(targets) - names
        if unknown or len(targets) != len(set(targets)):
            raise RegistryError(f"{where}: feeds: from {feed.dataset}: columns {sorted(unknown)} "
                                "are not fields, or a column is given twice")


def _without_guard_unless_snapshot(d: Dataset, declared: bool, where: str) -> Dataset:
    """The shrink guard applies to snapshot producers only: a dataset none of whose producers
    is a snapshot (all ``append``) gets none, and may not declare one (it would never act)."""
    if any(d.mode_of(p) == "snapshot" for p in d.producers):
        return d
    if declared:
        raise RegistryError(f"{where}: shrinkGuard: no producer of this dataset is a snapshot "
                            "(mode, producerModes): the guard would never act")
    return replace(d, shrink_guard=None)


def parse_dataset(d: dict[str, Any], where: str | None = None) -> Dataset:
    """Turn a descriptor (parsed JSON) into a ``Dataset``, checking every key and type.

    ``where``: the file name used in messages (default ``{name}.json``).
    Raises RegistryError naming the file and the key: an unknown key, a wrong type, a missing
    required key, or names that do not match the schema's fields."""
    where = where or f"{d.get('name', '?')}.json"
    r = Reader(d, where, top=True)
    schema_reader = r.child("schema", required=True)
    assert schema_reader is not None
    geo, pad_codes = _geography(r.child("geography"))
    fields = tuple(_field(f, geo.field, pad_codes) for f in schema_reader.children("fields"))
    pk = schema_reader.texts("primaryKey")
    missing = schema_reader.texts("missingValues", ("",))
    schema_reader.done()
    measures = r.mapping("measures")
    check_mapping(measures, MEASURE_KINDS, r.path("measures"))
    producer_modes = r.mapping("producerModes")
    check_mapping(producer_modes, MODES, r.path("producerModes"))
    guard = r.child("shrinkGuard")
    consolidated = r.child("consolidated")
    excel = r.child("excel")
    sheet: str | int = 0
    if excel is not None:
        sheet = excel.raw("sheet", 0)
        if not isinstance(sheet, (str, int)) or isinstance(sheet, bool):
            raise RegistryError(f"{excel.path('sheet')}: expected a sheet name or position")
        excel.done()
    yaml_reader = r.child("yaml")
    r.text("modeNote")
    dataset = Dataset(
        name=r.text("name", required=True),
        title=r.text("title", required=True),
        description=r.text("description", ""),
        organization=r.mapping("organization"),
        license=r.text("license", "lov2"),
        frequency=r.text("frequency", "unknown"),
        tags=r.texts("tags"),
        producers=r.texts("producers", required=True),
        mode=r.choice("mode", MODES, "snapshot"),
        fields=fields,
        primary_key=pk,
        missing_values=missing,
        aliases={k.lower(): v for k, v in r.mapping("aliases").items()},
        measures=measures,
        totals=r.scalars("totals"),
        geography=geo,
        error_budget=ErrorBudget.parse(r.child("errorBudget")),
        schema=dict(schema_reader.data),
        provenance=r.flag("provenance"),
        shrink_guard=ShrinkGuard.parse(guard),
        consolidated=Consolidated.parse(consolidated) if consolidated is not None else None,
        feeds=tuple(FeedSpec.parse(f) for f in r.children("feeds")),
        excel_sheet=sheet,
        yaml=YamlSpec.parse(yaml_reader, tuple(f.name for f in fields)) if yaml_reader else None,
        producer_modes=producer_modes,
        en=r.mapping("en"),
        plausibility=Plausibility.parse(r.child("plausibility")),
        encoding=_encoding(r),
    )
    if not dataset.organization.get("slug") and not dataset.organization.get("name"):
        raise RegistryError(f"{r.path('organization')}: expected a name and a slug")
    r.done()
    _check_names(dataset, where)
    return _without_guard_unless_snapshot(dataset, guard is not None, where)


@dataclass(frozen=True)
class Registry:
    """Every registered dataset, by name."""

    datasets: dict[str, Dataset]

    def get(self, name: str) -> Dataset | None:
        return self.datasets.get(name)

    def __iter__(self) -> Iterator[Dataset]:
        return iter(sorted(self.datasets.values(), key=lambda d: d.name))


def load_descriptor(name: str) -> dict[str, Any]:
    """The shipped descriptor of dataset ``name`` as parsed JSON (a fresh copy: tests derive
    variants from it and ``parse_dataset`` them). Raises KeyError for an unknown name."""
    entry = resources.files("opendepot.datasets").joinpath(f"{name}.json")
    if not entry.is_file():
        raise KeyError(name)
    data: dict[str, Any] = json.loads(entry.read_text("utf-8"))
    return data


@cache
def load_registry() -> Registry:
    """Read and check every shipped descriptor once (cached for the life of the process).

    Raises RegistryError naming the file and key of the first malformed descriptor."""
    out: dict[str, Dataset] = {}
    for entry in resources.files("opendepot.datasets").iterdir():
        if entry.name.endswith(".json"):
            ds = parse_dataset(json.loads(entry.read_text("utf-8")), entry.name)
            if f"{ds.name}.json" != entry.name:
                raise RegistryError(f"{entry.name}: name {ds.name!r} does not match the file name")
            out[ds.name] = ds
    return Registry(out)


@dataclass(frozen=True)
class Cog:
    """INSEE COG 2020: department -> region, names."""

    departments: dict[str, dict[str, str]]
    regions: dict[str, dict[str, str]]

    def region_of(self, dep: str) -> str | None:
        """Region code of a department, or None (975, 977, 978 and unknown codes)."""
        d = self.departments.get(dep)
        return d["reg"] if d else None


@cache
def load_cog() -> Cog:
    """The shipped COG reference (``reference/cog2020.json``)."""
    shipped = resources.files("opendepot.reference").joinpath("cog2020.json")
    raw = json.loads(shipped.read_text("utf-8"))
    return Cog(departments=raw["departments"], regions=raw["regions"])
