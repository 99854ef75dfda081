"""Cold start of each Lambda function and the size of what it is deployed with.

``measure``: for each function (``functions/{validate,publish,site,index_api}/app.py``), a fresh
interpreter imports the handler module, ``reps`` times: ``import_seconds`` around the import
(``time.perf_counter``, in the child), ``rss_mib`` the resident size after it and
``peak_rss_mib`` (``VmHWM``, see ``bench.memory``) over the child's life, and the
interpreter alone (``python -c pass``) for reference; medians (peaks: the largest). One more
child runs with ``python -X importtime``: its own import time summed by top-level package
(``by_package``, the ten largest), where a lighter cold start would come from. Files are in
the page cache (a warm disk), which a Lambda's first start does not have; Lambda's init also
loads the runtime, not counted here.

``package_sizes``: what each function is deployed with. The layer: the ``opendepot`` package
(``shared/opendepot``: code, the dataset registry, the COG) and the distributions its runtime
``dependencies`` (``pyproject.toml``) require, transitively (markers evaluated for this
interpreter, extras not followed), each as installed in this environment: the files of its
``RECORD``, ``__pycache__`` excluded (bytecode is written at first import, or shipped
precompiled: ``with_bytecode`` includes it). Then each function's own directory. In the SAM
template the dependencies come from three layers and the runtime (pandas, pyarrow, numpy,
openpyxl: AWS SDK for pandas; Powertools with pydantic; boto3 from the runtime): the total is what
a function's unzipped code and layers hold, against Lambda's 250 MB limit.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import statistics
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ("validate", "publish", "site", "index_api")
MIB = 1024 * 1024
LAMBDA_UNZIPPED_LIMIT_MB = 250
PROBE = """
import json, sys, time
def rss(field="VmRSS:"):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
before = rss()
t = time.perf_counter()
if sys.argv[1]:
    __import__(sys.argv[1])
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "rss_before_mib": before, "rss_mib": rss(),
                  "peak_rss_mib": rss("VmHWM:")}))
"""


def _probe(module: str, timeout: float) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", PROBE, module], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError((proc.stderr.strip().splitlines() or ["?"])[-1][:300])
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


def importtime(module: str, timeout: float, top: int = 10) -> dict[str, Any]:
    """``python -X importtime -c "import MODULE"``: the total (the module's cumulative time) and
    the self time summed by top-level package, the ``top`` largest, in seconds."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    by: dict[str, int] = {}
    total = None
    line_re = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")
    for line in proc.stderr.splitlines():
        m = line_re.match(line)
        if not m:
            continue
        own, cumulative, name = int(m[1]), int(m[2]), m[4]
        root = name.split(".")[0]
        by[root] = by.get(root, 0) + own
        if name == module:
            total = cumulative
    ranked = sorted(by.items(), key=lambda kv: -kv[1])[:top]
    return {"total_seconds": None if total is None else round(total / 1e6, 3),
            "by_package_seconds": {k: round(v / 1e6, 3) for k, v in ranked}}


def measure(reps: int = 3, timeout: float = 120.0) -> dict[str, Any]:
    """Each function's cold start (see module docstring); a failure is recorded, not raised."""
    out: dict[str, Any] = {}
    try:
        bare = [_probe("", timeout) for _ in range(reps)]
        out["interpreter_rss_mib"] = round(statistics.median(b["rss_mib"] for b in bare), 1)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
        out["interpreter_rss_mib"] = f"failed: {exc}"
    for name in FUNCTIONS:
        module = f"functions.{name}.app"
        try:
            runs = [_probe(module, timeout) for _ in range(reps)]
            out[name] = {
                "module": module,
                "import_seconds": round(statistics.median(r["seconds"] for r in runs), 3),
                "rss_mib": round(statistics.median(r["rss_mib"] for r in runs), 1),
                "peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs), 1),
                "samples_seconds": [round(r["seconds"], 3) for r in runs],
                "importtime": importtime(module, timeout),
            }
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            out[name] = {"module": module, "failed": f"failed: {exc}"}
    return out


# ------------------------------------------------------------------------------ package size


def _requirements(dist: importlib.metadata.Distribution) -> list[str]:
    """Names of the distributions ``dist`` requires here (markers evaluated, no extra)."""
    from packaging.requirements import Requirement

    names = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        names.append(req.name)
    return names


def _closure(roots: list[str]) -> dict[str, importlib.metadata.Distribution]:
    """Normalised name -> installed distribution, for ``roots`` and what they require."""
    from packaging.utils import canonicalize_name

    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        seen[name] = dist
        todo.extend(_requirements(dist))
    return seen


def _installed_bytes(dist: importlib.metadata.Distribution) -> tuple[int, int]:
    """(bytes without ``__pycache__``, bytes with it) of the distribution's installed files."""
    code = everything = 0
    for f in dist.files or []:
        if f.parts and f.parts[0].endswith((".dist-info", ".egg-info")) or ".." in f.parts:
            continue  # metadata, and scripts installed outside site-packages
        path = Path(str(f.locate()))
        try:
            size = path.stat().st_size
        except OSError:
            continue
        everything += size
        if "__pycache__" not in f.parts:
            code += size
    return code, everything


def _tree_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts)


def package_sizes() -> dict[str, Any]:
    """The layer's and each function's size, MiB (see module docstring)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    roots = [re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0] for d in project["dependencies"]]
    dists = _closure(roots)
    sizes = {name: _installed_bytes(d) for name, d in dists.items()}
    package = _tree_bytes(ROOT / "shared" / "opendepot")
    layer = package + sum(code for code, _ in sizes.values())
    with_bytecode = package + sum(full for _, full in sizes.values())
    ranked = sorted(sizes.items(), key=lambda kv: -kv[1][0])
    shared = [re.split(r"[\s<>=!~;\[#]", line.strip(), maxsplit=1)[0]
              for line in (ROOT / "shared" / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    shared_layer = package + sum(sizes[n][0] for n in _closure(shared) if n in sizes)
    out: dict[str, Any] = {
        "shared_layer_mib": round(shared_layer / MIB, 1),
        "shared_layer": "what SAM builds for the template's SharedLayer: shared/opendepot and "
                        "shared/requirements.txt with what it requires (the other dependencies "
                        "come from the public layers and the runtime)",
        "what_counts": "shared/opendepot (no __pycache__) + the installed files (RECORD, no "
                       "__pycache__, no metadata) of the runtime dependencies in pyproject.toml "
                       "and what they require, transitively, as installed in this environment",
        "opendepot_package_mib": round(package / MIB, 2),
        "dependencies_mib": {name: round(code / MIB, 2) for name, (code, _) in ranked},
        "layer_mib": round(layer / MIB, 1),
        "layer_with_bytecode_mib": round(with_bytecode / MIB, 1),
        "lambda_unzipped_limit_mb": LAMBDA_UNZIPPED_LIMIT_MB,
        "functions_mib": {},
    }
    for name in FUNCTIONS:
        own = _tree_bytes(ROOT / "functions" / name)
        out["functions_mib"][name] = {"own_code_mib": round(own / MIB, 3),
                                      "with_layer_mib": round((layer + own) / MIB, 1)}
    return out


def table(cold: dict[str, Any], sizes: dict[str, Any]) -> str:
    """Lines for the printed report."""
    lines = [f"cold start (fresh interpreter importing the handler module; interpreter alone "
             f"{cold.get('interpreter_rss_mib')} MiB resident; warm page cache):"]
    for name in FUNCTIONS:
        c = cold.get(name) or {}
        if "failed" in c or not c:
            lines.append(f"  {name:10} {c.get('failed', 'failed: not measured')}")
            continue
        heavy = ", ".join(f"{k} {v:.2f}" for k, v in
                          list(c["importtime"]["by_package_seconds"].items())[:5])
        size = (sizes.get("functions_mib") or {}).get(name, {}).get("with_layer_mib")
        lines.append(f"  {name:10} import {c['import_seconds']:.2f} s, {c['rss_mib']:.0f} MiB "
                     f"resident; package {size} MiB; heaviest imports (s): {heavy}")
    if sizes.get("layer_mib") is not None:
        top = ", ".join(f"{k} {v:.0f}" for k, v in list(sizes["dependencies_mib"].items())[:6])
        lines.append(f"  layer {sizes['layer_mib']} MiB unzipped "
                     f"({sizes['layer_with_bytecode_mib']} with bytecode; opendepot "
                     f"{sizes['opendepot_package_mib']} MiB; largest MiB: {top}); Lambda's "
                     f"limit {LAMBDA_UNZIPPED_LIMIT_MB} MB; the template's own SharedLayer "
                     f"{sizes.get('shared_layer_mib')} MiB")
    return "\n".join(lines)
