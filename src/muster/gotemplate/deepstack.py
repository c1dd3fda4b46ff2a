"""Rerunning the recursive parser, executor and printer on a deep stack when Python's runs out.

Go's goroutine stacks grow (to 1 GB), so Go parses and executes templates nested
hundreds of levels deep, and stops only at ``{{template}}`` depth 100000. Python's
default recursion limit (1000 frames) runs out long before. Rather than pay for a
deep stack on every call, callers run the ordinary way first and, on
``RecursionError``, rerun the whole (pure) operation with ``run_deep``: in a
thread with a large C stack and a raised recursion limit. Only a rerun that
exhausts that too is reported as an error.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Final, TypeVar

__all__ = ["DEEP_RECURSION_LIMIT", "in_deep_run", "run_deep"]

T = TypeVar("T")

# Python frames allowed in a deep run; with 3.11's frames this is some 100 MB of
# memory at worst, well within the thread's C stack below (pure-Python calls use
# little of it).
DEEP_RECURSION_LIMIT: Final = 120_000
_STACK_SIZE: Final = 512 * 1024 * 1024  # reserved address space, committed as used

_lock = threading.Lock()
_active = 0
_saved_limit = 0
_local = threading.local()


def in_deep_run() -> bool:
    """Whether this thread is a deep rerun (a ``RecursionError`` here is final)."""
    return bool(getattr(_local, "deep", False))


def _raise_limit() -> None:
    global _active, _saved_limit
    with _lock:
        if _active == 0:
            _saved_limit = sys.getrecursionlimit()
            if _saved_limit < DEEP_RECURSION_LIMIT:
                sys.setrecursionlimit(DEEP_RECURSION_LIMIT)
        _active += 1


def _restore_limit() -> None:
    global _active
    with _lock:
        _active -= 1
        if _active == 0 and sys.getrecursionlimit() == DEEP_RECURSION_LIMIT:
            sys.setrecursionlimit(_saved_limit)


def run_deep(fn: Callable[[], T]) -> T:
    """``fn()`` run to completion on a deep stack; its exception, if any, is re-raised."""
    if in_deep_run():
        return fn()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        _local.deep = True
        try:
            outcome.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            failure.append(exc)
        finally:
            # Undone by this thread, not the caller: a signal handler's exception (a
            # timeout, Ctrl-C) can end the caller's join while this thread runs on, and
            # lowering the limit under a deep stack aborts the process.
            _restore_limit()

    thread = threading.Thread(target=target, name="muster-deep-stack", daemon=True)
    _raise_limit()
    try:
        with _lock:
            # stack_size applies to threads started after it: set it for ours only.
            previous = threading.stack_size(_STACK_SIZE)
            try:
                thread.start()
            finally:
                threading.stack_size(previous)
    except BaseException:
        if thread.ident is None:
            _restore_limit()  # the thread never started: nobody else will
        raise
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
