"""An executor whose threads never hold up the process's exit."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DaemonThreadExecutor"]


class DaemonThreadExecutor(concurrent.futures.Executor):
    """At most ``size`` calls at once, each in a daemon thread of its own.

    ThreadPoolExecutor's threads (asyncio's default executor too) are joined when the
    interpreter exits, so a DNS lookup stuck on a dead resolver, seconds per attempt,
    would hold up the daemon's shutdown. A thread per call is cheap for what this runs:
    lookups of names a cache lacks.
    """

    def __init__(self, size: int, name: str = "muster-worker") -> None:
        self._slots = threading.BoundedSemaphore(size)
        self._name = name

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            with self._slots:
                if not future.set_running_or_notify_cancel():
                    return
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:
                    future.set_exception(exc)

        threading.Thread(target=run, name=self._name, daemon=True).start()
        return future
