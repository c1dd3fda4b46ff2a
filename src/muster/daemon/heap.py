"""Keep the cycle collector's pauses off the change path: the objects of a big render are frozen.

Why: a full render of a large registry leaves a few million long-lived objects (the store's
index, the memo, the parsed values). Python's oldest-generation collection scans all of them
whenever enough new objects have survived since the last one, which each incremental change
adds to: at 10,000 services it paused the daemon for 80-190 ms in the middle of a change,
several times the change's own cost (``bench/watch_latency.py``, p95). ``gc.freeze()`` moves
the objects alive now to a generation the collector never scans; they are still freed by
reference counting as usual, so only cycles among them wait for the next ``settle``, which
thaws them and collects first.

The daemon calls ``settle`` after a batch with a long render from scratch, which costs far
more than the collection; this is process-wide state, so only ``daemon.main.run`` turns it on.
It also hands the memory the render freed back to the system (glibc's ``malloc_trim``): a
render from scratch builds and drops its intermediate lists and strings, and glibc keeps
their pages (a 30,000-service daemon held some 17 MB more than it used).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable

from muster.log import kv

__all__ = ["SETTLE_AFTER_RENDER_MS", "settle"]

logger = logging.getLogger(__name__)

#: A render from scratch this long (from 1,000 services or so) is followed by ``settle``.
SETTLE_AFTER_RENDER_MS = 250.0


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c") or None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _malloc_trim()


def settle() -> None:
    """Collect what is garbage now, freeze the rest out of the collector's scans, and give
    the freed memory back to the system."""
    started = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    if _TRIM is not None:
        _TRIM(0)
    logger.debug(
        kv(
            "heap.settled",
            collected=collected,
            frozen=gc.get_freeze_count(),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
    )
