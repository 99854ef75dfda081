"""Build ``shared/opendepot/reference/cog2020.json`` from the INSEE COG 2020 CSV files.

The Lambda layer cannot read ``../shared/data``, so the code list it needs (department code,
region code, names) is shipped as a small derived JSON. ``tests/test_reference.py`` checks that
the shipped file equals what this script derives from the source files.

Usage: ``python -m infra.build_cog [COG_DIR]`` (default ``../shared/data/real/cog-insee``).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "shared" / "opendepot" / "reference" / "cog2020.json"
DEFAULT_SRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "cog-insee"


def derive(cog_dir: Path) -> dict[str, object]:
    """Return ``{source, departments: {dep: {reg, name}}, regions: {reg: {name}}}``."""
    deps = csv.DictReader(io.StringIO((cog_dir / "departement2020.csv").read_text("utf-8")))
    regs = csv.DictReader(io.StringIO((cog_dir / "region2020.csv").read_text("utf-8")))
    return {
        "source": "INSEE, Code officiel géographique 2020 (departement2020.csv, region2020.csv)",
        "departments": {r["dep"]: {"reg": r["reg"], "name": r["libelle"]} for r in deps},
        "regions": {r["reg"]: {"name": r["libelle"]} for r in regs},
    }


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    src = Path(args[0]) if args else DEFAULT_SRC
    OUT.write_text(json.dumps(derive(src), ensure_ascii=False, indent=1) + "\n", "utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
