"""The Python API: ``registration(...)`` as an async context manager and a threaded sync twin.

::

    async with registration("web", "10.0.0.5", 8080, ttl=10) as reg:
        await reg.wait_registered()     # optional
        await serve_forever()
    # leaving the block revokes the lease (the key is gone) before returning

    with sync_registration("web", "10.0.0.5", 8080):   # for threaded servers
        server.serve_forever()

Both share the CLI's logic: validation before anything is written, the lease machine, the
health monitor and deregistration on exit. The sync form runs its own event loop in a
daemon thread, so it works from any thread of a program without asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from muster.backends import REGISTRY, load
from muster.backends.base import Registrar
from muster.backends.options import BackendOptions
from muster.backoff import Backoff
from muster.errors import ConfigError
from muster.registration.agent import Agent
from muster.registration.health import Check, CheckResult, HealthMonitor
from muster.registration.validate import DEFAULT_PREFIX, RegistrationSpec

__all__ = ["Registration", "SyncRegistration", "open_registrar", "registration", "sync_registration"]

BACKENDS = ("etcdv3", "etcd", "zookeeper", "redis")

HealthFunc = Callable[[], Awaitable[bool]]


def registrar_options(options: BackendOptions, ttl: int) -> BackendOptions:
    """``options`` with request timeouts short enough that a refresh fails over within the TTL."""
    timeout = min(options.request_timeout, max(0.5, ttl / 4))
    return _replace(options, request_timeout=timeout, dial_timeout=min(options.dial_timeout, timeout))


def _replace(options: BackendOptions, **changes: Any) -> BackendOptions:
    return dataclasses.replace(options, **changes)


def open_registrar(backend: str, options: BackendOptions) -> Registrar:
    """Build the named backend (``etcdv3``, ``etcd``, ...) and check that it can register."""

    instance = load(backend)(options=options)
    if not isinstance(instance, Registrar):
        raise ConfigError(f"backend {backend!r} cannot register services (it has no leases or TTLs)")
    return instance


class _FuncCheck:
    """Adapts ``async def healthy() -> bool`` to the ``Check`` protocol."""

    def __init__(self, func: HealthFunc) -> None:
        self.func = func
        self.description = f"func {getattr(func, '__qualname__', repr(func))}"

    async def __call__(self) -> CheckResult:
        return CheckResult(bool(await self.func()))


def _as_check(check: Check | HealthFunc | None) -> Check | None:
    if check is None or isinstance(check, Check):
        return check
    return _FuncCheck(check)


class Registration:
    """Keeps one server registered while the ``async with`` block runs; see ``registration()``.

    On enter it validates nothing more (that happened on construction), opens the store
    and starts registering in the background (it does not wait for the key; use
    ``wait_registered``). On exit it revokes the key, stops the checks and closes the store.
    """

    def __init__(
        self,
        spec: RegistrationSpec,
        *,
        registrar: Registrar | None = None,
        backend: str = "etcdv3",
        options: BackendOptions | None = None,
        check: Check | HealthFunc | None = None,
        check_interval: float = 2.0,
        check_timeout: float = 2.0,
        rise: int = 2,
        fall: int = 3,
        healthy: bool = True,
        stop_timeout: float = 5.0,
        backoff: Backoff | None = None,
    ) -> None:
        if registrar is None:
            if backend not in REGISTRY:
                raise ConfigError(f"unknown backend {backend!r}: use {' or '.join(BACKENDS)}")
        self.spec = spec
        self.backend = backend
        self.options = registrar_options(options or BackendOptions(), spec.ttl)
        self._registrar = registrar
        self._check = _as_check(check)
        self._check_settings = (check_interval, check_timeout, rise, fall)
        # Validate check settings now, before anything is opened or written.
        if self._check is not None:
            self._make_monitor(self._check, lambda _: None)
        self._healthy = healthy and self._check is None
        self._stop_timeout = stop_timeout
        self._backoff = backoff
        self._agent: Agent | None = None
        self._monitor: HealthMonitor | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._agent_task: asyncio.Task[bool] | None = None
        self._monitor_task: asyncio.Task[None] | None = None
        self.clean: bool | None = None  # after exit: whether the key was surely removed
        self._owner: asyncio.Task[object] | None = None
        self._failure: BaseException | None = None
        self._exiting = False

    def __repr__(self) -> str:
        return f"<Registration key={self.spec.key} backend={self.backend} agent={self._agent!r}>"

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            raise RuntimeError("registration not started: use 'async with'")
        return self._agent

    @property
    def registered(self) -> bool:
        return self._agent is not None and self._agent.registered

    async def wait_registered(self) -> None:
        await self.agent.wait_registered()

    async def wait_deregistered(self) -> None:
        await self.agent.wait_deregistered()

    def set_healthy(self, healthy: bool) -> None:
        """Report health by hand (without a check): the key is removed while unhealthy."""
        self.agent.set_healthy(healthy)

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("a Registration can be entered only once")
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            registrar = self._registrar
            if registrar is None:
                registrar = open_registrar(self.backend, self.options)
                aclose = getattr(registrar, "aclose", None)
                if aclose is not None:
                    stack.push_async_callback(aclose)
            if self._check is not None and hasattr(self._check, "aclose"):
                stack.push_async_callback(self._check.aclose)
            agent = Agent(
                registrar,
                self.spec,
                healthy=self._healthy,
                stop_timeout=self._stop_timeout,
                backoff=self._backoff,
                op_timeout=self._op_timeout(),
            )
            self._agent = agent
            self._agent_task = asyncio.create_task(agent.run(), name=f"register {self.spec.key}")
            # Like a TaskGroup: if the agent fails (a fatal ConfigError), cancel the body.
            self._owner = asyncio.current_task()
            self._agent_task.add_done_callback(self._agent_done)
            if self._check is not None:
                self._monitor = self._make_monitor(self._check, agent.set_healthy)
                self._monitor_task = asyncio.create_task(self._monitor.run(), name=f"health {self.spec.key}")
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    def _make_monitor(self, check: Check, on_change: Callable[[bool], None]) -> HealthMonitor:
        interval, timeout, rise, fall = self._check_settings
        return HealthMonitor(check, on_change, interval=interval, timeout=timeout, rise=rise, fall=fall)

    def _op_timeout(self) -> float | None:
        if self._registrar is not None:
            return None  # the agent's default
        # Long enough for the backend to try every node once.
        return self.options.request_timeout * max(1, len(self.options.endpoints())) + 1.0

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._stack is not None and self._agent is not None and self._agent_task is not None
        self._exiting = True
        try:
            if self._monitor_task is not None:
                self._monitor_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._monitor_task
            self._agent.stop()
            if self._failure is None:
                self.clean = await self._agent_task
        finally:
            await self._stack.aclose()
        if self._failure is not None:
            if exc_type is asyncio.CancelledError and self._owner is not None:
                self._owner.uncancel()  # our own cancellation of the body: report the cause instead
            raise self._failure

    def _agent_done(self, task: asyncio.Task[bool]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        self._failure = task.exception()
        if self._owner is not None and not self._exiting:
            self._owner.cancel()


def registration(
    service: str,
    host: str,
    port: int,
    *,
    ttl: int = 10,
    server_id: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    meta: Mapping[str, str] | None = None,
    backend: str = "etcdv3",
    nodes: Sequence[str] = (),
    options: BackendOptions | None = None,
    registrar: Registrar | None = None,
    check: Check | HealthFunc | None = None,
    check_interval: float = 2.0,
    check_timeout: float = 2.0,
    rise: int = 2,
    fall: int = 3,
    healthy: bool = True,
    stop_timeout: float = 5.0,
) -> Registration:
    """Register ``host:port`` as a server of ``service`` for the duration of an ``async with``.

    Writes ``PREFIX/SERVICE/servers/ID`` (ID defaults to ``<hostname>-<port>``) with
    ``{"host": host, "port": port, **meta}`` bound to a ``ttl``-second lease, kept alive
    until the block exits, then revoked. ``nodes`` (or ``options`` for auth and TLS)
    select the etcd endpoints; ``registrar`` injects any ``Registrar`` instead. With
    ``check`` (a ``Check`` or ``async def () -> bool``), the key exists only while the
    check passes (``rise``/``fall`` consecutive results); without one, pass
    ``healthy=False`` to write the key only once you call ``set_healthy(True)``.
    Raises ``RegistrationError`` or ``ConfigError`` for bad input before anything is
    written.
    """
    spec = RegistrationSpec.create(
        service, host, port, server_id=server_id, ttl=ttl, prefix=prefix, meta=meta
    )
    if options is None:
        options = BackendOptions(nodes=tuple(nodes))
    elif nodes:
        options = _replace(options, nodes=tuple(nodes))
    return Registration(
        spec,
        registrar=registrar,
        backend=backend,
        options=options,
        check=check,
        check_interval=check_interval,
        check_timeout=check_timeout,
        rise=rise,
        fall=fall,
        healthy=healthy,
        stop_timeout=stop_timeout,
    )


class SyncRegistration:
    """``Registration`` for code without asyncio: its own event loop in a daemon thread.

    ``with`` returns once the background loop has started registering (or raises what
    opening the store raised); leaving the block deregisters and joins the thread.
    """

    def __init__(self, inner: Registration) -> None:
        self.inner = inner
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<SyncRegistration {self.inner!r}>"

    @property
    def registered(self) -> bool:
        return self.inner.registered

    def _call(self, fn: Callable[[], Any]) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn)

    def set_healthy(self, healthy: bool) -> None:
        self._call(lambda: self.inner.set_healthy(healthy))

    def wait_registered(self, timeout: float | None = None) -> bool:
        """Block until the key is written; False if ``timeout`` passed first."""
        return self._run(self.inner.wait_registered(), timeout)

    def wait_deregistered(self, timeout: float | None = None) -> bool:
        return self._run(self.inner.wait_deregistered(), timeout)

    def _run(self, coro: Awaitable[None], timeout: float | None) -> bool:
        assert self._loop is not None

        async def bounded() -> None:
            await coro

        future = asyncio.run_coroutine_threadsafe(bounded(), self._loop)
        try:
            future.result(timeout)
        except TimeoutError:
            future.cancel()
            return False
        return True

    def __enter__(self) -> Self:
        self._thread = threading.Thread(
            target=self._main, name=f"muster-register {self.inner.spec.key}", daemon=True
        )
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._thread is not None and self._stop is not None
        self._call(self._stop.set)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
        finally:
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self.inner:
            self._started.set()
            await self._stop.wait()


def sync_registration(service: str, host: str, port: int, **kwargs: Any) -> SyncRegistration:
    """``registration()`` for threaded programs; same arguments, used with plain ``with``."""
    return SyncRegistration(registration(service, host, port, **kwargs))
