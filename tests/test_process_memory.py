"""The process's memory and threads as the functions set them up (``opendepot.memory``,
``opendepot.concurrency``): small pages and jemalloc for Arrow, threads kept between calls, and
a call made from one of those threads that cannot wait for the others."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from opendepot import concurrency, memory


def test_import__arrow_on_jemalloc_and_no_huge_pages():
    try:
        pa.jemalloc_memory_pool()
        expected = "jemalloc"
    except NotImplementedError:  # an Arrow built without it: the C heap
        expected = "system"
    assert pa.default_memory_pool().backend_name == expected
    status = Path("/proc/self/status")
    if sys.platform == "linux" and "THP_enabled" in status.read_text():  # (since Linux 6.0)
        assert "THP_enabled:\t0" in status.read_text()
    memory.release_memory()  # and handing memory back still works on that pool


def test_storage_threads__kept_between_calls_a_nested_call_runs_on_its_thread():
    """``each`` and ``map_ordered`` run on the same few threads from one call to the next; a
    call made from one of them (a read inside an upload) runs there, in order, instead of
    waiting for threads its caller holds (4 uploads, 4 threads, each reading 3 things)."""
    names: set[str] = set()

    def read(n: int) -> int:
        names.add(threading.current_thread().name)
        return n * 10

    def upload(n: int) -> None:
        assert concurrency.map_ordered(read, [n, n + 1, n + 2], threads=4) == [
            n * 10, n * 10 + 10, n * 10 + 20]

    for _ in range(3):
        concurrency.each(upload, [1, 2, 3, 4], lambda n: n, threads=4, budget=100)
    assert names and all(n.startswith("opendepot-storage") for n in names)
    assert len(names) <= 4
    assert concurrency.map_ordered(read, [], threads=4) == []
    with pytest.raises(KeyError):
        concurrency.map_ordered(lambda n: {}[n], [1, 2], threads=4)
