"""The registry as shipped: every descriptor parses, and declared feeds form no cycle (the
publish function asks fed datasets to publish again, which must always end)."""

from __future__ import annotations

from opendepot import feeds
from opendepot.registry import load_registry


def test_feed_graph__is_acyclic_so_dependent_republication_ends():
    registry = load_registry()
    edges = {ds.name: feeds.dependents(registry, ds.name) for ds in registry}
    assert edges["donnees-hospitalieres-covid19"] == ["chiffres-cles"]

    def reaches(start: str, target: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(n == target or (n not in seen and reaches(n, target, seen | {n}))
                   for n in edges[start])

    assert not [name for name in edges if reaches(name, name)]


def test_publishing_the_hospital_file__asks_chiffres_cles_to_publish_again(pipeline, real_dir):
    from functions.publish.app import record_handler
    from opendepot import runtime
    from opendepot.registry import load_cog

    class Record:
        body = '{"dataset": "donnees-hospitalieres-covid19", "upload_id": "x"}'

    path = real_dir / "donnees-hospitalieres-covid19/opencovid19-fr-mirror/2020-03-23_3f62f18/covid_hospit.csv"
    pipeline.drop("donnees-hospitalieres-covid19/spf/covid_hospit.csv", path.read_bytes())
    pipeline.queue.sent.clear()
    runtime.use(runtime.Runtime(pipeline.settings, pipeline.store, pipeline.queue, load_registry(),
                                load_cog(), clock=lambda: pipeline.now))
    try:
        record_handler(Record())
        sent = [(body["dataset"], group) for _, body, group in pipeline.queue.sent]
        assert sent == [("chiffres-cles", "chiffres-cles")]
        record_handler(Record())  # same uploads: no new version, nobody asked again
        assert len(pipeline.queue.sent) == 1
    finally:
        runtime.use(None)
