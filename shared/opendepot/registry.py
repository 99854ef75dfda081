"""The dataset registry: one descriptor per dataset, shipped with the code.

Each descriptor is a JSON file in ``opendepot/datasets/`` in Data Package / Table Schema terms
(see the project's ``docs/design.md``, "Dataset registry"). ``load_registry()`` reads them once;
``Registry.get(name)`` returns a typed ``Dataset``. The INSEE COG reference (departments and
regions, 2020) is ``reference/cog2020.json``, derived from INSEE's CSV by ``infra/build_cog.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

Measure = Literal["stock", "cumulative", "incidence", "rate"]
Mode = Literal["snapshot", "append"]
LEVELS = ("dep", "reg", "fra")
NATIONAL_CODE = "FR"


class RegistryError(ValueError):
    """A descriptor is malformed (a bug in the shipped registry, caught by the tests)."""


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


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: metadata, who may publish it, its schema and consolidation rules."""

    name: str
    """Slug, as on data.gouv.fr."""
    title: str
    description: str
    organization: dict[str, str]
    license: str
    frequency: str
    tags: tuple[str, ...]
    producers: tuple[str, ...]
    """Producers allowed to publish it (second segment of the incoming key)."""
    mode: Mode
    """``snapshot``: newest upload is the full history; ``append``: rows merged on the primary key."""
    fields: tuple[Field, ...]
    primary_key: tuple[str, ...]
    missing_values: tuple[str, ...]
    aliases: dict[str, str]
    """Lower-cased alternative column name -> canonical name."""
    measures: dict[str, Measure]
    totals: dict[str, Any]
    """Code of the total row per dimension (``sexe``: 0); never summed with the parts."""
    geography: Geography
    max_bad_rows_percent: float
    """Row error budget: rows failing a check are left out while they stay within this share."""
    schema: dict[str, Any]
    """The Table Schema as declared."""
    provenance: bool
    """Published rows carry ``producer`` and ``upload_id`` (and ``source_url`` where given)."""
    descriptor: dict[str, Any]
    """The whole descriptor as shipped."""

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
        """The consolidation mode of one producer's uploads: ``producerModes`` (ours), else ``mode``."""
        return self.descriptor.get("producerModes", {}).get(producer, self.mode)


OUR_FIELD_KEYS = {"dateFormats", "optional", "padSingleDigit", "defaultYear"}
"""Field properties that are opendepot's own (documented in docs/design.md), not Table Schema."""
ANY_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%Y/%m/%d", "%d-%m-%Y")


def _date_formats(d: dict[str, Any]) -> tuple[str, ...]:
    """strptime formats of a date field: ``dateFormats`` (ours) or the Table Schema ``format``
    (``default``: ISO; ``any``: the common French and ISO forms; else a strptime pattern)."""
    if "dateFormats" in d:
        return tuple(d["dateFormats"])
    fmt = d.get("format", "default")
    if fmt == "any":
        return ANY_DATE_FORMATS
    if fmt and fmt != "default":
        return (fmt,)
    return ("%Y-%m-%d",)


def _field(d: dict[str, Any], geo: dict[str, Any]) -> Field:
    constraints = dict(d.get("constraints", {}))
    pad = d.get("padSingleDigit", geo.get("padCodes", False) and d["name"] == geo.get("field"))
    return Field(
        name=d["name"],
        type=d.get("type", "string"),
        required=bool(constraints.pop("required", False)),
        optional_column=bool(d.get("optional", False)),
        constraints=constraints,
        date_formats=_date_formats(d),
        pad_single_digit=bool(pad),
        default_year=d.get("defaultYear"),
        descriptor={k: v for k, v in d.items() if k not in OUR_FIELD_KEYS},
    )


def parse_dataset(d: dict[str, Any]) -> Dataset:
    """Turn a descriptor (parsed JSON) into a ``Dataset``. Raises RegistryError."""
    try:
        schema = d["schema"]
        geo = d.get("geography", {"field": None, "level": "fra"})
        fields = tuple(_field(f, geo) for f in schema["fields"])
        names = {f.name for f in fields}
        pk = tuple(schema.get("primaryKey", []))
        if not set(pk) <= names or (geo.get("field") is not None and geo["field"] not in names):
            raise RegistryError(f"{d['name']}: primaryKey or geography field not in fields")
        for m in d.get("measures", {}):
            if m not in names:
                raise RegistryError(f"{d['name']}: measure {m} not in fields")
        return Dataset(
            name=d["name"],
            title=d["title"],
            description=d.get("description", ""),
            organization=d["organization"],
            license=d.get("license", "lov2"),
            frequency=d.get("frequency", "unknown"),
            tags=tuple(d.get("tags", [])),
            producers=tuple(d["producers"]),
            mode=d.get("mode", "snapshot"),
            fields=fields,
            primary_key=pk,
            missing_values=tuple(schema.get("missingValues", [""])),
            aliases={k.lower(): v for k, v in d.get("aliases", {}).items()},
            measures=dict(d.get("measures", {})),
            totals=dict(d.get("totals", {})),
            geography=Geography(
                field=geo.get("field"),
                level=geo["level"],
                rollups=tuple(geo.get("rollups", [])),
                extra_codes=dict(geo.get("extraCodes", {})),
            ),
            max_bad_rows_percent=float(d.get("errorBudget", {}).get("maxBadRowsPercent", 0.0)),
            schema=schema,
            provenance=bool(d.get("provenance", False)),
            descriptor=d,
        )
    except KeyError as exc:
        raise RegistryError(f"{d.get('name', '?')}: missing key {exc}") from exc


@dataclass(frozen=True)
class Registry:
    """Every registered dataset, by name."""

    datasets: dict[str, Dataset]

    def get(self, name: str) -> Dataset | None:
        return self.datasets.get(name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self.datasets.values(), key=lambda d: d.name))


@cache
def load_registry() -> Registry:
    """Read every shipped descriptor once (cached for the life of the process)."""
    out: dict[str, Dataset] = {}
    for entry in resources.files("opendepot.datasets").iterdir():
        if entry.name.endswith(".json"):
            ds = parse_dataset(json.loads(entry.read_text("utf-8")))
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
    raw = json.loads(resources.files("opendepot.reference").joinpath("cog2020.json").read_text("utf-8"))
    return Cog(departments=raw["departments"], regions=raw["regions"])
