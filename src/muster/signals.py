"""Signals for asyncio processes: route them to callbacks on the loop, put the old handlers back after.

The one signal helper of the package: the daemon, ``muster up`` and the registration runner
all use it. Handlers are installed with ``signal.signal`` and hand over to the loop with
``call_soon_threadsafe`` (not ``loop.add_signal_handler``), so a signal that arrives while the
loop is closing, or a caller outside the main thread (a test runner), does no harm: off the
main thread nothing is installed and the caller runs without signal handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator, Mapping

__all__ = ["Stopped", "capture_signals", "raise_when_set"]


@contextlib.contextmanager
def capture_signals(handlers: Mapping[signal.Signals, Callable[[int], None]]) -> Iterator[None]:
    """Call ``handlers[signum](signum)`` on the running loop for each signal; restore the originals."""
    loop = asyncio.get_running_loop()
    originals: dict[signal.Signals, signal._HANDLER] = {}

    def handle(signum: int, _frame: object) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(handlers[signal.Signals(signum)], signum)

    try:
        for sig in handlers:
            originals[sig] = signal.signal(sig, handle)
    except ValueError:
        pass  # not the main thread: no signal handling
    try:
        yield
    finally:
        for sig, original in originals.items():
            signal.signal(sig, original)


class Stopped(Exception):
    """Raised by ``raise_when_set`` to cancel the ``TaskGroup`` it runs in."""


async def raise_when_set(event: asyncio.Event) -> None:
    """Wait for ``event``, then raise ``Stopped``: a task that ends its group on a signal."""
    await event.wait()
    raise Stopped
