"""A standalone ZooKeeper server of our own on loopback, from Debian's ``zookeeper`` package.

Never the system service: the JVM runs ``QuorumPeerMain`` with a ``zoo.cfg`` written in its
own directory (a free ``clientPort`` on 127.0.0.1, the admin server off, ``ruok`` allowed),
and is ready once it answers ``ruok`` with ``imok`` and ``srvr`` with its mode.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from muster.errors import Error
from muster.stack.ports import free_port
from muster.stack.process import ManagedProcess, log_tail

__all__ = ["ZOOKEEPER_JAR", "ZooKeeperProcess", "zookeeper_available"]

ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"  # its manifest's Class-Path names the rest
JAVA = "/usr/bin/java"
MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
# The jar's manifest leaves SLF4J unbound (the server would log nothing); these bind it to log4j.
LOG_JARS = ("/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar")

_RUNNING: set[ZooKeeperProcess] = set()


@atexit.register
def _stop_all_at_exit() -> None:
    for proc in list(_RUNNING):
        proc.stop(timeout=2.0)


def zookeeper_available(jar: str = ZOOKEEPER_JAR) -> bool:
    """True when Debian's ZooKeeper jar and a java binary are installed."""
    return os.path.exists(jar) and (os.access(JAVA, os.X_OK) or shutil.which("java") is not None)


_LOG4J = """\
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1} - %m%n
"""


class ZooKeeperProcess(ManagedProcess):
    """One standalone ZooKeeper on ``127.0.0.1:client_port``, data under ``base_dir``.

    ``restart()`` keeps the data and the port, so sessions younger than their timeout
    survive it, as they would a real server's restart.
    """

    def __init__(self, base_dir: Path, *, client_port: int | None = None, tick_ms: int = 500,
                 max_session_timeout_ms: int = 60_000, jar: str = ZOOKEEPER_JAR) -> None:  # fmt: skip
        self.base_dir = Path(base_dir)
        self._fixed_port = client_port is not None
        self.client_port = client_port or free_port()
        self.tick_ms = tick_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self.jar = jar
        self.log_path = self.base_dir / "zookeeper.log"
        self._proc = None

    def __repr__(self) -> str:
        return f"<ZooKeeperProcess {self.node} {'running' if self.running else 'stopped'}>"

    @property
    def node(self) -> str:
        """``127.0.0.1:PORT``, as ``-node`` takes it."""
        return f"127.0.0.1:{self.client_port}"

    def write_config(self) -> Path:
        conf = self.base_dir / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "data").mkdir(exist_ok=True)
        (conf / "log4j.properties").write_text(_LOG4J)
        cfg = conf / "zoo.cfg"
        cfg.write_text(
            f"tickTime={self.tick_ms}\n"
            f"dataDir={self.base_dir / 'data'}\n"
            f"clientPort={self.client_port}\n"
            "clientPortAddress=127.0.0.1\n"
            f"maxSessionTimeout={self.max_session_timeout_ms}\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=ruok,stat,srvr\n"
            "maxClientCnxns=0\n"
        )
        return cfg

    def command(self) -> list[str]:
        cfg = self.write_config()
        java = JAVA if os.access(JAVA, os.X_OK) else (shutil.which("java") or "java")
        return [
            java, "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
            "-Dzookeeper.jmx.log4j.disable=true",
            f"-Dlog4j.configuration=file:{cfg.parent / 'log4j.properties'}",
            "-cp", ":".join([str(cfg.parent), self.jar, *(j for j in LOG_JARS if os.path.exists(j))]),
            MAIN, str(cfg),
        ]  # fmt: skip

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> None:
        """Launch the JVM; with ``wait``, return once it answers ``ruok``."""
        if self.running:
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self._spawn(self.command(), self.log_path)
            _RUNNING.add(self)
            if not wait:
                return
            try:
                self.wait_ready(timeout)
                return
            except Error:
                port_race = "Address already in use" in self.log_tail(50)
                self.stop()
                if not port_race or self._fixed_port or attempt == 2:
                    raise
                self.client_port = free_port()

    def four_letter(self, word: str, timeout: float = 0.5) -> str:
        """The reply to a four-letter word (``ruok``, ``srvr``); "" if none."""
        chunks = []
        try:
            with socket.create_connection(("127.0.0.1", self.client_port), timeout=timeout) as sock:
                sock.sendall(word.encode())
                sock.settimeout(timeout)
                while chunk := sock.recv(4096):
                    chunks.append(chunk)
        except OSError:
            pass
        return b"".join(chunks).decode(errors="replace")

    def ruok(self, timeout: float = 0.5) -> bool:
        """``ruok`` answers ``imok`` and ``srvr`` a mode: the server serves sessions.

        ``imok`` alone comes as soon as the port listens, while the database may still be
        loading: a client connecting then can wait out its whole connect timeout.
        """
        return self.four_letter("ruok", timeout) == "imok" and "Mode: " in self.four_letter("srvr", timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll ``ruok``; ``Error`` with the log tail on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise Error(f"zookeeper exited with {self._proc.returncode}:\n{self.log_tail()}")
            if self.ruok():
                return
            if time.monotonic() > deadline:
                raise Error(f"zookeeper not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def put(self, key: str, value: str | None) -> None:
        """Write ``key`` as a persistent znode (parents made on the way), or delete it (None)."""
        from kazoo.client import KazooClient  # the zookeeper extra
        from kazoo.exceptions import NoNodeError  # the zookeeper extra

        client = KazooClient(hosts=self.node)
        client.start(timeout=10)
        try:
            if value is None:
                with contextlib.suppress(NoNodeError):
                    client.delete(key)
            else:
                client.ensure_path(key)
                client.set(key, value.encode())
        finally:
            client.stop()
            client.close()

    def _reaped(self, proc: subprocess.Popen[bytes]) -> None:
        super()._reaped(proc)
        _RUNNING.discard(self)

    def restart(self, *, wait: bool = True) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start(wait=wait)

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)
