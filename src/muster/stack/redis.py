"""Run a real ``redis-server`` on loopback, for ``muster up --backend redis`` and the tests alike.

Contracts, as ``stack.etcd.EtcdProcess``: ``start()`` returns once the server answers
``PING`` (or raises ``Error`` with the tail of its log); ``stop()`` always reaps it; a
restarted server keeps its port and its directory. The server is Debian's binary run as a
child with a config on the command line: no system service, no config file, nothing saved
(``--save ''``) unless ``appendonly`` is asked for, in which case a restart keeps the data.
redis-server rewrites its process title; the title keeps the path of an (empty) config file
in ``directory``, so ``stack.local.leftover_processes`` finds a server a killed run left.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from muster.errors import Error
from muster.stack.ports import free_port
from muster.stack.process import ManagedProcess, log_tail

__all__ = ["REDIS_BINARY", "RedisProcess", "redis_available"]

REDIS_BINARY = "/usr/bin/redis-server"

_RUNNING: set[RedisProcess] = set()


@atexit.register
def _stop_all_at_exit() -> None:
    for proc in list(_RUNNING):
        proc.stop(timeout=2.0)


def redis_available(binary: str = REDIS_BINARY) -> bool:
    """True when the redis-server binary exists and is executable."""
    return os.access(binary, os.X_OK) or shutil.which("redis-server") is not None


class RedisProcess(ManagedProcess):
    """One ``redis-server`` on 127.0.0.1, in ``directory``; a context manager."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        password: str = "",
        appendonly: bool = False,
        notify_keyspace_events: str = "",
        extra_args: Sequence[str] = (),
        binary: str = REDIS_BINARY,
    ) -> None:
        self.directory = Path(directory)
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.password = password
        self.appendonly = appendonly
        self.notify_keyspace_events = notify_keyspace_events
        self.extra_args = tuple(extra_args)
        self.binary = binary if os.access(binary, os.X_OK) else (shutil.which("redis-server") or binary)
        self.log_path = self.directory.parent / f"{self.directory.name}.log"
        self._proc = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisProcess {self.node} {state}>"

    @property
    def node(self) -> str:
        """The node as muster's ``-node`` takes it (``host:port``)."""
        return f"127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.directory.absolute() / "redis.conf"

    def command(self) -> list[str]:
        """The redis-server command line."""
        cmd = [
            self.binary,
            str(self.config_path),
            "--proc-title-template", "{title} {listen-addr} {config-file}",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", "",
            "--notify-keyspace-events", self.notify_keyspace_events,
        ]  # fmt: skip
        if self.password:
            cmd += ["--requirepass", self.password]
        return cmd + list(self.extra_args)

    def start(self, *, timeout: float = 10.0) -> None:
        """Launch the server and return once it answers ``PING``."""
        if self.running:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("# written by muster: every setting is on the command line\n")
        for attempt in range(3):
            self._spawn(self.command(), self.log_path)
            _RUNNING.add(self)
            try:
                self.wait_ready(timeout)
                return
            except Error:
                port_race = "Address already in use" in self.log_tail()
                self.stop()
                if not port_race or self._fixed_port or attempt == 2:
                    raise
                self.port = free_port()

    def ping(self, timeout: float = 0.5) -> bool:
        """One ``PING`` over a raw socket: True on ``+PONG`` (or ``-NOAUTH``: it is up)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise Error(f"redis-server exited with {self._proc.returncode}:\n{self.log_tail()}")
            if self.ping():
                return
            if time.monotonic() > deadline:
                raise Error(f"redis-server not answering after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.01)

    def _reaped(self, proc: subprocess.Popen[bytes]) -> None:
        super()._reaped(proc)
        _RUNNING.discard(self)

    def call(self, *args: str, timeout: float = 5.0) -> bytes:
        """Send one command (``call("SET", key, value)``) and return the raw reply's first line.

        Enough for the stack's own writes, with no client library: raises ``Error`` on an
        error reply or when the server cannot be reached.
        """
        request = f"*{len(args)}\r\n".encode()
        for arg in args:
            raw = arg.encode()
            request += b"$%d\r\n%s\r\n" % (len(raw), raw)
        if self.password:
            auth = self.password.encode()
            request = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(auth), auth) + request
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                sock.sendall(request)
                with sock.makefile("rb") as replies:
                    if self.password:
                        replies.readline()
                    reply = replies.readline().rstrip(b"\r\n")
        except OSError as exc:
            raise Error(f"redis-server at {self.node} unreachable: {exc}") from exc
        if reply.startswith(b"-"):
            raise Error(f"redis-server refused {args[0]}: {reply[1:].decode(errors='replace')}")
        return reply

    def restart(self) -> None:
        """Stop and start again on the same port and directory."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)
