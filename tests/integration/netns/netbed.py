"""A multi-host test bed in network namespaces: three etcd members, two proxies, three service hosts.

Each host is a network namespace joined to one bridge by a veth pair; the root namespace
sits on the bridge too (``.1``), so the test process can reach every host::

    etcd0..2    .11-.13   etcd 3.4, client :2379, peer :2380
    proxy0..1   .21-.22   nginx with the Lua data plane on :8080, ``muster confd -watch``
    svc0..2     .31-.33   a demo server on :8000 (answers its ID), ``muster register`` (``hello``)
    lg          .41       the load generator (``loadgen.py``)

The /24 is the first ``10.251.N.0/24`` that no address or route of the machine overlaps.
Every process binds its namespace's bridge address: none can see the root's loopback.

Names, locks and the cleanup of what killed runs left: ``nsnet``; the process drivers
(muster.stack's own, run under ``ip netns exec``): ``nsprocs``.

Faults are made with the kernel, and undone by ``heal()``:

* ``partition(a, b)``: packets between the two groups vanish silently, both ways (a
  permanent neighbour entry with a MAC no host has: the bridge floods the frame and every
  host drops it), as on a real partition; connections hang rather than fail;
* ``reject(a, b)``: ``unreachable`` routes, so sends fail at once (EHOSTUNREACH);
* ``link_down(host)``: the host's bridge port goes down (the whole host is cut off);
* ``netem(host, spec)``: ``tc qdisc ... netem`` on the host's interface, when the kernel
  has sch_netem (``netem_available()``);
* signals: through the process drivers (``kill()`` is SIGKILL).

Synchronous, like ``muster.stack``: it drives processes, not traffic.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from loadgen import LoadGen
from nsnet import (
    LOCK_DIR,
    PREFIX,
    BedError,
    Host,
    choose_subnet,
    cleanup_leftovers,
    kill_namespace,
    link_names,
    lock_path,
    run,
)
from nsprocs import PROXY_PORT, NsCommand, NsDaemon, NsEtcd, NsNginx

from muster.stack.stock import write_resource_for

__all__ = ["Bed", "BedError", "Fault", "Host", "until"]

SERVICE = "hello"
SERVICE_PORT = 8000
#: A MAC address no host on the bridge has (locally administered): frames to it are dropped.
NOWHERE_MAC = "02:00:5e:00:de:ad"


@dataclass
class Fault:
    """A fault in force: ``heal()`` on the bed runs ``undo`` (each command may fail harmlessly)."""

    what: str
    undo: list[list[str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


# -- the bed -------------------------------------------------------------------------------------


class Bed:
    """The namespaces, their processes and the faults in force; a context manager.

    ``start()`` builds everything and returns once both proxies route ``hello`` to all
    three servers; on failure it tears down what it built. ``close()`` always removes every
    namespace, link and process, whatever state they are in. ``ttl`` is the agents' lease
    TTL (short, so that scenarios waiting for leases to expire stay short); ``rate`` the
    load generator's requests per second through each proxy.
    """

    def __init__(
        self, base_dir: Path, *, ttl: int = 5, rate: float = 50.0, daemon_args: Sequence[str] = ()
    ) -> None:
        self.base = Path(base_dir).absolute()
        #: Extra ``muster confd`` flags for both daemons (``-panic-grace 0``: the guard off).
        self.daemon_args = tuple(daemon_args)
        self.ttl = ttl
        self.rate = rate
        self.id = f"{PREFIX}{secrets.token_hex(3)[:5]}"
        self.bridge = f"{self.id}br"
        self.subnet: ipaddress.IPv4Network | None = None
        self.hosts: dict[str, Host] = {}
        self.etcd: list[NsEtcd] = []
        self.nginx: list[NsNginx] = []
        self.daemons: list[NsDaemon] = []
        self.demos: list[NsCommand] = []
        self.agents: list[NsCommand] = []
        self.faults: list[Fault] = []
        self._lock_fd: int | None = None
        self._member_ids: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"<Bed {self.id} {self.subnet} faults={[f.what for f in self.faults]}>"

    # -- layout ---------------------------------------------------------------------------

    def _address(self, index: int) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + index)

    @property
    def etcd_hosts(self) -> list[Host]:
        return [self.hosts[f"etcd{i}"] for i in range(3)]

    @property
    def proxy_hosts(self) -> list[Host]:
        return [self.hosts[f"proxy{i}"] for i in range(2)]

    @property
    def service_hosts(self) -> list[Host]:
        return [self.hosts[f"svc{i}"] for i in range(3)]

    @property
    def etcd_urls(self) -> list[str]:
        return [m.client_url for m in self.etcd]

    def proxy_url(self, index: int, path: str = f"/{SERVICE}/") -> str:
        return f"http://{self.proxy_hosts[index].ip}:{PROXY_PORT}{path}"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Clean up what killed runs left, build the network, start every process, wait for routes."""
        try:
            self._lock()
            cleanup_leftovers()
            self._build_network()
            self._start_processes()
        except BaseException:
            self.close()
            raise

    def _lock(self) -> None:
        LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
        self._lock_fd = os.open(lock_path(self.id), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _build_network(self) -> None:
        # Two beds must not pick the same subnet between looking and taking it.
        alloc = os.open(LOCK_DIR / "alloc.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(alloc, fcntl.LOCK_EX)
            self.subnet = choose_subnet()
            run("ip", "link", "add", self.bridge, "type", "bridge")
            run("ip", "addr", "add", f"{self._address(1)}/24", "dev", self.bridge)
            run("ip", "link", "set", self.bridge, "up")
        finally:
            os.close(alloc)
        layout = [(f"etcd{i}", f"e{i}", 11 + i) for i in range(3)]
        layout += [(f"proxy{i}", f"p{i}", 21 + i) for i in range(2)]
        layout += [(f"svc{i}", f"s{i}", 31 + i) for i in range(3)]
        layout += [("lg", "lg", 41)]
        for name, code, index in layout:
            host = Host(name, f"{self.id}-{name}", f"{self.id}{code}", self._address(index))
            self.hosts[name] = host
            run("ip", "netns", "add", host.ns)
            run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.ns)
            run("ip", "-n", host.ns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
            run("ip", "-n", host.ns, "link", "set", "eth0", "up")
            run("ip", "-n", host.ns, "link", "set", "lo", "up")
            run("ip", "link", "set", host.veth, "master", self.bridge, "up")

    def _start_processes(self) -> None:
        cluster = ",".join(f"{h.name}=http://{h.ip}:2380" for h in self.etcd_hosts)
        for host in self.etcd_hosts:
            data = self.base / "etcd" / host.name
            member = NsEtcd(host, data, initial_cluster=cluster, cluster_token=self.id)
            self.etcd.append(member)
            member.start(wait=False)
        for member in self.etcd:
            member.wait_healthy(timeout=60.0)
        self._learn_member_ids()
        for i, host in enumerate(self.service_hosts):
            self.demos.append(self._demo(i, host))
            self.agents.append(self._agent(i, host))
        for i, host in enumerate(self.proxy_hosts):
            admin = self.base / f"proxy{i}" / "run" / "admin.sock"
            admin.parent.mkdir(parents=True, exist_ok=True)
            admin.parent.chmod(0o700)
            nginx = NsNginx(host, self.base / f"proxy{i}" / "nginx", admin)
            self.nginx.append(nginx)
            confdir = self.base / f"proxy{i}" / "confd"
            write_resource_for(confdir, nginx)
            self.daemons.append(NsDaemon(host, confdir, self.etcd_urls, admin, self.daemon_args))
        for demo in self.demos:
            demo.start()
        for nginx in self.nginx:
            nginx.start(timeout=60.0)
        for daemon in self.daemons:
            daemon.start()
        for agent in self.agents:
            agent.start()
        for daemon, nginx in zip(self.daemons, self.nginx, strict=True):
            daemon.wait_file(nginx.dest, timeout=60.0)
            nginx.wait_serving(timeout=30.0)
        self.wait_routed(timeout=60.0)

    def _demo(self, index: int, host: Host) -> NsCommand:
        script = Path(__file__).with_name("loadgen.py")
        argv = [sys.executable, str(script), "demo", f"s{index}", host.ip, str(SERVICE_PORT)]
        return NsCommand(host, argv, self.base / "logs" / f"demo-{host.name}.log")

    def _agent(self, index: int, host: Host) -> NsCommand:
        argv = [sys.executable, "-m", "muster", "register", "--service", SERVICE, "--id", f"s{index}"]
        argv += ["--host", host.ip, "--port", str(SERVICE_PORT), "--ttl", str(self.ttl)]
        argv += ["--check-http", f"http://{host.ip}:{SERVICE_PORT}/", "--check-interval", "0.5"]
        argv += ["--rise", "1", "--fall", "2", "--stop-timeout", "2"]
        for url in self.etcd_urls:
            argv += ["--node", url]
        return NsCommand(host, argv, self.base / "logs" / f"agent-{host.name}.log")

    def close(self) -> None:
        """Stop every process, remove every namespace and link; never raises."""
        self.heal_all()
        # Agents first, while etcd is up: they deregister quickly.
        for proc in [*self.agents, *self.demos, *self.daemons, *self.nginx, *self.etcd]:
            with contextlib.suppress(Exception):
                proc.stop(timeout=5.0)
        for host in self.hosts.values():
            kill_namespace(host.ns)
            run("ip", "link", "del", host.veth, check=False)
        if self.bridge in link_names():
            run("ip", "link", "del", self.bridge, check=False)
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                lock_path(self.id).unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- faults ---------------------------------------------------------------------------

    def _fault(self, what: str, do: list[list[str]], undo: list[list[str]]) -> Fault:
        fault = Fault(what, undo)
        self.faults.append(fault)
        try:
            for argv in do:
                run(*argv)
        except BaseException:
            self.heal(fault)
            raise
        return fault

    def partition(self, a: Sequence[Host], b: Sequence[Host]) -> Fault:
        """Drop every packet between ``a`` and ``b`` silently, both ways."""
        do, undo = [], []
        for x, y in [(x, y) for x in a for y in b] + [(y, x) for x in a for y in b]:
            do.append(["ip", "-n", x.ns, "neigh", "replace", y.ip, "lladdr", NOWHERE_MAC])
            do[-1] += ["nud", "permanent", "dev", "eth0"]
            undo.append(["ip", "-n", x.ns, "neigh", "del", y.ip, "dev", "eth0"])
        names = f"{','.join(h.name for h in a)} | {','.join(h.name for h in b)}"
        return self._fault(f"partition {names}", do, undo)

    def reject(self, a: Sequence[Host], b: Sequence[Host]) -> Fault:
        """Unreachable routes between ``a`` and ``b``: sends fail at once, both ways."""
        do, undo = [], []
        for x, y in [(x, y) for x in a for y in b] + [(y, x) for x in a for y in b]:
            do.append(["ip", "-n", x.ns, "route", "add", "unreachable", f"{y.ip}/32"])
            undo.append(["ip", "-n", x.ns, "route", "del", "unreachable", f"{y.ip}/32"])
        return self._fault(f"reject {','.join(h.name for h in a)} | {','.join(h.name for h in b)}", do, undo)

    def link_down(self, host: Host) -> Fault:
        """Take the host's bridge port down: it reaches nothing and nothing reaches it."""
        return self._fault(
            f"link down {host.name}",
            [["ip", "link", "set", host.veth, "down"]],
            [["ip", "link", "set", host.veth, "up"]],
        )

    def netem(self, host: Host, spec: Sequence[str]) -> Fault:
        """``tc qdisc add dev eth0 root netem SPEC`` in the host (delay, loss...): egress only."""
        tc = ["ip", "netns", "exec", host.ns, "tc", "qdisc"]
        return self._fault(
            f"netem {host.name} {' '.join(spec)}",
            [[*tc, "add", "dev", "eth0", "root", "netem", *spec]],
            [[*tc, "del", "dev", "eth0", "root"]],
        )

    def heal(self, fault: Fault) -> float:
        """Undo ``fault``; return the time it was healed (``time.monotonic()``)."""
        for argv in fault.undo:
            run(*argv, check=False)
        if fault in self.faults:
            self.faults.remove(fault)
        return time.monotonic()

    def heal_all(self) -> None:
        for fault in list(reversed(self.faults)):
            self.heal(fault)

    # -- the registry ---------------------------------------------------------------------

    def etcd_call(
        self, path: str, body: dict[str, Any], *, members: Sequence[int] | None = None, timeout: float = 2.0
    ) -> dict[str, Any]:
        """POST to the v3 gateway of the first member (of ``members``) that answers with a leader."""
        errors = []
        for i in range(len(self.etcd)) if members is None else members:
            req = urllib.request.Request(
                self.etcd[i].client_url + path,
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "Grpc-Metadata-hasleader": "true"},
            )
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    reply: dict[str, Any] = json.loads(resp.read())
                    return reply
            except urllib.error.HTTPError as exc:
                with exc:
                    errors.append(f"etcd{i}: {exc.code} {exc.read()[:120]!r}")
            except (OSError, ValueError) as exc:
                errors.append(f"etcd{i}: {exc}")
        raise BedError(f"no etcd member took {path}: {'; '.join(errors)}")

    def put(self, key: str, value: str, **kw: Any) -> None:
        self.etcd_call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)}, **kw)

    def delete(self, key: str, *, prefix: bool = False, **kw: Any) -> int:
        body = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _b64(_prefix_end(key))
        return int(self.etcd_call("/v3/kv/deleterange", body, **kw).get("deleted", 0))

    def keys(self, prefix: str, **kw: Any) -> list[str]:
        body = {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix)), "keys_only": True}
        kvs = self.etcd_call("/v3/kv/range", body, **kw).get("kvs", [])
        return [base64.b64decode(item["key"]).decode() for item in kvs]

    def probe_server(self, service: str) -> tuple[str, str]:
        """The key and value that make ``service`` a service of one server (svc0's demo)."""
        value = json.dumps({"host": self.service_hosts[0].ip, "port": SERVICE_PORT})
        return f"/services/{service}/servers/probe", value

    def leader(self, members: Sequence[int] = (0, 1, 2)) -> int | None:
        """The index of the member that leads, as the first of ``members`` that answers says."""
        for i in members:
            if not self.etcd[i].running:
                continue
            try:
                status = self.etcd_call("/v3/maintenance/status", {}, members=[i], timeout=1.0)
            except BedError:
                continue
            leader = str(status.get("leader", ""))
            for j, member_id in self._member_ids.items():
                if member_id == leader:
                    return j
        return None

    def _learn_member_ids(self) -> None:
        for i in range(len(self.etcd)):
            status = self.etcd_call("/v3/maintenance/status", {}, members=[i])
            self._member_ids[i] = str(status["header"]["member_id"])

    def watched_member(self, proxy: int) -> int:
        """The etcd member the proxy's daemon watches now, as its log tells.

        The watch opens on the first node at start and moves only after an outage, which
        the mirror logs as ``etcd.watch.resumed endpoint=URL``.
        """
        log = self.daemons[proxy].log_path.read_text(errors="replace")
        log = log[log.rfind("daemon.started") :]
        urls = re.findall(r"etcd\.watch\.resumed endpoint=(\S+)", log)
        current = urls[-1] if urls else self.etcd_urls[0]
        return self.etcd_urls.index(current) if current in self.etcd_urls else 0

    def accept_held(self) -> None:
        """SIGUSR1 to every running daemon: the panic guard applies the removals it holds.

        Sent only to a daemon whose status server answers: before its handlers are in place
        SIGUSR1 would kill it.
        """
        for daemon in self.daemons:
            url = f"http://{daemon.host.ip}:9101/healthz"
            if daemon.pid is not None and daemon.running and self.get(url)[0] == 200:
                os.kill(daemon.pid, signal.SIGUSR1)

    # -- the data plane -------------------------------------------------------------------

    def get(self, url: str, timeout: float = 1.0) -> tuple[int, str]:
        """One GET: (status, body); status 0 when the connection failed."""
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode(errors="replace")
        except OSError as exc:
            return 0, str(exc)

    def serves(self, proxy: int, service: str) -> bool:
        return self.get(self.proxy_url(proxy, f"/{service}/"), timeout=0.5)[0] == 200

    def admin_state(self, proxy: int) -> dict[str, Any]:
        """nginx's ``/muster/state``: ``generation`` and ``services`` (name -> peer count)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2.0)
        chunks = []
        try:
            sock.connect(str(self.nginx[proxy].admin_socket))
            sock.sendall(b"GET /muster/state HTTP/1.0\r\nHost: admin\r\n\r\n")
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        finally:
            sock.close()
        body = b"".join(chunks).decode(errors="replace").partition("\r\n\r\n")[2]
        state: dict[str, Any] = {"generation": "", "services": {}}
        for line in body.splitlines():
            parts = line.split(" ")
            if parts[0] == "generation":
                state["generation"] = " ".join(parts[1:])
            elif parts[0] == "service" and len(parts) >= 4:
                state["services"][parts[1]] = int(parts[3])
        return state

    def peers(self, proxy: int, service: str = SERVICE) -> int | None:
        """How many servers of ``service`` the proxy's nginx holds (None: unknown service)."""
        try:
            count: int | None = self.admin_state(proxy)["services"].get(service)
        except OSError:
            return None
        return count

    def sample_peers(self, seconds: float, interval: float = 0.05) -> list[int]:
        """Poll both proxies for ``seconds``: the fewest servers of ``hello`` each held (0: none)."""
        fewest = [3, 3]
        deadline = time.monotonic() + seconds
        while True:
            for p in range(2):
                fewest[p] = min(fewest[p], self.peers(p) or 0)
            if time.monotonic() >= deadline:
                return fewest
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    def wait_routed(self, timeout: float = 30.0, servers: int = 3) -> None:
        """Until both proxies hold ``servers`` servers of ``hello`` and answer through them."""

        def ok() -> bool:
            return all(self.peers(p) == servers and self.serves(p, SERVICE) for p in range(2))

        if until(ok, timeout) is None:
            state = [self.peers(p) for p in range(2)]
            raise BedError(f"proxies do not route {SERVICE} to {servers} servers after {timeout}s: {state}")

    def wait_serving(self, proxies: Sequence[int], service: str, timeout: float = 30.0) -> float | None:
        """The time (monotonic) by which every one of ``proxies`` answered 200 for ``service``."""
        seen: dict[int, float] = {}

        def ok() -> bool:
            for p in proxies:
                if p not in seen and self.serves(p, service):
                    seen[p] = time.monotonic()
            return len(seen) == len(proxies)

        return max(seen.values()) if until(ok, timeout, interval=0.01) is not None else None

    # -- health between scenarios ---------------------------------------------------------

    def ensure_healthy(self, timeout: float = 60.0) -> None:
        """Heal every fault, start whatever is not running, and wait until all routes again."""
        self.heal_all()
        for member in self.etcd:
            if not member.running:
                member.start(wait=False)
        for member in self.etcd:
            member.wait_healthy(timeout=timeout)
        for proc in [*self.demos, *self.nginx, *self.daemons, *self.agents]:
            if not proc.running:
                proc.start()
        self.wait_routed(timeout=timeout)

    def load(self, *, rate: float | None = None) -> LoadGen:
        """A load generator in ``lg`` sending steady GETs for ``/hello/`` through both proxies."""
        urls = [self.proxy_url(0), self.proxy_url(1)]
        return LoadGen(self.hosts["lg"].ns, urls, self.base / "load", rate=rate or self.rate)

    def logs(self) -> str:
        """The tail of every process's log, for a failure message."""
        out = []
        procs: list[Any] = [*self.etcd, *self.nginx, *self.daemons, *self.agents, *self.demos]
        for proc in procs:
            out.append(f"--- {proc!r}\n{proc.log_tail(8)}")
        return "\n".join(out)


def until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> float | None:
    """Poll ``predicate`` until true; the monotonic time it was, or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


if __name__ == "__main__":
    # ``python netbed.py``: remove what killed runs left (namespaces, links, their processes).
    for item in cleanup_leftovers():
        print("removed", item)
