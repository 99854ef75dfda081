"""The process's memory: small pages, and handing freed memory back to the system between the
phases of a function.

On import (the functions' cold start), ``use_small_pages`` turns transparent huge pages off for
the process, lets glibc's heap keep large freed blocks for reuse (``HEAP_BYTES``) and makes Arrow
allocate with jemalloc (else the C heap) rather than its bundled mimalloc. In a Firecracker
microVM (Lambda's, this project's bench machine), memory the process has not touched yet costs a
page fault that the host may have to back: a 2 MiB huge page costs that for all of its 512
pages at once, used or not. Measured on the validation and publication of 1.1 million rows: 17 %
of the CPU time went to the kernel zeroing fresh huge pages (mimalloc's arenas and NumPy's large
arrays ask for them), 4 % without them, and the two handlers' CPU time fell by 0.5 s; on 11
million rows the publication's peak is 950 MiB with jemalloc, 1,080 MiB with the C heap (whose
per-thread arenas keep more memory) (``docs/design.md``, "Against DuckDB and Polars").
"""

from __future__ import annotations

import ctypes
from typing import Any

import pyarrow as pa


def _glibc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _glibc()


PR_SET_THP_DISABLE = 41
"""``prctl`` option (Linux): no transparent huge page for the process, whoever asks for one."""
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""``mallopt`` parameters (glibc)."""
HEAP_BYTES = 1 << 30
"""Blocks up to this size come from glibc's heap, whose freed memory stays there for the next
ones until ``release_memory`` hands it back (by default glibc maps each block over 32 MiB
afresh, and unmaps it when freed: NumPy's arrays of 11 million rows, 88 MB each, cost page
faults at every use; the ×100 validation took 12.0 s instead of 13.9, with half the faults)."""


def use_small_pages() -> None:
    """Transparent huge pages off for the process (``prctl(PR_SET_THP_DISABLE)``, Linux; kept
    by child processes), glibc's heap serving blocks up to ``HEAP_BYTES`` and keeping freed
    memory (``mallopt``), and Arrow's default pool set to jemalloc
    (``pyarrow.jemalloc_memory_pool``), else to the C heap (``pyarrow.system_memory_pool``).
    Called once on import; does nothing that fails where they are missing."""
    if _LIBC is not None and hasattr(_LIBC, "prctl"):
        _LIBC.prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(M_MMAP_THRESHOLD, HEAP_BYTES)
        _LIBC.mallopt(M_TRIM_THRESHOLD, 2 * HEAP_BYTES)
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # an Arrow built without it (e.g. some Lambda layers)
        pool = pa.system_memory_pool()
    pa.set_memory_pool(pool)


use_small_pages()


def release_memory() -> None:
    """Give freed memory back to the system: Arrow's pool (which keeps freed pages for reuse),
    then glibc's heap, where many mid-sized NumPy temporaries leave free but unreturned pages
    (about 180 MiB after validating 11 million rows); one trim when Arrow's pool is that heap
    (``pool.release_unused`` trims it). Elsewhere than glibc, only Arrow's pool. A trim walks
    the whole heap (about 13 ms).

    Called between phases whose peaks would otherwise add up: validation's batches, and a
    publication's rendering before its uploads (which an in-process S3 emulator holds whole)."""
    pool = pa.default_memory_pool()
    pool.release_unused()  # the system pool: malloc_trim itself
    if _LIBC is not None and pool.backend_name != "system":
        _LIBC.malloc_trim(0)
