"""End to end on the local stack: moto server with the template's buckets and queues, the queue
pump, and the HTTP index served on localhost. Real files go in; reusers' HTTP requests come out."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import socket
import urllib.request

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import HOSP
from infra.http_server import LocalHttpApi
from infra.pump import Pump, bindings_for
from infra.stack import LocalStack
from opendepot import runtime
from opendepot.config import Settings
from opendepot.registry import Registry, load_cog, load_descriptor, load_registry, parse_dataset
from opendepot.storage import S3Store, SqsQueue

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def local(monkeypatch):
    """The local stack and the HTTP index, handlers wired to them (and reset afterwards)."""
    from functions.index_api import app as index_app

    port = free_port()
    with LocalStack(api_port=port) as stack:
        runtime.use(None)  # handlers rebuild their clients from the stack's environment
        index_app.configure(S3Store(stack.s3), Settings.from_env())
        api = LocalHttpApi(index_app.lambda_handler, port=port)
        api.start()
        try:
            yield stack, api
        finally:
            api.stop()
            runtime.use(None)
            index_app.configure(None, Settings())


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    """GET as a browser on another site would (with an Origin), following redirects."""
    request = urllib.request.Request(url, headers={"Origin": "https://reuser.example"})
    with urllib.request.urlopen(request, timeout=10) as r:  # follows the 302 of `latest` links
        return r.status, dict(r.headers), r.read()


def drop(stack: LocalStack, key: str, body: bytes) -> None:
    stack.s3.put_object(Bucket=stack.incoming_bucket, Key=key, Body=body)


def test_real_files_through_the_stack__index_latest_links_serve_the_published_values(local, real_dir):
    stack, api = local
    pump = Pump(stack.sqs, bindings_for(stack))
    source = real_dir / HOSP / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
    drop(stack, f"{HOSP}/spf/covid_hospit-2020-03-24.csv",
         (real_dir / HOSP / "opencovid19-fr-mirror/2020-03-24_2c1018e/covid_hospit.csv").read_bytes())
    pump.run(timeout=120)
    drop(stack, f"{HOSP}/spf/{source.name}", source.read_bytes())
    pump.run(timeout=120)

    status, headers, body = get(f"{api.url}/api/1/datasets/")
    listing = json.loads(body)
    assert status == 200 and listing["total"] == 1 and headers["Access-Control-Allow-Origin"] == "*"
    [summary] = listing["data"]
    status, _, body = get(f"{api.url}/api/1/datasets/{summary['slug']}/")
    dataset = json.loads(body)
    resources = {(r["extras"]["level"], r["format"]): r for r in dataset["resources"]}
    assert len(resources) == 6

    want = pd.read_csv(source, sep=";", dtype={"dep": str})
    want = want[(want.jour == "2021-03-16") & (want.sexe == 0)].set_index("dep")
    for fmt in ("csv", "parquet"):
        r = resources[("dep", fmt)]
        assert r["latest"].startswith(f"{api.url}/api/1/datasets/r/")
        status, _, body = get(r["latest"])
        assert status == 200 and len(body) == r["filesize"]
        assert hashlib.sha256(body).hexdigest() == r["checksum"]["value"]
        if fmt == "csv":
            got = pd.read_csv(io.BytesIO(body), sep=";", dtype={"dep": str})
        else:
            got = pq.read_table(io.BytesIO(body)).to_pandas()
            got["jour"] = got["jour"].astype(str)
        got = got[(got.jour == "2021-03-16") & (got.sexe == 0)].set_index("dep")
        for dep in ("2A", "971", "75"):
            assert got.loc[dep, ["hosp", "rea", "rad", "dc"]].tolist() == \
                want.loc[dep, ["hosp", "rea", "rad", "dc"]].tolist()
    status, _, body = get(resources[("reg", "csv")]["latest"])
    reg = pd.read_csv(io.BytesIO(body), sep=";", dtype={"reg": str})
    corse = reg[(reg.reg == "94") & (reg.jour == "2021-03-16") & (reg.sexe == 0)].hosp.iloc[0]
    assert corse == want.loc[["2A", "2B"], "hosp"].sum()


def test_twenty_uploads_from_four_threads__final_version_holds_every_upload(local):
    """Publications of one dataset are serialised (FIFO group) and guarded by conditional
    writes; with 2 pump workers every accepted upload ends up in the final version, and every
    version's manifest matches its files."""
    stack, _ = local
    descriptor = load_descriptor(HOSP)
    descriptor["name"], descriptor["mode"] = "test-append", "append"
    registry = Registry({**load_registry().datasets, "test-append": parse_dataset(descriptor)})
    runtime.use(runtime.Runtime(Settings.from_env(), S3Store(stack.s3), SqsQueue(stack.sqs),
                                registry, load_cog()))
    pump = Pump(stack.sqs, bindings_for(stack), workers=2)

    def upload(i: int) -> None:
        day = f"2020-04-{i + 1:02d}"
        body = f"dep;sexe;jour;hosp;rea;rad;dc\n75;0;{day};{100 + i};1;1;1\n2A;0;{day};{i};0;0;0\n"
        drop(stack, f"test-append/spf/day-{i:02d}.csv", body.encode())

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(upload, range(20)))
    pump.run(timeout=120)

    s3 = stack.s3
    manifest = json.loads(s3.get_object(Bucket=stack.published_bucket,
                                        Key="test-append/manifest.json")["Body"].read())
    # made of the 20 uploads; each version lists those it brought, every one brought once
    assert manifest["versions"][0]["upload_count"] == 20
    brought = [u for v in manifest["versions"] for u in v["upload_ids"]]
    assert len(brought) == len(set(brought)) == 20
    assert manifest["rows"]["dep"] == 40
    fra = pd.read_csv(io.BytesIO(s3.get_object(
        Bucket=stack.published_bucket, Key="test-append/latest/test-append-fra.csv")["Body"].read()), sep=";")
    assert fra.hosp.tolist() == [100 + 2 * i for i in range(20)]
    for version in manifest["versions"]:
        for r in version["resources"]:
            head = s3.head_object(Bucket=stack.published_bucket, Key=r["path"])
            assert head["ContentLength"] == r["bytes"]
    assert all(stack.queue_depth(q.url) == (0, 0, 0) for q in stack.dead_letter_queues())


def test_every_real_file_through_the_stack__accepted_or_rejected_for_its_real_defect(local, real_dir):
    """Issue 4's table: every real file dropped under its dataset and producer, in publication
    order, through the local stack. No file crashes the pipeline."""
    from infra.demo import collect_real, count_warnings, find_report
    from infra.reports import report_list, status_of

    stack, api = local
    pump = Pump(stack.sqs, bindings_for(stack))
    files, unmapped = collect_real(real_dir)
    assert unmapped == []
    table = {}
    for f in files:
        key = f"{f.dataset}/{f.producer}/{f.name}"
        r = stack.s3.put_object(Bucket=stack.incoming_bucket, Key=key, Body=f.read())
        stats = pump.run(timeout=120)
        assert stats.errors == [], (key, stats.errors)  # no function crashed
        report = find_report(report_list(stack, f.dataset, f.producer), key, r.get("VersionId"))
        assert report is not None, key
        meta = report["opendepot"]
        table[f.name] = (status_of(report), meta.get("rows_published"), count_warnings(report),
                         meta.get("rows_left_out"))
    print("\n".join(f"{name:<70} {row}" for name, row in table.items()))
    not_accepted = {name: row[0] for name, row in table.items() if row[0] != "accepted"}
    assert not_accepted == {
        "2020-03-25_8b00bef-covid_hospit.csv": "rejected",  # the 2020-03-24 block appended twice
        "2020-03-27.yaml": "rejected",  # ARS Corse: a TAB-only line, not valid YAML
        "2020-10-31_9c91c00-chiffres-cles.csv": "held",  # the broken nightly build, 72% smaller
    }
    assert all(stack.queue_depth(q.url) == (0, 0, 0) for q in stack.dead_letter_queues())
    status, _, body = get(f"{api.url}/api/1/datasets/?page_size=100")
    listed = {d["slug"] for d in json.loads(body)["data"]}
    assert listed == set(load_registry().datasets) and len(listed) == 18
