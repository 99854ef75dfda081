"""Resident memory of the current process, in MiB.

``peak()`` is ``getrusage(RUSAGE_SELF).ru_maxrss`` (the process's high-water mark, KiB on
Linux). ``reset_peak()`` writes ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0), which resets
that high-water mark to the current resident size, so a peak can be taken over one call only;
it returns False where the kernel does not allow it (then ``peak()`` stays the lifetime peak).
"""

from __future__ import annotations

import resource

MIB = 1024.0


def peak() -> float:
    """Peak resident set size since start (or since the last ``reset_peak``), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MIB


def current() -> float:
    """Resident set size now, MiB (``VmRSS``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / MIB
    except OSError:
        pass
    return peak()


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
