"""The memory an allocation may take, so that a size which cannot fit fails with a clear error before
anything is allocated (instead of the process growing until the OS kills it).

The limit is the smallest of the machine's physical memory, the process's address-space limit
(``ulimit -v``, RLIMIT_AS) and the cgroup v2 limit of a container (``memory.max``), whichever exist.
"""
from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Optional

_CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")


def _physical_memory() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # a platform without these sysconf names
        return None


def _address_space_limit() -> Optional[int]:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def _cgroup_limit() -> Optional[int]:
    try:
        text = _CGROUP_LIMIT.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def memory_limit() -> int:
    """Bytes this process can allocate at most (see the module docstring); 64 GiB when nothing
    says (a platform that reports none of the three)."""
    known = [v for v in (_physical_memory(), _address_space_limit(), _cgroup_limit()) if v]
    return min(known) if known else 64 << 30


def format_bytes(n: float) -> str:
    n = float(min(n, 10**300))  # an int beyond a float's range (2**1000-sample receptive fields)
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def check_fits(nbytes: float, what: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` naming ``what`` when ``nbytes`` exceed :func:`memory_limit`."""
    limit = memory_limit()
    if nbytes > limit:
        raise error(f"{what} needs about {format_bytes(nbytes)} of memory, more than this process can have "
                    f"({format_bytes(limit)})")
