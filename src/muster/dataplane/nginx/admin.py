"""Client for the admin endpoint that muster's Lua module serves inside nginx."""

from __future__ import annotations

import ipaddress
import logging
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType

import aiohttp

from muster.errors import AdminError
from muster.log import kv

__all__ = ["AdminError", "AdminState", "LuaAdmin", "admin_address_problem"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AdminState:
    """What nginx holds now: muster's generation token and, per service, its peer count
    and the MD5 (hex) of its peer list as pushed."""

    generation: str
    services: dict[str, int]
    digests: dict[str, str] = field(default_factory=dict)
    #: False when nginx's master is gone (its workers still serve); None if not reported.
    master_alive: bool | None = None
    #: The MD5 (hex) of the route table nginx holds ("" if not said).
    routes_digest: str = ""
    #: Puts and deletes nginx has taken since it started (anyone's); None if not reported.
    changes: int | None = None


def admin_address_problem(address: str) -> str | None:
    """Why ``address`` is not an admin endpoint muster talks to, or None if it is.

    Only ``unix:PATH`` or ``http://`` on a loopback address: membership changes travel
    unauthenticated, so the endpoint must not be reachable from another host.
    """
    if address.startswith("unix:"):
        return None if len(address) > len("unix:") else "unix: needs the socket's path"
    url = urllib.parse.urlsplit(address)
    host = url.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if url.scheme != "http" or not loopback or url.path.strip("/"):
        return f"{address!r} is neither unix:PATH nor http://127.0.0.1:PORT (loopback only)"
    return None


@contextmanager
def _map_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise AdminError(f"nginx admin endpoint: {what} failed: {exc}") from exc


class LuaAdmin:
    """Talks to ``unix:/path/admin.sock`` or ``http://127.0.0.1:PORT``; loopback only."""

    def __init__(self, address: str, *, timeout: float = 2.0, state_timeout: float = 15.0) -> None:
        problem = admin_address_problem(address)
        if problem is not None:
            raise AdminError(f"nginx admin endpoint: {problem}")
        self.address = address
        # The state lists every service: 30,000 take nginx about 0.5 s, more under load.
        self._state_timeout = aiohttp.ClientTimeout(total=max(timeout, state_timeout))
        if address.startswith("unix:"):
            self._connector: aiohttp.BaseConnector = aiohttp.UnixConnector(path=address[5:])
            self._base = "http://muster-admin"
        else:
            self._connector = aiohttp.TCPConnector()
            self._base = address.rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=self._connector, timeout=aiohttp.ClientTimeout(total=timeout)
        )

    async def __aenter__(self) -> LuaAdmin:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._session.close()

    async def _request(
        self, method: str, path: str, body: bytes | None = None, timeout: aiohttp.ClientTimeout | None = None
    ) -> str:
        with _map_errors(f"{method} {path}"):
            async with self._session.request(method, self._base + path, data=body, timeout=timeout) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise AdminError(f"nginx admin endpoint: {method} {path}: {resp.status} {text.strip()}")
                return text

    async def put_service(self, name: str, body: bytes) -> None:
        await self._request("PUT", f"/muster/services/{name}", body)

    async def delete_service(self, name: str) -> None:
        await self._request("DELETE", f"/muster/services/{name}")

    async def put_routes(self, body: bytes) -> None:
        """Replace the route table (``muster.dataplane.routes``); an empty body keeps none."""
        if body:
            await self._request("PUT", "/muster/routes", body)
        else:
            await self._request("DELETE", "/muster/routes")

    async def set_generation(self, token: str) -> None:
        await self._request("PUT", "/muster/generation", token.encode())

    async def traffic(self) -> str:
        """nginx's raw traffic counters (``muster_traffic.lua``), for ``muster.observe.traffic``."""
        return await self._request("GET", "/muster/traffic")

    async def forget_traffic(self, series: list[tuple[str, str]]) -> None:
        """Drop the counters of these (service, server) pairs."""
        body = "".join(f"{service}\t{server}\n" for service, server in series).encode()
        await self._request("POST", "/muster/traffic/forget", body)

    async def state(self) -> AdminState:
        """Everything nginx holds: the token, the master, and every service's digest."""
        return self._parse(await self._request("GET", "/muster/state", timeout=self._state_timeout))

    async def summary(self) -> AdminState:
        """The token, the master and the count of changes, without the services (cheap)."""
        return self._parse(await self._request("GET", "/muster/summary"))

    @staticmethod
    def _parse(text: str) -> AdminState:
        generation = ""
        changes: int | None = None
        services: dict[str, int] = {}
        digests: dict[str, str] = {}
        master_alive: bool | None = None
        routes_digest = ""
        for line in text.splitlines():
            parts = line.split(" ")
            if parts[0] == "generation":
                generation = " ".join(parts[1:])
            elif parts[0] == "routes" and len(parts) == 2:
                routes_digest = parts[1]
            elif parts[0] == "master" and len(parts) == 3:
                master_alive = parts[2] == "1"
            elif parts[0] == "changes" and len(parts) == 2 and parts[1].isdigit():
                changes = int(parts[1])
            elif parts[0] == "service" and len(parts) in (4, 5):
                services[parts[1]] = int(parts[3])
                if len(parts) == 5:
                    digests[parts[1]] = parts[4]
        log.debug(kv("dataplane.state", generation=generation, services=len(services)))
        return AdminState(generation, services, digests, master_alive, routes_digest, changes)
