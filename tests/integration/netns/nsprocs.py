"""The bed's process drivers: muster.stack's own, run under ``ip netns exec`` on a host's address.

Each subclass changes only where its process runs and what address it binds (a process in
a namespace cannot see the root's loopback); starting, readiness and stopping are the
drivers' own, so the bed exercises what ``muster up`` and the other tests run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nsnet import Host, in_ns

from muster.dataplane.nginx.conf import LuaSettings, http_block, main_block
from muster.stack.confd import DaemonProcess
from muster.stack.etcd import EtcdProcess
from muster.stack.nginx import NginxProcess
from muster.stack.process import ManagedProcess, log_tail

__all__ = ["PROXY_PORT", "NsCommand", "NsDaemon", "NsEtcd", "NsNginx"]

PROXY_PORT = 8080


class NsEtcd(EtcdProcess):
    """An etcd member listening on its namespace's bridge address (ports 2379 and 2380)."""

    def __init__(self, host: Host, data_dir: Path, **options: Any) -> None:
        super().__init__(data_dir, name=host.name, client_port=2379, peer_port=2380, **options)
        self.host = host

    @property
    def client_url(self) -> str:
        return f"http://{self.host.ip}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host.ip}:{self.peer_port}"

    def command(self) -> list[str]:
        return in_ns(self.host, super().command())


class NsNginx(NginxProcess):
    """nginx with the Lua data plane, its server and status server on the namespace's address."""

    def __init__(self, host: Host, prefix: Path, admin_socket: Path) -> None:
        super().__init__(
            prefix,
            port=PROXY_PORT,
            status_port=PROXY_PORT + 1,
            worker_processes=1,
            main_snippets=[main_block()],
            http_snippets=[http_block(LuaSettings(admin_socket=admin_socket))],
        )
        self.host = host
        self.admin_socket = admin_socket

    @property
    def url(self) -> str:
        return f"http://{self.host.ip}:{self.port}"

    @property
    def status_url(self) -> str:
        return f"http://{self.host.ip}:{self.status_port}"

    def main_config(self, *, rendered: str = "muster/rendered/*.conf") -> str:
        return super().main_config(rendered=rendered).replace("listen 127.0.0.1:", f"listen {self.host.ip}:")

    def server_config(self) -> str:
        return super().server_config().replace("listen 127.0.0.1:", f"listen {self.host.ip}:")

    def command(self) -> list[str]:
        return in_ns(self.host, super().command())

    def reloads(self) -> int:
        """How many reloads (SIGHUP) this nginx has logged."""
        try:
            return self.log_path.read_text(errors="replace").count("reconfiguring")
        except OSError:
            return 0


class NsDaemon(DaemonProcess):
    """``muster confd -watch`` with the Lua data plane, its status server on the namespace's address."""

    def __init__(
        self, host: Host, confdir: Path, nodes: Sequence[str], admin_socket: Path, extra: Sequence[str] = ()
    ) -> None:
        args = ["-dataplane", "lua", "-dataplane-admin", f"unix:{admin_socket}", *extra]
        # Off loopback the status server wants a token (the bed only asks /healthz, which does not).
        token = confdir / "status-token"
        token.parent.mkdir(parents=True, exist_ok=True)
        token.write_text("netbed\n")
        status = ["-status-addr", f"{host.ip}:9101", "-status-token-file", str(token)]
        super().__init__(confdir, nodes, extra_args=[*args, *status])
        self.host = host

    def command(self) -> list[str]:
        return in_ns(self.host, super().command())


class NsCommand(ManagedProcess):
    """Any command run in a host's namespace, stdout and stderr to ``log_path``."""

    def __init__(self, host: Host, argv: Sequence[str], log_path: Path) -> None:
        self.host = host
        self.argv = list(argv)
        self.log_path = log_path
        self._proc = None

    def __repr__(self) -> str:
        return f"<NsCommand {self.host.name} {self.argv[1:4]} {'running' if self.running else 'stopped'}>"

    def start(self) -> None:
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._spawn(in_ns(self.host, self.argv), self.log_path)

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)
