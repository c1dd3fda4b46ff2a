"""Signals for a long-running asyncio process: set an ``Event``, restore the old handlers on exit."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

__all__ = ["Stopped", "capture_signals", "raise_when_set"]


@contextlib.contextmanager
def capture_signals(
    stop: asyncio.Event, hangup: Callable[[], None], usr1: Callable[[], None] | None = None
) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop``, SIGHUP calls ``hangup``, SIGUSR1 ``usr1`` (if given);
    the previous handlers are restored."""
    loop = asyncio.get_running_loop()
    handlers: dict[signal.Signals, Callable[[], None]] = {
        signal.SIGINT: stop.set,
        signal.SIGTERM: stop.set,
        signal.SIGHUP: hangup,
    }
    if usr1 is not None:
        handlers[signal.SIGUSR1] = usr1
    originals: dict[signal.Signals, object] = {}

    def handler_for(action: Callable[[], None]) -> Callable[[int, object], None]:
        def handle(_sig: int, _frame: object) -> None:
            loop.call_soon_threadsafe(action)

        return handle

    try:
        for sig, action in handlers.items():
            originals[sig] = signal.signal(sig, handler_for(action))
    except ValueError:
        pass  # not the main thread (e.g. embedded in a test runner): no signal handling
    try:
        yield
    finally:
        for sig, original in originals.items():
            signal.signal(sig, original)  # type: ignore[arg-type]


class Stopped(Exception):
    """Raised by ``raise_when_set`` to cancel the ``TaskGroup`` it runs in."""


async def raise_when_set(event: asyncio.Event) -> None:
    """Wait for ``event``, then raise ``Stopped``: a task that ends its group on a signal."""
    await event.wait()
    raise Stopped
