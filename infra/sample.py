"""A small, deterministic sample of Santé publique France's ``donnees-hospitalieres-covid19``.

Used by the demo when the real files (``../shared/data/real/donnees-hospitalieres-covid19/``) are
not there. Same columns and dialect as SPF's file: header ``"dep";"sexe";"jour";"hosp";"rea";
"rad";"dc"``, ``;`` separator, ``dep`` and ``jour`` quoted, counts bare, LF line ends, UTF-8
without BOM. Rows: a handful of departments (including ``2A``, ``2B``, ``971`` and ``75``), each
day, ``sexe`` 1 (men), 2 (women) and 0 (all, exactly 1 + 2); ``hosp`` and ``rea`` are stocks that
rise then ease, ``rad`` and ``dc`` are cumulative and never go down. The figures are made up
(shaped like March 2020), not published values.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

HEADER = '"dep";"sexe";"jour";"hosp";"rea";"rad";"dc"\n'
DEFAULT_START = date(2020, 3, 18)
# department -> scale of its epidemic (people in hospital at the peak, both sexes)
DEPARTMENTS: dict[str, int] = {
    "01": 60,
    "13": 420,
    "2A": 90,
    "2B": 40,
    "59": 380,
    "75": 1600,
    "971": 30,
}


def _noise(*parts: object) -> float:
    """A deterministic number in [0, 1) from its arguments (stable across Python versions)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def _series(dep: str, sexe: int, scale: int, days: int) -> list[tuple[int, int, int, int]]:
    """(hosp, rea, rad, dc) per day for one department and one sex."""
    share = 0.55 if sexe == 1 else 0.45
    out: list[tuple[int, int, int, int]] = []
    rad = dc = 0
    for d in range(days):
        # logistic-looking rise over the first days, then a slight easing
        level = scale * share * min(1.0, (d + 1) / 12) ** 1.5
        if d > 12:
            level *= 1 - 0.02 * (d - 12)
        hosp = max(0, round(level * (0.9 + 0.2 * _noise(dep, sexe, d, "h"))))
        rea = round(hosp * (0.2 + 0.1 * _noise(dep, sexe, d, "r")))
        rad += round(hosp * 0.08 * _noise(dep, sexe, d, "rad"))
        dc += round(hosp * 0.03 * _noise(dep, sexe, d, "dc"))
        out.append((hosp, rea, rad, dc))
    return out


def sample_csv(
    days: int = 10,
    start: date = DEFAULT_START,
    departments: dict[str, int] | None = None,
) -> bytes:
    """The sample file covering ``days`` days from ``start``, as bytes (SPF's dialect)."""
    departments = DEPARTMENTS if departments is None else departments
    lines = [HEADER]
    for dep, scale in departments.items():
        men = _series(dep, 1, scale, days)
        women = _series(dep, 2, scale, days)
        for d in range(days):
            jour = (start + timedelta(days=d)).isoformat()
            both = tuple(m + w for m, w in zip(men[d], women[d], strict=True))
            for sexe, values in ((0, both), (1, men[d]), (2, women[d])):
                counts = ";".join(str(v) for v in values)
                lines.append(f'"{dep}";{sexe};"{jour}";{counts}\n')
    return "".join(lines).encode("utf-8")


def sample_files(
    days: tuple[int, ...] = (7, 10), start: date = DEFAULT_START
) -> list[tuple[str, bytes]]:
    """Successive publications of the sample, as a producer sends them day after day.

    Each file is the full history up to its last day (as SPF publishes), named like SPF's files
    after that day: ``donnees-hospitalieres-covid19-2020-03-24-19h00.csv``.
    """
    out = []
    for n in days:
        last = start + timedelta(days=n - 1)
        out.append(
            (f"donnees-hospitalieres-covid19-{last.isoformat()}-19h00.csv", sample_csv(n, start))
        )
    return out
