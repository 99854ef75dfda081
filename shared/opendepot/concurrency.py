"""Bounded concurrency for independent storage requests (a version's uploads, ``latest/`` copies,
manifest and record reads): a few threads at once, and a cap on the bytes in flight."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


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

    def bounded(item: T) -> object:
        nonlocal busy
        need = min(size(item), budget)
        with room:
            room.wait_for(lambda: busy + need <= budget)
            busy += need
        try:
            return call(item)
        finally:
            with room:
                busy -= need
                room.notify_all()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for done in [pool.submit(bounded, item) for item in items]:
            done.result()


def map_ordered(call: Callable[[T], R], items: Sequence[T], *, threads: int) -> list[R]:
    """``call`` on every item (small reads), ``threads`` at a time; the results in the items'
    order, or the first failure (in the items' order) once every call has ended."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(call, items))
