"""Resident memory of the current process, in MiB.

``peak()`` is ``VmHWM`` of ``/proc/self/status`` (the process's own high-water mark).
``reset_peak()`` writes ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0), which resets that
high-water mark to the current resident size, so a peak can be taken over one call only; it
returns False where the kernel does not allow it (then ``peak()`` stays the lifetime peak).

Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries it over ``fork`` and ``exec``, so a child
started by a process holding 300 MiB reports at least 300 MiB, and ``clear_refs`` does not reset
it (the bench's driver holds the generated workloads: every child's peak read that way was at
least the driver's). ``ru_maxrss`` is the fallback where ``/proc`` is missing.
"""

from __future__ import annotations

import resource
from collections.abc import Callable

MIB = 1024.0


def peak() -> float:
    """Peak resident set size since start (or since the last ``reset_peak``), MiB."""
    hwm = _status("VmHWM:")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MIB


def _status(field: str) -> float | None:
    """A ``kB`` figure of ``/proc/self/status``, MiB (None where it cannot be read)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / MIB
    except OSError:
        pass
    return None


def current() -> float:
    """Resident set size now, MiB (``VmRSS``)."""
    rss = _status("VmRSS:")
    return rss if rss is not None else peak()


def reset_peak() -> bool:
    """Reset the peak to the current resident size; False if this kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def limit_address_space(gib: float) -> None:
    """Cap the process's virtual memory (``RLIMIT_AS``): past it, allocations fail with
    MemoryError instead of the machine swapping or the OOM killer choosing a victim."""
    limit = int(gib * 1024**3)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def store_peaks(size_mib: int, workdir: str, *, patch_moto: bool = True,
                seed: str | None = None) -> dict[str, object]:
    """Move one ``size_mib`` MiB file through ``opendepot.storage.S3Store`` on the local stack
    (``infra.stack.LocalStack``, moto's server in this process) and measure each operation.

    Returns ``{"size_mib", "baseline_mib", "peak_above_baseline_mib": {op: MiB}, "sha256":
    {op: hex}, "patched"}``: ``put`` (from an open file), ``get_file`` (into a file), ``copy``
    (to a second key, then ``get_file`` of the copy checked), ``ranges`` (``get_range`` in 8 MiB
    pieces). Each peak is ``VmHWM`` over that operation alone (``reset_peak`` before it) minus
    the resident size just before it, so client and server copies both count. ``patch_moto``
    False leaves moto unpatched (to measure what ``infra.moto_disk`` saves). ``seed``: a file
    whose content, repeated, makes the object (else a synthetic 1 MiB block). Linux only.
    """
    import hashlib
    import os

    from infra.stack import LocalStack
    from opendepot.storage import S3Store

    src = os.path.join(workdir, "src.bin")
    block = hashlib.sha256(b"opendepot").digest() * (1 << 15)  # 1 MiB, not all one byte
    if seed is not None:
        with open(seed, "rb") as seed_file:
            block = seed_file.read()
    with open(src, "wb") as dst:
        left = size_mib << 20
        while left > 0:
            dst.write(block[:left])
            left -= min(len(block), left)

    def sha(path: str) -> str:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()

    peaks: dict[str, float] = {}
    sums: dict[str, str] = {"source": sha(src)}
    with LocalStack(api_port=None) as stack:
        if not patch_moto:
            from infra import moto_disk

            moto_disk.restore()
        store, bucket = S3Store(stack.s3), stack.published_bucket

        def measure(op: str, fn: Callable[[], object]) -> None:
            reset_peak()
            base = current()
            fn()
            peaks[op] = round(peak() - base, 1)

        def put() -> None:
            with open(src, "rb") as f:
                store.put(bucket, "big.bin", f, "application/octet-stream")

        def get(key: str, name: str) -> None:
            with open(os.path.join(workdir, name), "wb") as out:
                store.get_file(bucket, key, out)

        def ranges() -> None:
            h, size, piece = hashlib.sha256(), size_mib << 20, 8 << 20
            for start in range(0, size, piece):
                h.update(store.get_range(bucket, "big.bin", start, piece))
            sums["ranges"] = h.hexdigest()

        measure("put", put)
        measure("get_file", lambda: get("big.bin", "got.bin"))
        sums["get_file"] = sha(os.path.join(workdir, "got.bin"))
        measure("copy", lambda: store.copy(bucket, "big.bin", "copy.bin"))
        get("copy.bin", "copy.bin")
        sums["copy"] = sha(os.path.join(workdir, "copy.bin"))
        measure("ranges", ranges)
        baseline = current()
    return {"size_mib": size_mib, "baseline_mib": round(baseline, 1),
            "peak_above_baseline_mib": peaks, "sha256": sums, "patched": patch_moto}


if __name__ == "__main__":
    import argparse
    import json
    import tempfile

    parser = argparse.ArgumentParser(description="peak memory of S3Store on the local stack")
    parser.add_argument("--size-mib", type=int, default=300)
    parser.add_argument("--unpatched", action="store_true", help="leave moto as it is")
    parser.add_argument("--seed", help="a file whose content, repeated, makes the object")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(store_peaks(opts.size_mib, tmp, patch_moto=not opts.unpatched,
                                     seed=opts.seed)))
