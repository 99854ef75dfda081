"""Bounded concurrency for independent storage requests (a version's uploads, ``latest/`` copies,
manifest and record reads): a few threads at once, and a cap on the bytes in flight.

The threads are the process's own (``_POOL``), kept between calls: a publication makes a dozen
such calls, and starting four threads for each cost it several milliseconds each time (more on
a busy machine). A call takes at most its ``threads`` of them, each running items one after the
other; a call made from one of them runs its items on that thread alone (it could otherwise
wait for threads its own caller holds)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_PREFIX = "opendepot-storage"
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix=_PREFIX)
"""The threads of every call; most are idle (a call in a Lambda runs alone)."""


def _run(work: Callable[[], None], threads: int, count: int) -> None:
    """``work`` (which takes items until there are none, and never raises) on ``threads``
    threads at most (one per item at most), and returns once they are done; inline on a
    thread of ``_POOL``."""
    if threading.current_thread().name.startswith(_PREFIX):
        work()
        return
    for runner in [_POOL.submit(work) for _ in range(max(1, min(threads, count)))]:
        runner.result()


def _taker(items: Sequence[T]) -> Callable[[], tuple[int, T] | None]:
    """The next (position, item) of ``items`` for whichever thread asks, None once all taken."""
    lock = threading.Lock()
    pending: Iterator[tuple[int, T]] = iter(enumerate(items))

    def take() -> tuple[int, T] | None:
        with lock:
            return next(pending, None)

    return take


def each(
    call: Callable[[T], object],
    items: Sequence[T],
    size: Callable[[T], int],
    *,
    threads: int,
    budget: int,
) -> None:
    """``call`` on every item, ``threads`` at a time and while the items in flight hold at most
    ``budget`` bytes (``size``: an item's body, in bytes; an item larger than the budget runs
    alone). Returns once every call has ended, failed ones included (a failure does not stop the
    others: each is one independent object); then raises the error of the first failing item, in
    the items' order."""
    room = threading.Condition()
    busy = 0
    take = _taker(items)
    failures: dict[int, BaseException] = {}

    def work() -> None:
        nonlocal busy
        while (taken := take()) is not None:
            i, item = taken
            try:
                need = min(size(item), budget)
            except BaseException as exc:  # noqa: BLE001 - raised by ``each``, in order
                failures[i] = exc
                continue
            with room:
                while busy + need > budget:
                    room.wait()
                busy += need
            try:
                call(item)
            except BaseException as exc:  # noqa: BLE001 - as above
                failures[i] = exc
            finally:
                with room:
                    busy -= need
                    room.notify_all()

    _run(work, threads, len(items))
    if failures:
        raise failures[min(failures)]


def map_ordered(call: Callable[[T], R], items: Sequence[T], *, threads: int) -> list[R]:
    """``call`` on every item (small reads), ``threads`` at a time; the results in the items'
    order, or the first failure (in the items' order) once every call has ended."""
    results: list[Any] = [None] * len(items)
    take = _taker(items)
    failures: dict[int, BaseException] = {}

    def work() -> None:
        while (taken := take()) is not None:
            i, item = taken
            try:
                results[i] = call(item)
            except BaseException as exc:  # noqa: BLE001 - raised by ``map_ordered``, in order
                failures[i] = exc

    _run(work, threads, len(items))
    if failures:
        raise failures[min(failures)]
    return results
