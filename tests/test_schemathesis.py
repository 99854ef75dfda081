"""The OpenAPI document is the truth (issue 16, item 4): schemathesis, every check, a fixed seed
and a bounded number of examples, run as a reuser runs it (its command line) against the local
stack serving a real publication.

The path parameters are set to ids that exist (the real hospital file's dataset, resource,
version and organization, a seeded reuse), so every operation reaches its real answer and the
query parameters are fuzzed around it; unknown ids are covered by the unit tests of each route.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conftest import HOSP
from infra.http_server import LocalHttpApi
from infra.pump import Pump, bindings_for
from infra.stack import LocalStack
from opendepot import runtime
from opendepot.config import Settings
from opendepot.storage import S3Store

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = 15
"""Examples per operation and phase (``--max-examples``): 71 operations in about 2 minutes."""
REUSE = ROOT / "infra" / "reuses" / "etalab" / "tableau-de-bord-covid19.yaml"


def _json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def served(real_dir: Path):
    """The local stack with the real hospital stock file of 2021-03-17 published and one real
    reuse registered, its index served on a free port."""
    from functions.index_api import app as index_app

    with LocalStack() as stack:
        runtime.use(None)
        pump = Pump(stack.sqs, bindings_for(stack))
        source = real_dir / HOSP / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
        for key, body in ((f"{HOSP}/spf/{source.name}", source.read_bytes()),
                          (f"reuses/etalab/{REUSE.name}", REUSE.read_bytes())):
            stack.s3.put_object(Bucket=stack.incoming_bucket, Key=key, Body=body)
            pump.run(timeout=180)
        index_app.configure(S3Store(stack.s3), Settings.from_env())
        api = LocalHttpApi(index_app.lambda_handler)
        api.start()
        try:
            yield api.url
        finally:
            api.stop()
            runtime.use(None)
            index_app.configure(None, Settings())


def _config(url: str, path: Path) -> Path:
    """``schemathesis.toml``: the ids of what the stack serves, for the path parameters."""
    [dataset] = _json(f"{url}/api/1/datasets/")["data"]
    [org] = _json(f"{url}/api/1/organizations/")["data"]
    [reuse] = _json(f"{url}/api/1/reuses/")["data"]
    [version] = _json(f"{url}/api/1/datasets/{dataset['slug']}/versions/")["data"]
    rid = next(r["id"] for r in dataset["resources"]
               if r["extras"]["level"] == "dep" and r["format"] == "csv")
    values = {"dataset": dataset["slug"], "rid": rid, "org": org["slug"],
              "version": version["version"], "reuse": reuse["id"]}
    lines = ["[parameters]", *(f'"path.{k}" = "{v}"' for k, v in values.items()), "",
             # a filter names one of the resource's columns, which the document (one for every
             # resource) cannot list: a well-formed filter on another column is a 400
             "[[operations]]", 'include-path-regex = "^/api/resources/.+/data/"',
             'checks.positive_data_acceptance.expected-statuses = '
             '["2xx", "3xx", "400", "403", "404"]', "",
             # a period (`temporal_coverage`) is two calendar days, the first not after the
             # last: a pattern cannot say 2021-02-30 is no day, nor compare the two
             "[[operations]]", 'include-path-regex = "^/api/1/(organizations/.+/)?datasets/$"',
             'checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "404"]']
    path.write_text("\n".join(lines) + "\n")
    return path


def test_schemathesis_every_check__zero_failures(served: str, tmp_path: Path) -> None:
    config = _config(served, tmp_path / "schemathesis.toml")
    junit = tmp_path / "junit.xml"
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
         f"{served}/api/1/openapi.json", "--checks", "all", "--seed", "1",
         "--max-examples", str(EXAMPLES), "--report", "junit",
         "--report-junit-path", str(junit), "--no-color"],
        capture_output=True, text=True, timeout=1200, cwd=tmp_path,
    )
    log = run.stdout + run.stderr
    suites = ET.parse(junit).getroot()
    cases = suites.findall(".//testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None
              or c.find("error") is not None]
    assert len(cases) >= 60, log[-3000:]  # every operation of the document was tested
    assert failed == [], log[-6000:]
    assert run.returncode == 0, log[-6000:]
