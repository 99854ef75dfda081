"""The index benchmark runs end to end: server thread, load from a second process, results file."""

from __future__ import annotations

import json
from pathlib import Path

from bench import index_bench
from opendepot.contracts import Catalog, Manifest
from opendepot.index import Links, build_catalog


def test_synthetic_store__datasets_with_their_versions_each_its_contract() -> None:
    store, slugs = index_bench.synthetic_store(3, 4)
    assert slugs == ["jeu-de-donnees-00", "jeu-de-donnees-01", "jeu-de-donnees-02"]
    raw = json.loads(store.get(index_bench.BUCKET, "catalog.json"))
    assert Catalog.from_json(raw).to_json() == raw
    catalog = build_catalog(Catalog.from_json(raw), Links(index_bench.FILES, "http://127.0.0.1"))
    assert [d["slug"] for d in catalog.datasets] == slugs
    manifest = json.loads(store.get(index_bench.BUCKET, f"{slugs[1]}/manifest.json"))
    assert Manifest.from_json(manifest).to_json() == manifest
    assert len(manifest["versions"]) == 4
    assert manifest["versions"][0]["version"] == manifest["version"]
    assert store.head(index_bench.BUCKET, manifest["datapackage_path"]) is not None


def test_bench_short_run__every_scenario_answered_and_written(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    args = ["--seconds", "0.2", "--threads", "2", "--datasets", "3", "--versions", "4",
            "--no-tabular"]  # the row-level API's part: tests/test_tabular.py
    assert index_bench.main([*args, "--out", str(out)]) == 0
    report = json.loads(out.read_text("utf-8"))
    assert report["setup"]["datasets"] == 3
    names = [r["name"] for r in report["results"]]
    assert names[0] == "dataset detail" and "dataset list (20/page)" in names
    for r in report["results"]:
        assert r["requests"] > 0
        expected = "304" if r["name"] == "detail poll, 304" else "200"
        assert r["statuses"] == {expected: r["requests"]}
        assert 0 < r["p50_ms"] <= r["p99_ms"]
