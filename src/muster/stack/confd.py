"""Run the muster daemon (``muster confd -watch``) as a child process, for ``muster up`` and the tests.

A separate process rather than a task in the caller: it is exactly what users run, its
signal handling and logs are its own, and stopping it is a signal, as for nginx and etcd.
Synchronous like the other drivers in this package.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from muster.errors import Error
from muster.stack.process import ManagedProcess, log_tail

__all__ = ["DaemonProcess"]


class DaemonProcess(ManagedProcess):
    """``muster confd -watch`` over ``confdir`` against ``nodes``; a context manager.

    ``backend`` is confd's ``-backend``: ``etcdv3`` or ``etcd`` (the v2 API). Its log
    goes to ``log_path``; with ``status_port`` it serves its status on that loopback port.
    """

    def __init__(
        self,
        confdir: Path,
        nodes: Sequence[str],
        *,
        backend: str = "etcdv3",
        log_path: Path | None = None,
        log_level: str = "info",
        extra_args: Sequence[str] = (),
        status_port: int | None = None,
        python: str = sys.executable,
    ) -> None:
        self.confdir = Path(confdir).absolute()
        self.nodes = tuple(nodes)
        self.backend = backend
        self.log_path = log_path or self.confdir / "muster-confd.log"
        self.log_level = log_level
        self.extra_args = tuple(extra_args)
        self.status_port = status_port
        self.python = python
        self._proc = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<DaemonProcess {self.backend} {','.join(self.nodes)} confdir={self.confdir} {state}>"

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "muster", "confd", "-watch", "-backend", self.backend]
        for node in self.nodes:
            cmd += ["-node", node]
        cmd += [
            "-confdir", str(self.confdir),
            # Never pick up a system-wide /etc/confd/confd.toml: a missing file is skipped.
            "-config-file", str(self.confdir / "confd.toml"),
            "-log-level", self.log_level,
        ]  # fmt: skip
        if self.status_port is not None:
            cmd += ["-status-addr", f"127.0.0.1:{self.status_port}"]
        return cmd + list(self.extra_args)

    @property
    def status_url(self) -> str | None:
        """Where the daemon serves /healthz, /readyz, /metrics and /status (with ``status_port``)."""
        return None if self.status_port is None else f"http://127.0.0.1:{self.status_port}"

    def start(self) -> None:
        """Launch the daemon (it renders as soon as it has read the backend)."""
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._spawn(self.command(), self.log_path)

    def wait_file(self, path: Path, timeout: float = 15.0) -> None:
        """Wait until the daemon has written ``path``; raise ``Error`` with its log if not."""
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self._proc is not None and self._proc.poll() is not None:
                raise Error(f"muster confd exited with {self._proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise Error(f"muster confd did not write {path} within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.02)

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)
