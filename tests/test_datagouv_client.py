"""The official data.gouv.fr client (``datagouv-client``) against the local stack, unchanged.

A real Santé publique France file (hospital stock of 17 March 2021) goes through the moto stack
(validate, stage, publish); the index is served on localhost and the client is pointed at it
(its ``base_url``, nothing else). It reads a Dataset, a Resource by its id alone (API v2), an
Organization and its datasets (pager), downloads files and asks
``check_if_more_recent_update`` (two ``X-Fields`` masks): every value is checked against the
published files and the source.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import HOSP
from infra.http_server import LocalHttpApi
from infra.pump import Pump, bindings_for
from infra.stack import LocalStack
from opendepot import runtime
from opendepot.config import Settings
from opendepot.index import dataset_id, resource_id
from opendepot.layout import organization_id
from opendepot.storage import S3Store

datagouv = pytest.importorskip("datagouv")
pytestmark = pytest.mark.e2e

SOURCE = "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
SPF = "sante-publique-france"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def published(real_dir: Path) -> Iterator[tuple[LocalStack, LocalHttpApi]]:
    """The local stack with the real file published, and the HTTP index on localhost."""
    from functions.index_api import app as index_app

    port = free_port()
    with LocalStack(api_port=port) as stack:
        runtime.use(None)
        index_app.configure(S3Store(stack.s3), Settings.from_env())
        api = LocalHttpApi(index_app.lambda_handler, port=port)
        api.start()
        try:
            body = (real_dir / HOSP / SOURCE).read_bytes()
            stack.s3.put_object(Bucket=stack.incoming_bucket, Key=f"{HOSP}/spf/{SOURCE}", Body=body)
            Pump(stack.sqs, bindings_for(stack)).run(timeout=180)
            yield stack, api
        finally:
            api.stop()
            runtime.use(None)
            index_app.configure(None, Settings())


@pytest.fixture
def client(published: tuple[LocalStack, LocalHttpApi]) -> Any:
    c = datagouv.Client(verbose=False)
    c.base_url = published[1].url  # the one change: where the API is
    return c


@pytest.fixture(scope="module")
def source(real_dir: Path) -> pd.DataFrame:
    frame = pd.read_csv(real_dir / HOSP / SOURCE, sep=";", dtype={"dep": str})
    return frame[(frame.jour == "2021-03-16") & (frame.sexe == 0)].set_index("dep")


def test_dataset__metadata_resources_and_organization(client: Any) -> None:
    d = client.dataset(HOSP)
    assert d.id == HOSP and d.title == "Données hospitalières relatives à l'épidémie de COVID-19"
    assert d.frequency == "daily" and d.license == "lov2"
    assert d.metrics["reuses"] == 0 and d.internal["last_modified_internal"] == d.last_modified
    assert d.organization.id == organization_id(SPF)
    assert d.organization.name == "Santé publique France"
    assert sorted((r.extras["level"], r.format) for r in d.resources) == [
        (lv, f) for lv in ("dep", "fra", "reg") for f in ("csv", "parquet")]
    by_id = client.dataset(dataset_id(HOSP))
    assert [r.id for r in by_id.resources] == [r.id for r in d.resources]


def test_resource_by_id_alone__its_dataset_and_download(client: Any, source: pd.DataFrame,
                                                       tmp_path: Path) -> None:
    rid = resource_id(HOSP, "dep", "csv")
    r = client.resource(rid)  # /api/2/datasets/resources/{rid}/ gives its dataset
    assert r.dataset_id == dataset_id(HOSP) and r.format == "csv" and r.type == "main"
    assert r.dataset.title == "Données hospitalières relatives à l'épidémie de COVID-19"
    path = r.download(tmp_path / "dep.csv")
    data = path.read_bytes()
    assert len(data) == r.filesize and hashlib.sha256(data).hexdigest() == r.checksum["value"]
    got = pd.read_csv(io.BytesIO(data), sep=";", dtype={"dep": str})
    got = got[(got.jour == "2021-03-16") & (got.sexe == 0)].set_index("dep")
    assert got.loc["2A", ["hosp", "rea", "rad", "dc"]].tolist() == [22, 4, 344, 84]
    for dep in ("2A", "971", "75", "13"):
        assert got.loc[dep, ["hosp", "rea", "rad", "dc"]].tolist() == \
            source.loc[dep, ["hosp", "rea", "rad", "dc"]].tolist()
    buffer = client.resource(resource_id(HOSP, "fra", "parquet")).download_buffer()
    assert buffer.read(4) == b"PAR1"


def test_organization__with_its_datasets(client: Any) -> None:
    org = client.organization(SPF)
    assert org.name == "Santé publique France" and org.id == SPF
    assert org.metrics["datasets"] == 1 and org.members == []
    [dataset] = list(org.datasets)
    assert dataset.id == dataset_id(HOSP) and len(dataset.resources) == 6
    assert list(client.organization(organization_id(SPF)).datasets)[0].id == dataset_id(HOSP)


def test_download_resources__every_main_file_as_published(client: Any, tmp_path: Path) -> None:
    d = client.dataset(HOSP)
    d.download_resources(tmp_path)
    for r in d.resources:
        data = (tmp_path / f"{r.id}.{r.format}").read_bytes()
        assert hashlib.sha256(data).hexdigest() == r.checksum["value"], r.title
    rows = pd.read_csv(tmp_path / f"{resource_id(HOSP, 'fra', 'csv')}.csv", sep=";")
    assert len(rows) == d.extras["rows"]["fra"]


def test_check_if_more_recent_update__through_x_fields_masks(client: Any) -> None:
    r = client.resource(resource_id(HOSP, "reg", "parquet"))
    # every file of a version is published at once: none is more recent than another
    assert r.check_if_more_recent_update(dataset_id(HOSP)) is False
    masked = client.session.get(f"{client.base_url}/api/1/datasets/{HOSP}/",
                                headers={"X-fields": "resources{internal{last_modified_internal}}"})
    doc = json.loads(masked.text)
    assert list(doc) == ["resources"] and len(doc["resources"]) == 6
    assert {json.dumps(x, sort_keys=True) for x in doc["resources"]} == {
        json.dumps({"internal": {"last_modified_internal": r.internal["last_modified_internal"]}})}
    assert r.internal["last_modified_internal"] == r.last_modified
