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
