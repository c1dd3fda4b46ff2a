"""The daemon's status server: liveness, readiness and Prometheus metrics over HTTP.

confd gives no sign of whether it is still in step with the registry (confd#5, #709,
#844): a watch that died looks like a quiet registry. muster records every batch and
answers, on ``-status-addr`` (loopback unless told otherwise):

* ``/healthz``: 200 while the daemon's event loop runs (liveness);
* ``/readyz``: 200 when the daemon is in step with the registry: the last batch read the
  registry and applied every resource, a batch succeeded within ``stale_after`` seconds
  (the periodic resync runs one even when nothing changes), no batch crashed since, the
  watch is in touch with the store, and the data plane holds what was pushed (nginx
  answers its admin endpoint; no push was overwritten behind muster's back); otherwise
  503 and every reason. It says whether *muster* is in step, not whether nginx serves:
  nginx keeps serving its last good config meanwhile, so a load balancer in front of
  nginx must health-check nginx itself, never this endpoint;
* ``/metrics``: Prometheus text format (batches, failures, files changed, last success);
* ``/status``: the same as JSON, with the last batch's errors per resource.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from muster.errors import ConfigError
from muster.listener import Listener
from muster.log import kv
from muster.redact import redact

__all__ = ["Status", "StatusServer", "parse_address"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Status:
    """What the daemon did so far; ``record`` is called once per batch."""

    #: Seconds without a successful batch after which the daemon is not ready (0: never stale).
    stale_after: float = 0.0
    clock: Callable[[], float] = time.time
    started: float = field(init=False)
    batches: int = 0
    failed_batches: int = 0
    backend_errors: int = 0
    files_changed: int = 0
    batch_seconds: float = 0.0
    last_batch: float | None = None
    last_success: float | None = None
    revision: int | None = None
    #: The last batch's failures: resource name -> error message.
    errors: dict[str, str] = field(default_factory=dict)
    backend_failed: bool = False
    #: Live conditions asked at each readiness check, by name: each returns why the daemon
    #: is not in step now (etcd unreachable, nginx gone), or None.
    checks: dict[str, Callable[[], str | None]] = field(default_factory=dict)
    #: Why the last batch crashed (a bug), until a batch completes.
    crashed: str | None = None
    #: Extra gauges for ``/metrics``: name -> (help, current value).
    gauges: dict[str, tuple[str, Callable[[], float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def record(
        self,
        *,
        failures: Mapping[str, str],
        changed: int,
        revision: int | None,
        backend_failed: bool,
        seconds: float,
    ) -> None:
        now = self.clock()
        self.crashed = None
        self.batches += 1
        self.files_changed += changed
        self.batch_seconds += seconds
        self.last_batch = now
        self.errors = dict(failures)
        self.backend_failed = backend_failed
        if backend_failed:
            self.backend_errors += 1
        if failures:
            self.failed_batches += 1
        else:
            self.last_success = now
        if revision is not None:
            self.revision = revision

    def recovered(self, name: str) -> None:
        """``name`` (e.g. the data plane, after its own retry) works again since the last batch."""
        if self.errors.pop(name, None) is not None and not self.errors and not self.backend_failed:
            self.last_success = self.clock()

    def crash(self, error: BaseException) -> None:
        """A batch raised (a bug): not ready until one completes."""
        self.crashed = f"{type(error).__name__}: {error}"

    def problems(self) -> list[str]:
        """What the live checks report now, as ``name: reason``."""
        found = []
        for name, check in self.checks.items():
            reason = check()
            if reason is not None:
                found.append(f"{name}: {reason}")
        return found

    def readiness(self) -> tuple[bool, str]:
        """Whether the daemon is in step with the registry, and why not (every reason)."""
        reasons = self.problems()
        if self.crashed is not None:
            reasons.append(f"the last batch crashed: {self.crashed}")
        ready, reason = self._batch_readiness()
        if not ready:
            reasons.append(reason)
        return (False, "; ".join(reasons)) if reasons else (True, "ok")

    def _batch_readiness(self) -> tuple[bool, str]:
        if self.last_batch is None:
            return False, "no batch has completed yet"
        if self.backend_failed:
            return False, "the last batch could not read the backend"
        if self.errors:
            return False, "the last batch failed for: " + ", ".join(sorted(self.errors))
        assert self.last_success is not None
        age = self.clock() - self.last_success
        if self.stale_after and age > self.stale_after:
            return False, f"no successful batch for {age:.0f} s (stale after {self.stale_after:.0f} s)"
        return True, "ok"

    def as_json(self) -> dict[str, Any]:
        ready, reason = self.readiness()
        return {
            "ready": ready,
            "reason": reason,
            "started": self.started,
            "batches": self.batches,
            "failed_batches": self.failed_batches,
            "backend_errors": self.backend_errors,
            "files_changed": self.files_changed,
            "last_batch": self.last_batch,
            "last_success": self.last_success,
            "revision": self.revision,
            "errors": self.errors,
            "problems": self.problems(),
            "crashed": self.crashed,
        }

    def metrics(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        ready, _ = self.readiness()
        rows: list[tuple[str, str, str, float | None]] = [
            ("muster_ready", "gauge", "1 when the last batch applied everything and is recent", float(ready)),
            ("muster_start_time_seconds", "gauge", "Unix time the daemon started", self.started),
            ("muster_batches_total", "counter", "Batches run (snapshot, render, apply)", self.batches),
            ("muster_batch_failures_total", "counter", "Batches in which something failed",
             self.failed_batches),
            ("muster_backend_errors_total", "counter", "Batches that could not read the backend",
             self.backend_errors),
            ("muster_files_changed_total", "counter", "Destination files replaced", self.files_changed),
            ("muster_batch_seconds_total", "counter", "Time spent in batches", self.batch_seconds),
            ("muster_last_batch_time_seconds", "gauge", "Unix time of the last batch", self.last_batch),
            ("muster_last_success_time_seconds", "gauge", "Unix time of the last batch without failure",
             self.last_success),
            ("muster_backend_revision", "gauge", "Registry revision of the last snapshot", self.revision),
            ("muster_resources_failing", "gauge", "Resources that failed in the last batch",
             len(self.errors)),
        ]  # fmt: skip
        rows += [(name, "gauge", text, get()) for name, (text, get) in self.gauges.items()]
        out = []
        for name, kind, help_text, value in rows:
            if value is None:
                continue  # Prometheus has no null: an absent sample says "not yet"
            out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{name} {_number(value)}\n")
        return "".join(out)


def _number(value: float) -> str:
    # Full precision: ``%g`` would round a Unix timestamp to the nearest 1,000 s.
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as host and port; ``ConfigError`` if malformed."""
    host, sep, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"status-addr: {address!r} is not HOST:PORT (e.g. 127.0.0.1:9101)")
    return host, int(port)


class StatusServer:
    """Serves ``status`` on ``address`` (``HOST:PORT``; port 0 picks one, see ``port``).

    The endpoints answer no one in particular and are unauthenticated, so the address is
    whatever the operator wrote (``-status-addr`` has no default and needs a host); a
    non-loopback one is logged as a warning. A flood of clients costs at most
    ``max_connections`` descriptors and little CPU: see ``muster.listener``.
    """

    def __init__(
        self,
        status: Status,
        address: str,
        *,
        max_connections: int = 256,
        idle_timeout: float = 5.0,
    ) -> None:
        self.status = status
        self.host, self.port = parse_address(address)
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._runner: web.AppRunner | None = None
        self._listener: Listener | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, keepalive_timeout=self.idle_timeout
        )
        await runner.setup()
        assert runner.server is not None
        listener = Listener(
            runner.server,
            self.host,
            self.port,
            max_connections=self.max_connections,
            idle_timeout=self.idle_timeout,
            name="status",
        )
        try:
            await listener.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"status-addr: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        self._runner, self._listener = runner, listener
        self.port = listener.port
        if not _is_loopback(self.host):
            logger.warning(
                kv(
                    "status.exposed",
                    address=f"{self.host}:{self.port}",
                    note="unauthenticated; bind 127.0.0.1 unless a firewall guards this port",
                )
            )

    async def aclose(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.aclose()  # aborts every connection, so the cleanup has none to wait for
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, reason = self.status.readiness()
        return web.Response(status=200 if ready else 503, text=redact(reason) + "\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.status.metrics(), content_type="text/plain", charset="utf-8")

    async def _status(self, request: web.Request) -> web.Response:
        # Unauthenticated: an error quoting a node URL must not hand out its password.
        text = redact(json.dumps(self.status.as_json(), indent=1))
        return web.Response(text=text + "\n", content_type="application/json")
