"""The processes of a local stack: etcd, nginx and ``muster confd -watch`` with the stock resource.

``muster up`` runs one for newcomers; the integration tests and ``bench/e2e_routing.py``
run the same, so both exercise what users get. ``Stack.start()`` starts the processes in
dependency order, each driver returning only once its process answers, and stops what
it started if any step fails; ``Stack.stop()`` stops them in reverse. Synchronous, like
the drivers: async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import contextlib
import grp
import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from muster.dataplane.mode import DataPlaneMode
from muster.dataplane.nginx.conf import LuaSettings, http_block, lua_available, lua_dir, main_block
from muster.errors import ConfigError, Error
from muster.stack.confd import DaemonProcess
from muster.stack.etcd import EtcdProcess
from muster.stack.nginx import NginxProcess
from muster.stack.ports import free_port
from muster.stack.process import group_members, stat_fields
from muster.stack.redis import RedisProcess
from muster.stack.stock import write_resource_for
from muster.stack.zookeeper import ZooKeeperProcess

__all__ = ["Stack", "UpOptions", "leftover_processes", "stop_processes"]


@dataclass(frozen=True, slots=True)
class UpOptions:
    """``muster up``'s settings; the defaults are the command's."""

    port: int = 8080
    etcd_port: int = 2379
    etcd_nodes: int = 1
    backend: str = "etcdv3"
    demo: int = 3
    state_dir: Path = Path(".muster")
    workers: int | str = "auto"
    #: "lua" (membership pushed to nginx, no reload), "reload", or "auto": lua when installed.
    dataplane: str = "auto"
    #: Flags (``--port``, ``--etcd-port``) whose busy port may be replaced by a free one:
    #: those left at their default, not asked for.
    fallback_ports: frozenset[str] = frozenset()


@dataclass(slots=True)
class Stack:
    """The processes of one ``muster up``; ``start()`` and ``stop()`` are synchronous."""

    opts: UpOptions
    etcd: list[EtcdProcess] = field(default_factory=list)
    redis: RedisProcess | None = None
    zookeeper: ZooKeeperProcess | None = None
    nginx: NginxProcess | None = None
    daemon: DaemonProcess | None = None
    #: What the user should know about how the stack started (a port that was taken).
    notes: list[str] = field(default_factory=list)
    # Held by stop() and restart_nginx(), which run in threads: a stop that comes while
    # nginx restarts waits for it, then stops the new master, and no restart follows a stop.
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _stopped: bool = field(default=False, repr=False, compare=False)

    @property
    def state(self) -> Path:
        return self.opts.state_dir.absolute()

    @property
    def etcd_urls(self) -> list[str]:
        return [m.client_url for m in self.etcd]

    @property
    def nodes(self) -> list[str]:
        """The registry's endpoints as ``-node`` takes them: etcd's URLs, or redis's host:port."""
        if self.zookeeper is not None:
            return [self.zookeeper.node]
        return [self.redis.node] if self.redis is not None else self.etcd_urls

    @property
    def lua(self) -> bool:
        """Whether server changes reach nginx through the Lua data plane."""
        if self.opts.dataplane == DataPlaneMode.AUTO:
            return lua_available()
        return self.opts.dataplane == DataPlaneMode.LUA

    @property
    def admin_socket(self) -> Path:
        # In a directory only muster's user can enter: nginx makes every unix listener
        # 0666, and whoever reaches it can route any service anywhere.
        return self.state / "run" / "admin.sock"

    @property
    def dest(self) -> Path:
        assert self.nginx is not None
        return self.nginx.dest

    def start(self) -> None:
        """Start etcd, nginx and the daemon; on failure stop what started and raise ``Error``."""
        self._stopped = False
        try:
            if self.opts.backend == "redis":
                self._start_redis()
            elif self.opts.backend == "zookeeper":
                self._start_zookeeper()
            else:
                self._start_etcd()
            self._start_nginx()
            self._start_daemon()
        except BaseException:
            self.stop()
            raise

    def _start_etcd(self) -> None:
        base = self.state / "etcd"
        # A fresh store each time: registrations are leases that died with the last run,
        # and a member's stored peer URLs would not match this run's ports.
        shutil.rmtree(base, ignore_errors=True)
        n = self.opts.etcd_nodes
        clients = _member_ports(self.opts.etcd_port, n)
        peers = [free_port() for _ in range(n)]
        names = [f"m{i}" for i in range(n)]
        cluster = ",".join(f"{name}=http://127.0.0.1:{port}" for name, port in zip(names, peers, strict=True))
        for name, client, peer in zip(names, clients, peers, strict=True):
            member = EtcdProcess(
                base / name,
                name=name,
                client_port=client,
                peer_port=peer,
                initial_cluster=cluster,
                cluster_token=f"muster-up-{os.getpid()}",
            )
            member.client_port = self._port(client, "--etcd-port", f"etcd {name}")
            self.etcd.append(member)
            member.start(wait=False)
        for member in self.etcd:
            member.wait_healthy(timeout=30.0)

    def _start_redis(self) -> None:
        base = self.state / "redis"
        shutil.rmtree(base, ignore_errors=True)  # a fresh store, as etcd's: the last run's keys died with it
        self.redis = RedisProcess(base / "data")  # a free port: Debian's redis-server may hold 6379
        self.redis.start()

    def _start_zookeeper(self) -> None:
        base = self.state / "zookeeper"
        shutil.rmtree(base, ignore_errors=True)  # a fresh store, as etcd's
        self.zookeeper = ZooKeeperProcess(base)  # a free port: a system ZooKeeper may hold 2181
        self.zookeeper.start()

    def _port(self, preferred: int, flag: str, what: str) -> int:
        if _is_free(preferred):
            return preferred
        if flag not in self.opts.fallback_ports:
            raise ConfigError(f"port {preferred} on 127.0.0.1 is in use: choose another with {flag}")
        port = free_port()
        self.notes.append(f"port {preferred} is in use (a system service?): {what} listens on {port}")
        return port

    def _start_nginx(self) -> None:
        run = self.admin_socket.parent
        run.mkdir(parents=True, exist_ok=True)
        run.chmod(0o700)
        self._remove_admin_socket()
        self.nginx = NginxProcess(
            self.state / "nginx",
            port=self._port(self.opts.port, "--port", "nginx"),
            status_port=free_port(),
            worker_processes=self.opts.workers,
            access_log=True,
            main_snippets=[main_block()] if self.lua else [],
            http_snippets=[http_block(LuaSettings(admin_socket=self.admin_socket))] if self.lua else [],
            worker_user=self._worker_user(),
        )
        # The listen line names the port, which may differ from the last run's.
        with contextlib.suppress(OSError):
            self.nginx.server_conf_path.unlink()
        with contextlib.suppress(OSError):
            self.dest.unlink()  # the last run's services are gone with its etcd
        self.nginx.start()

    def _remove_admin_socket(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            # Left by a master that was killed: nginx would fail with "Address already in use".
            self.admin_socket.unlink()

    def nginx_exit(self) -> str | None:
        """How nginx's master exited on its own (``killed``, ``status 1``); None while it runs."""
        return self.nginx.exit_reason() if self.nginx is not None else None

    def restart_nginx(self, timeout: float = 15.0) -> bool:
        """Start nginx again, on the same ports, after its master exited; False if ``stop()``
        came first (nothing is started then).

        A master killed hard leaves its workers running, orphaned but still in its process
        group and holding the listening sockets, and its admin socket on disk: the workers
        are killed (stopping the dead master reaps it and SIGKILLs its group) and the socket
        removed before the new master starts. Its shared dict starts empty: the daemon's
        verify loop finds a generation token not its own and pushes every service again.
        Raises ``Error`` (the log's tail) if the new master does not serve.
        """
        with self._lock:
            if self._stopped or self.nginx is None:
                return False
            self.nginx.stop()
            self._remove_admin_socket()
            self.nginx.start(timeout=timeout)
            self.nginx.wait_serving(timeout=timeout)
            return True

    def _worker_user(self) -> tuple[str, str] | None:
        """As root, nginx's workers run as the user who ran sudo, else as nobody; as root
        only if that user cannot read what a worker reads (said in ``notes``)."""
        if os.geteuid() != 0:
            return None
        name = os.environ.get("SUDO_USER") or "nobody"
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            entry = pwd.getpwnam("nobody")
        user = (entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name)
        needed = [self.state / "nginx"] + ([lua_dir()] if self.lua else [])
        for path in needed:
            path.mkdir(parents=True, exist_ok=True)
            probe = subprocess.run(
                ["test", "-r", str(path), "-a", "-x", str(path)],
                user=entry.pw_uid,
                group=entry.pw_gid,
                extra_groups=[],
                check=False,
            )
            if probe.returncode != 0:
                self.notes.append(f"nginx's workers run as root: {user[0]} cannot read {path}")
                return None
        return user

    def _start_daemon(self) -> None:
        assert self.nginx is not None
        confdir = self.state / "confd"
        shutil.rmtree(confdir / "conf.d", ignore_errors=True)
        nginx = self.nginx
        write_resource_for(confdir, nginx)
        dataplane = ["-dataplane", "lua", "-dataplane-admin", f"unix:{self.admin_socket}"]
        self.daemon = DaemonProcess(
            confdir,
            self.nodes,
            backend=self.opts.backend,
            log_path=self.state / "logs" / "muster.log",
            extra_args=dataplane if self.lua else ["-dataplane", "reload"],
            status_port=free_port(),
        )
        self.daemon.start()
        self.daemon.wait_file(self.dest, timeout=30.0)
        nginx.wait_serving(timeout=15.0)

    def put(self, key: str, value: str) -> None:
        """Write ``key`` in the keyspace the daemon reads (v3, v2 with ``--backend etcd``, redis)."""
        if self.redis is not None:
            self.redis.call("SET", key, value)
            return
        if self.zookeeper is not None:
            self.zookeeper.put(key, value)
            return
        self._etcd_call(key, value)

    def delete(self, key: str) -> None:
        """Delete ``key`` from the keyspace the daemon reads."""
        if self.redis is not None:
            self.redis.call("DEL", key)
            return
        if self.zookeeper is not None:
            self.zookeeper.put(key, None)
            return
        self._etcd_call(key, None)

    def _etcd_call(self, key: str, value: str | None) -> None:
        url = self.etcd_urls[0]
        if self.opts.backend == "etcd":
            data = urllib.parse.urlencode({"value": value}).encode() if value is not None else None
            req = urllib.request.Request(
                f"{url}/v2/keys{urllib.parse.quote(key)}",
                data=data,
                method="PUT" if value is not None else "DELETE",
            )
            if data is not None:
                req.add_header("Content-Type", "application/x-www-form-urlencoded")
        else:
            body = {"key": _b64(key)} | ({"value": _b64(value)} if value is not None else {})
            path = "/v3/kv/put" if value is not None else "/v3/kv/deleterange"
            req = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode())
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                if not (value is None and exc.code == 404):  # v2: deleting a missing key
                    raise Error(f"etcd refused {key}: {exc.read().decode(errors='replace')}") from None
        except OSError as exc:
            raise Error(f"etcd at {url} unreachable: {exc}") from exc

    def dead(self) -> str | None:
        """The name of a process that exited on its own, if any."""
        if self.daemon is not None and not self.daemon.running:
            return f"the muster daemon (log: {self.daemon.log_path})"
        if self.nginx is not None and not self.nginx.running:
            return f"nginx (log: {self.nginx.log_path})"
        for member in self.etcd:
            if not member.running:
                return f"etcd {member.name} (log: {member.log_path})"
        if self.redis is not None and not self.redis.running:
            return f"redis-server (log: {self.redis.log_path})"
        if self.zookeeper is not None and not self.zookeeper.running:
            return f"zookeeper (log: {self.zookeeper.log_path})"
        return None

    def stop(self) -> None:
        """Stop the daemon, nginx and etcd, in that order; safe to call twice, and from
        another thread than a ``restart_nginx()`` under way (it waits for that to end)."""
        with self._lock:
            self._stopped = True
            if self.daemon is not None:
                self.daemon.stop()
            if self.nginx is not None:
                self.nginx.stop()
            for member in self.etcd:
                member.stop()
            if self.redis is not None:
                self.redis.stop()
            if self.zookeeper is not None:
                self.zookeeper.stop()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _member_ports(first: int, n: int) -> list[int]:
    """etcd's own convention for local clusters: 2379, 12379, 22379."""
    ports = [first + 10000 * i for i in range(n)]
    return ports if ports[-1] <= 65535 else [first] + [free_port() for _ in range(n - 1)]


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the servers themselves do: connections of a process just stopped, lingering in
        # TIME_WAIT, must not count as the port being taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def leftover_processes(state: Path) -> list[int]:
    """Processes whose command line names a path inside ``state``: what a killed run left.

    etcd's data directory, nginx's prefix and the daemon's confdir all lie inside the
    state directory, so nothing else matches.
    """
    inside = str(state.absolute()).rstrip("/") + "/"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                args = fh.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        # nginx rewrites its arguments into one title ("nginx: master process ... -p DIR/"),
        # so match a path at the start of any space-separated word.
        if (" " + " ".join(args)).find(" " + inside) >= 0:
            found.append(int(entry))
    return found


def stop_processes(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM each process and the members of the process group it leads (nginx's
    workers), SIGKILL what is left after ``timeout``; return once all are gone (zombies
    count as gone), or after a second ``timeout``.

    Each process is pinned by a pidfd before it is signalled and waited for through it:
    a process that exits meanwhile can have its pid handed to an unrelated process (pid_max
    may be 32768), and a plain ``kill(pid)`` 10 s later would hit that one instead.
    """
    pinned: dict[int, _Pinned] = {}
    try:
        for pid in pids:
            _pin(pid, pinned)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            # Group members are collected again for SIGKILL: a master may have forked since.
            for leader in [p for p in pinned.values() if p.alive() and p.leads_group()]:
                for member in group_members(leader.pid):
                    _pin(member, pinned, pgid=leader.pid)
            for proc in pinned.values():
                proc.send(sig)
            if _wait_gone(list(pinned.values()), timeout):
                return
    finally:
        for proc in pinned.values():
            proc.close()


class _Pinned:
    """One process, held by a pidfd where the kernel has them (Linux 5.3), else by pid."""

    def __init__(self, pid: int, fd: int | None) -> None:
        self.pid = pid
        self.fd = fd
        self._gone = False

    def alive(self) -> bool:
        if not self._gone:
            if self.fd is not None:
                self._gone = bool(_poll([self.fd], 0.0))  # readable once it exited
            else:
                self._gone = not _running(self.pid)
        return not self._gone

    def leads_group(self) -> bool:
        return stat_fields(self.pid)[2:3] == [str(self.pid)] and self.alive()

    def send(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.fd is not None:
                signal.pidfd_send_signal(self.fd, sig)
            elif self.alive():
                os.kill(self.pid, sig)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _pin(pid: int, pinned: dict[int, _Pinned], pgid: int | None = None) -> None:
    """Add ``pid`` to ``pinned`` if it is alive (and, given ``pgid``, still in that group)."""
    if pid in pinned or pid == os.getpid():
        return
    try:
        fd: int | None = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (OSError, AttributeError):  # no pidfds here: fall back to the pid
        fd = None
    proc = _Pinned(pid, fd)
    # Read after pinning and confirmed alive after reading: the fields were the pinned
    # process's, not those of a successor that got its pid.
    fields = stat_fields(pid)
    if fields and fields[0] != "Z" and (pgid is None or fields[2] == str(pgid)) and proc.alive():
        pinned[pid] = proc
    else:
        proc.close()


def _wait_gone(procs: list[_Pinned], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        living = [p for p in procs if p.alive()]
        left = deadline - time.monotonic()
        if not living or left <= 0:
            return not living
        fds = [p.fd for p in living if p.fd is not None]
        if len(fds) == len(living):
            _poll(fds, left)  # wakes when any of them exits
        else:
            time.sleep(min(0.05, left))


def _poll(fds: list[int], timeout: float) -> list[tuple[int, int]]:
    poller = select.poll()  # not select(): a busy process may hold fds past FD_SETSIZE
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return poller.poll(timeout * 1000)


def _running(pid: int) -> bool:
    fields = stat_fields(pid)
    return bool(fields) and fields[0] != "Z"
