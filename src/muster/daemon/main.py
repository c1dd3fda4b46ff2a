"""``run()``: the daemon as ``muster confd`` starts it, from a ``Config`` to an exit code."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import TextIO

from muster.backends.base import Backend
from muster.config import Config, resolve_srv_nodes
from muster.daemon.backend import close_backend, create_backend
from muster.daemon.core import Daemon
from muster.daemon.heap import settle
from muster.daemon.observer import RegistryObserver
from muster.daemon.sinks import build_sink
from muster.dataplane.nginx.pusher import DataPlane
from muster.dataplane.sink import MembershipSink
from muster.errors import ConfigError
from muster.log import kv
from muster.redact import redact
from muster.resources.spec import require_dir
from muster.signals import Stopped, capture_signals, raise_when_set
from muster.status import Status, StatusServer

__all__ = ["run"]

logger = logging.getLogger(__name__)


async def run(config: Config, backend: Backend | None = None, *, diff_out: TextIO | None = None) -> int:
    """Run the daemon as ``config`` says until done (onetime) or a signal; return the exit code."""
    if backend is None:
        require_dir(config.resource_dir)  # a typo in -confdir should not wait for a connection
        config = await asyncio.to_thread(resolve_srv_nodes, config)
        backend = create_backend(config)

    sink, mode = build_sink(config)
    if sink is not None and config.noop:
        await sink.aclose()  # -noop pushes nothing, but renders as the configured mode would
        sink = None
    status = Status(stale_after=stale_after(config))
    outage = getattr(backend, "outage", None)
    if outage is not None:
        status.checks["backend"] = lambda: _outage_reason(outage())
    if isinstance(sink, MembershipSink):
        # A push that failed in a batch is retried by the sink's own verify loop.
        sink.on_verified = lambda: status.recovered("dataplane")
        status.checks["dataplane"] = sink.problem
    server = observer = None
    if config.status_addr and not config.onetime:
        server = StatusServer(status, config.status_addr, token=read_token(config.status_token_file))
        observer = observe(status, config, sink, mode)
    daemon = Daemon(
        config,
        backend,
        diff_out=diff_out,
        sinks=[sink] if sink else [],
        dataplane=mode,
        status=status,
        observer=observer,
        settle_heap=None if config.onetime else settle,
    )
    status.checks["guard"] = daemon.guards.problem
    status.held = daemon.guards.held
    status.gauges["muster_guard_held_servers"] = (
        "Servers the registry removed en masse that the panic guard keeps routed",
        lambda: float(sum(daemon.guards.held().values())),
    )
    try:
        if config.onetime:
            return await daemon.run_once()
        if server is not None:
            await server.start()
            logger.info(kv("status.listening", address=f"{server.host}:{server.port}"))
        stop = asyncio.Event()
        mode = "watch" if config.watch else "interval"
        logger.info(kv("daemon.started", mode=mode, backend=config.backend, confdir=config.confdir))
        handlers = {
            signal.SIGINT: lambda _sig: stop.set(),
            signal.SIGTERM: lambda _sig: stop.set(),
            signal.SIGHUP: lambda _sig: daemon.hangup(),
            signal.SIGUSR1: lambda _sig: daemon.accept_removals(),
        }
        with capture_signals(handlers):
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(raise_when_set(stop))
                    tg.create_task(daemon.run_watch() if config.watch else daemon.run_interval())
            except* Stopped:
                logger.info(kv("daemon.stopped", reason="signal"))
        return 0
    finally:
        if server is not None:
            await server.aclose()
        await close_backend(backend)


def observe(status: Status, config: Config, sink: object, mode: str) -> RegistryObserver:
    """Feed the dashboard: the registry's services and rejects, nginx's pushes and traffic."""
    observer = RegistryObserver(status.events, config.dataplane_root)
    status.membership = observer.snapshot
    status.info = {
        "backend": config.backend,
        "endpoints": [redact(node) for node in config.nodes],
        "dataplane": mode,
    }
    if isinstance(sink, MembershipSink) and isinstance(sink.plane, DataPlane):
        plane = sink.plane
        plane.on_push = lambda count, seconds, ok, full: status.pushed(count, seconds, ok=ok, full=full)
        status.traffic_source = plane.admin.traffic
        status.traffic_forget = plane.admin.forget_traffic
    return observer


def read_token(path: str) -> str | None:
    """The status server's token from ``path`` (a trailing newline dropped), or None."""
    if not path:
        return None
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"status-token-file: cannot read {path}: {exc.strerror or exc}") from exc
    if not token:
        raise ConfigError(f"status-token-file: {path} is empty")
    return token


def stale_after(config: Config) -> float:
    """How long without a successful batch before /readyz says 503: two missed rounds.

    In watch mode the periodic resync runs a batch even when nothing changes; without
    it (``-resync-interval 0``) a quiet registry is indistinguishable from a dead watch,
    so staleness is not judged.
    """
    period = config.resync_interval if config.watch else config.interval
    return 2 * period + 30 if period else 0.0


def _outage_reason(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return f"the registry has been unreachable for {seconds:.0f} s; nginx keeps the last good config"
