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
* ``/metrics``: Prometheus text format through ``prometheus_client`` (batches, renders,
  reloads, pushes, watch lag and revision, rejected entries by reason and, with the Lua
  data plane, nginx's traffic per service and server: ``muster.observe.metrics``);
* ``/status``: the state as JSON, with the last batch's errors per resource;
* ``/``: the dashboard (``muster.observe.dashboard``), polling ``/api/dashboard``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

from muster.errors import ConfigError, Error
from muster.listener import Listener
from muster.log import kv
from muster.observe.dashboard import STATIC_TYPES, asset, build_dashboard
from muster.observe.events import EventLog
from muster.observe.metrics import CONTENT_TYPE_LATEST, DaemonMetrics, gauge, reason_class, traffic_families
from muster.observe.traffic import IdleSeries, TrafficHistory, TrafficSnapshot, parse_traffic
from muster.redact import redact

__all__ = ["Status", "StatusServer", "dashboard_data", "is_loopback", "parse_address"]

logger = logging.getLogger(__name__)

SAMPLE_EVERY = 2.0  # seconds between reads of nginx's traffic counters (one request each)


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
    #: This daemon's own Prometheus registry and event metrics.
    metrics_registry: DaemonMetrics = field(init=False)
    #: What happened recently, for the dashboard.
    events: EventLog = field(init=False)
    #: The registry's valid servers per service and its rejected keys with reasons (set by
    #: the daemon's observer), for the dashboard and ``muster_rejected_entries``.
    membership: Callable[[], tuple[Mapping[str, list[tuple[str, int, int]]], Mapping[str, str]]] | None = None
    #: Servers the panic guard keeps routed, per service.
    held: Callable[[], Mapping[str, int]] | None = None
    #: Fetches nginx's raw traffic counters (the Lua data plane's admin endpoint).
    traffic_source: Callable[[], Awaitable[str]] | None = None
    #: Drops the counters of (service, server) pairs in nginx (the admin endpoint).
    traffic_forget: Callable[[list[tuple[str, str]]], Awaitable[None]] | None = None
    traffic: TrafficHistory = field(default_factory=TrafficHistory)
    idle_series: IdleSeries = field(default_factory=IdleSeries)
    #: Facts shown as they are: backend, endpoints (redacted), data plane.
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started = self.clock()
        self.metrics_registry = DaemonMetrics()
        self.metrics_registry.add_source(self._families)
        self.events = EventLog(clock=self.clock)

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
        self.metrics_registry.batch_seconds.observe(seconds)
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

    # -- events the daemon reports ---------------------------------------------------------

    def rendered(self, resource: str) -> None:
        self.metrics_registry.renders.labels(resource).inc()

    def applied(self, resource: str, *, changed: bool, reloaded: bool, error: str | None, diff: str,
                rolled_back: bool) -> None:  # fmt: skip
        """A resource's sync: a replaced file is a render event, with its reload's outcome."""
        if reloaded or rolled_back or (error and changed):
            result = "rolled_back" if rolled_back else "failed" if error else "ok"
            self.metrics_registry.reloads.labels(resource, result).inc()
        if error:
            self.events.add("error", f"{resource}: {error}", diff)
        elif changed:
            what = "rendered and reloaded" if reloaded else "rendered"
            self.events.add("reload" if reloaded else "render", f"{resource} {what}", diff)

    def pushed(self, services: int, seconds: float, *, ok: bool, full: bool = False) -> None:
        m = self.metrics_registry
        m.pushes.labels("ok" if ok else "failed").inc()
        m.push_seconds.observe(seconds)
        if ok:
            m.pushed_services.inc(services)
            scope = "every service" if full else f"{services} service(s)"
            self.events.add("push", f"pushed {scope} to nginx in {seconds * 1000:.1f} ms")
        else:
            self.events.add("error", "push to nginx failed")

    def watch_changed(self, revision: int | None) -> None:
        self.metrics_registry.watch_events.inc()
        if revision is not None:
            self.metrics_registry.watch_revision.set(revision)

    def change_applied(self, lag: float) -> None:
        """A batch started by the watch finished ``lag`` seconds after the change came in."""
        self.metrics_registry.watch_lag.observe(lag)

    async def sample_traffic(self) -> TrafficSnapshot | None:
        """Read nginx's counters now (at most every second) and keep them in ``traffic``."""
        if self.traffic_source is None:
            return None
        latest = self.traffic.latest
        now = self.clock()
        if latest is not None and now - latest.time < 1.0:
            return latest
        snapshot = parse_traffic(await self.traffic_source(), now)
        self.traffic.add(snapshot)
        if self.traffic_forget is not None and self.membership is not None:
            # Asked per series nginx counted, not built for every registered server: a
            # set of 90,000 addresses each second was most of an idle daemon's CPU.
            idle = self.idle_series.update(snapshot, _Registered(self.membership()[0]))
            if idle:
                await self.traffic_forget(idle)
                logger.info(kv("status.traffic.forgotten", series=len(idle), reason="left, idle 10 min"))
        return snapshot

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
        """The Prometheus text exposition (format 0.0.4), by ``prometheus_client``."""
        return self.metrics_registry.exposition().decode()

    def _families(self) -> Iterable[Any]:
        ready, _ = self.readiness()
        counters = [
            ("muster_batches", "Batches run (snapshot, render, apply)", self.batches),
            ("muster_batch_failures", "Batches in which something failed", self.failed_batches),
            ("muster_backend_errors", "Batches that could not read the backend", self.backend_errors),
            ("muster_files_changed", "Destination files replaced", self.files_changed),
            ("muster_batch_seconds", "Time spent in batches", self.batch_seconds),
        ]
        for name, text, count in counters:
            yield CounterMetricFamily(name, text, value=count)
        gauges: list[tuple[str, str, float | None]] = [
            ("muster_ready", "1 when the last batch applied everything and is recent", float(ready)),
            ("muster_start_time_seconds", "Unix time the daemon started", self.started),
            ("muster_last_batch_time_seconds", "Unix time of the last batch", self.last_batch),
            ("muster_last_success_time_seconds", "Unix time of the last batch without failure",
             self.last_success),
            ("muster_backend_revision", "Registry revision of the last snapshot", self.revision),
            ("muster_resources_failing", "Resources that failed in the last batch", len(self.errors)),
        ]  # fmt: skip
        gauges += [(name, text, get()) for name, (text, get) in self.gauges.items()]
        for name, text, value in gauges:
            if value is not None:  # Prometheus has no null: an absent sample says "not yet"
                yield gauge(name, text, value)
        if self.membership is not None:
            rejected = GaugeMetricFamily(
                "muster_rejected_entries", "Registry entries left out, by reason", labels=["reason"]
            )
            counts: dict[str, int] = {}
            for reason in self.membership()[1].values():
                label = reason_class(reason)
                counts[label] = counts.get(label, 0) + 1
            for label, count in sorted(counts.items()):
                rejected.add_metric([label], count)
            yield rejected
        latest = self.traffic.latest
        if latest is not None:
            yield from traffic_families(latest)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable only from this machine."""
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

    On loopback the endpoints answer anyone on this machine. Anywhere else a ``token`` is
    required (``ConfigError`` without one), and every data endpoint wants it (not
    ``/healthz``, nor the page and its static files, which hold no data), as
    ``Authorization: Bearer TOKEN`` or ``?token=TOKEN`` (which the page passes on). A
    flood of clients costs at most ``max_connections`` descriptors and little CPU: see
    ``muster.listener``. The dashboard is read-only: every route is a GET.
    """

    def __init__(
        self,
        status: Status,
        address: str,
        *,
        max_connections: int = 256,
        idle_timeout: float = 5.0,
        token: str | None = None,
    ) -> None:
        self.status = status
        self.host, self.port = parse_address(address)
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.token = token or None
        self._runner: web.AppRunner | None = None
        self._listener: Listener | None = None
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.token is None and not is_loopback(self.host):
            raise ConfigError(
                f"status-addr: {self.host} is not a loopback address: the dashboard and /status "
                "would be open to the network; give -status-token-file too"
            )
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        app.router.add_get("/", self._page)
        app.router.add_get("/api/dashboard", self._dashboard)
        app.router.add_get("/static/{name}", self._static)
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
        if self.status.traffic_source is not None:
            self._sampler = asyncio.create_task(self._sample_forever(), name="muster-status-traffic")
        if not is_loopback(self.host):
            logger.warning(
                kv(
                    "status.exposed",
                    address=f"{self.host}:{self.port}",
                    note="token required; traffic is plain HTTP, so keep it on a trusted network",
                )
            )

    async def aclose(self) -> None:
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.aclose()  # aborts every connection, so the cleanup has none to wait for
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # The page and its files hold no data (the page asks for it with the token from its
        # URL), and a browser fetches them without the header: only the data wants the token.
        public = request.path in ("/healthz", "/") or request.path.startswith("/static/")
        if self.token is not None and not public:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            given = given or request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return web.Response(status=401, text="a token is required: Authorization: Bearer TOKEN\n")
        response = await handler(request)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, reason = self.status.readiness()
        return web.Response(status=200 if ready else 503, text=redact(reason) + "\n")

    async def _sample(self) -> None:
        try:
            await self.status.sample_traffic()
        except (Error, ValueError) as exc:  # nginx down: the rest of the page still answers
            logger.debug(kv("status.traffic.failed", error=exc))

    async def _sample_forever(self) -> None:
        """Rates and sparklines need a history whether or not anyone is looking. A read that
        takes long (10,000 servers: ~0.1 s in nginx, more to parse here) spaces the next
        ones out, so reading costs at most about 5% of the time."""
        while True:
            started = time.monotonic()
            await self._sample()
            await asyncio.sleep(max(SAMPLE_EVERY, 20 * (time.monotonic() - started)))

    async def _metrics(self, request: web.Request) -> web.Response:
        await self._sample()
        return web.Response(
            body=self.status.metrics_registry.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _status(self, request: web.Request) -> web.Response:
        # Unauthenticated: an error quoting a node URL must not hand out its password.
        text = redact(json.dumps(self.status.as_json(), indent=1))
        return web.Response(text=text + "\n", content_type="application/json")

    async def _dashboard(self, request: web.Request) -> web.Response:
        await self._sample()
        text = redact(json.dumps(dashboard_data(self.status, after=_int(request.query.get("after")))))
        return web.Response(text=text, content_type="application/json")

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=asset("index.html"), content_type="text/html", charset="utf-8")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kind = STATIC_TYPES.get(name.rpartition(".")[2])
        if kind is None or "/" in name or name.startswith("."):
            raise web.HTTPNotFound()
        try:
            body = asset(name)
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        return web.Response(body=body, content_type=kind, charset="utf-8")


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def dashboard_data(status: Status, *, after: int = 0) -> dict[str, Any]:
    """Everything the page shows, as JSON (``muster status --json`` prints the same)."""
    services, rejected = status.membership() if status.membership is not None else ({}, {})
    held = status.held() if status.held is not None else {}
    latest = status.traffic.latest
    return build_dashboard(
        status=status.as_json(),
        services=services,
        rejected=rejected,
        held=held,
        traffic=status.traffic.figures(),
        traffic_dropped=None if latest is None else latest.dropped,
        events=[e.as_json() for e in status.events.since(after)],
        info=status.info,
        now=status.clock(),
    )


class _Registered:
    """Whether a (service, address) pair is registered, asked of the membership as it is."""

    __slots__ = ("_services",)

    def __init__(self, services: Mapping[str, list[tuple[str, int, int]]]) -> None:
        self._services = services

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        name, address = key
        return any(
            address == (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
            for host, port, _ in self._services.get(name, ())
        )
