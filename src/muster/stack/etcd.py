"""Run real etcd members on loopback: one process, a static cluster, TLS material and auth setup.

Used by ``muster up`` and by the integration test fixtures alike, so both exercise the same
code. Everything here is synchronous (``subprocess`` and ``urllib``) because it drives
processes, not traffic; async callers wrap the slow calls in ``asyncio.to_thread``.

Contracts:

* ``EtcdProcess.start()`` returns only once ``/health`` answers ``true`` (or raises ``Error``
  with the tail of etcd's log); ``stop()`` always reaps the process, escalating SIGTERM to
  SIGKILL; a restarted member keeps its ports and data directory.
* Ports are probed on 127.0.0.1 (bind to port 0, then release); a start that loses the race
  for a port is retried with fresh ports unless the caller fixed them.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from muster.backends.keys import prefix_end
from muster.errors import Error
from muster.stack.ports import free_port  # re-exported: the tests and benches take it from here
from muster.stack.process import ManagedProcess, log_tail

__all__ = [
    "CertBundle",
    "ETCD_BINARY",
    "EtcdCluster",
    "EtcdProcess",
    "enable_auth",
    "etcd_available",
    "free_port",
    "make_certs",
]

ETCD_BINARY = "/usr/bin/etcd"

# Members this interpreter started and has not stopped: stopped at exit, so a crashed
# `muster up` or an interrupted test run leaves no etcd behind (SIGKILL of the parent still does).
_RUNNING: set[EtcdProcess] = set()


@atexit.register
def _stop_all_at_exit() -> None:
    for proc in list(_RUNNING):
        proc.stop(timeout=2.0)


def etcd_available(binary: str = ETCD_BINARY) -> bool:
    """True when the etcd binary exists and is executable."""
    return os.access(binary, os.X_OK)


@dataclass(frozen=True, slots=True)
class CertBundle:
    """A throwaway CA with one server and one client certificate, as PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    #: Common name of the client certificate; etcd maps it to a user when auth is on.
    client_cn: str


def make_certs(directory: Path, *, client_cn: str = "root", days: int = 2) -> CertBundle:
    """Generate a CA, a server cert for 127.0.0.1/localhost and a client cert, with openssl.

    Keys are EC P-256 so generation takes milliseconds. Raises ``Error`` if openssl is missing
    or fails.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise Error("make_certs needs the openssl command line tool, which is not on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    d = directory

    def run(*args: str) -> None:
        proc = subprocess.run([openssl, *args], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise Error(f"openssl {args[0]} failed: {proc.stderr.strip()}")

    def key(name: str) -> Path:
        path = d / f"{name}.key"
        run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path))
        path.chmod(0o600)
        return path

    ca_key = key("ca")
    run(
        "req",
        "-x509",
        "-new",
        "-key",
        str(ca_key),
        "-subj",
        "/CN=muster test CA",
        "-days",
        str(days),
        "-out",
        str(d / "ca.pem"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )

    def leaf(name: str, cn: str, ext: str) -> tuple[Path, Path]:
        leaf_key = key(name)
        csr = d / f"{name}.csr"
        run("req", "-new", "-key", str(leaf_key), "-subj", f"/CN={cn}", "-out", str(csr))
        ext_file = d / f"{name}.ext"
        ext_file.write_text(ext)
        run(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(d / "ca.pem"),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            str(days),
            "-extfile",
            str(ext_file),
            "-out",
            str(d / f"{name}.pem"),
        )
        return d / f"{name}.pem", leaf_key

    server_cert, server_key = leaf(
        "server",
        "localhost",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    client_cert, client_key = leaf("client", client_cn, "extendedKeyUsage=clientAuth\n")
    return CertBundle(d / "ca.pem", server_cert, server_key, client_cert, client_key, client_cn)


class EtcdProcess(ManagedProcess):
    """One etcd member listening on loopback; a context manager that starts and stops it.

    ``tls`` serves the client port over HTTPS with the bundle's server cert; with
    ``client_cert_auth`` clients must present a certificate signed by the bundle's CA.
    Peers always talk plain HTTP on loopback.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        name: str = "default",
        client_port: int | None = None,
        peer_port: int | None = None,
        enable_v2: bool = True,
        tls: CertBundle | None = None,
        client_cert_auth: bool = False,
        initial_cluster: str | None = None,
        cluster_token: str = "muster",
        progress_notify_interval: str | None = None,
        extra_args: Sequence[str] = (),
        binary: str = ETCD_BINARY,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.name = name
        self._fixed_ports = client_port is not None or peer_port is not None
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.enable_v2 = enable_v2
        self.tls = tls
        self.client_cert_auth = client_cert_auth
        self.initial_cluster = initial_cluster
        self.cluster_token = cluster_token
        self.progress_notify_interval = progress_notify_interval
        self.extra_args = tuple(extra_args)
        self.binary = binary
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._proc = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EtcdProcess {self.name} {self.client_url} {state}>"

    @property
    def client_url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def command(self) -> list[str]:
        """The etcd command line this member runs with."""
        cluster = self.initial_cluster or f"{self.name}={self.peer_url}"
        cmd = [
            self.binary,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", cluster,
            "--initial-cluster-token", self.cluster_token,
            "--initial-cluster-state", "new",
            "--logger", "zap",
            "--log-outputs", "stderr",
        ]  # fmt: skip
        if self.enable_v2:
            cmd.append("--enable-v2")
        if self.tls is not None:
            cmd += ["--cert-file", str(self.tls.server_cert), "--key-file", str(self.tls.server_key)]
            if self.client_cert_auth:
                cmd += ["--client-cert-auth", "--trusted-ca-file", str(self.tls.ca)]
        if self.progress_notify_interval is not None:
            cmd += ["--experimental-watch-progress-notify-interval", self.progress_notify_interval]
        cmd += self.extra_args
        return cmd

    def start(self, *, wait: bool = True, timeout: float = 15.0) -> None:
        """Launch etcd; with ``wait``, return once ``/health`` answers true."""
        if self.running:
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self._launch()
            if not wait:
                return
            try:
                self.wait_healthy(timeout=timeout)
                return
            except Error:
                port_race = "address already in use" in self.log_tail()
                self.stop()
                if not port_race or self._fixed_ports or attempt == 2:
                    raise
                self.client_port, self.peer_port = free_port(), free_port()

    def _launch(self) -> None:
        self._spawn(self.command(), self.log_path)
        _RUNNING.add(self)

    def health(self, timeout: float = 1.0) -> bool:
        """One ``GET /health``: True when the member has a leader and answers."""
        try:
            with urllib.request.urlopen(
                f"{self.client_url}/health", timeout=timeout, context=self.ssl_context()
            ) as resp:
                body = json.loads(resp.read())
        except (OSError, ValueError):
            return False
        return bool(body.get("health") in ("true", True))

    def wait_healthy(self, timeout: float = 15.0) -> None:
        """Poll ``/health`` until true; raise ``Error`` with the log tail on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise Error(f"etcd {self.name} exited with {self._proc.returncode}:\n{self.log_tail()}")
            if self.health(timeout=0.5):
                return
            if time.monotonic() > deadline:
                raise Error(f"etcd {self.name} not healthy after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.02)

    def _request_stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGCONT)  # a paused member cannot handle SIGTERM
        proc.terminate()

    def _reaped(self, proc: subprocess.Popen[bytes]) -> None:
        super()._reaped(proc)
        _RUNNING.discard(self)

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing answers (a silently dead peer)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause()``."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def restart(self, *, wait: bool = True) -> None:
        """Stop and start again on the same ports with the same data."""
        self.stop()
        self.start(wait=wait)

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context trusting the bundle's CA (with the client cert when one is required)."""
        if self.tls is None:
            return None
        ctx = ssl.create_default_context(cafile=str(self.tls.ca))
        ctx.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return ctx


class EtcdCluster:
    """``n`` members on loopback with a static ``--initial-cluster``; a context manager."""

    def __init__(self, base_dir: Path, n: int = 3, **member_options: Any) -> None:
        if n < 1:
            raise ValueError("an etcd cluster needs at least one member")
        names = [f"m{i}" for i in range(n)]
        peers = {name: free_port() for name in names}
        cluster = ",".join(f"{name}=http://127.0.0.1:{port}" for name, port in peers.items())
        token = f"muster-{os.getpid()}-{peers[names[0]]}"
        self.members = [
            EtcdProcess(
                Path(base_dir) / name,
                name=name,
                peer_port=peers[name],
                client_port=free_port(),
                initial_cluster=cluster,
                cluster_token=token,
                **member_options,
            )  # fmt: skip
            for name in names
        ]

    def __repr__(self) -> str:
        return f"<EtcdCluster {self.members!r}>"

    def __iter__(self) -> Iterator[EtcdProcess]:
        return iter(self.members)

    def __getitem__(self, index: int) -> EtcdProcess:
        return self.members[index]

    @property
    def client_urls(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self, timeout: float = 20.0) -> None:
        """Start every member, then wait until all report healthy (members need a quorum)."""
        try:
            for member in self.members:
                member.start(wait=False)
            for member in self.members:
                member.wait_healthy(timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every member; each is reaped even if another fails to stop."""
        for member in self.members:
            member.stop()

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def _v3_call(
    url: str, path: str, body: dict[str, Any], *, token: str | None = None,
    context: ssl.SSLContext | None = None, timeout: float = 5.0,
) -> dict[str, Any]:  # fmt: skip
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = token
    req = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            result: dict[str, Any] = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise Error(f"etcd {path} failed: {exc.read().decode(errors='replace')}") from exc
    except OSError as exc:
        raise Error(f"etcd {path} failed: {exc}") from exc
    return result


def enable_auth(
    client_url: str,
    *,
    root_password: str,
    users: dict[str, str] | None = None,
    prefix: str = "",
    context: ssl.SSLContext | None = None,
) -> None:
    """Turn on etcd v3 auth: a ``root`` user, plus each ``users`` name with a read-write role.

    Every extra user gets a role of the same name granting read-write on keys starting with
    ``prefix`` ("" means every key). Uses the v3 JSON gateway, so no etcdctl is needed.
    """
    call = _v3_call
    call(client_url, "/v3/auth/user/add", {"name": "root", "password": root_password}, context=context)
    call(client_url, "/v3/auth/role/add", {"name": "root"}, context=context)
    call(client_url, "/v3/auth/user/grant", {"user": "root", "role": "root"}, context=context)
    if prefix:
        key, range_end = _b64(prefix), _b64(prefix_end(prefix.encode()))
    else:
        key = range_end = _b64("\0")  # etcd's "from the first key to the end"
    for name, password in (users or {}).items():
        call(client_url, "/v3/auth/user/add", {"name": name, "password": password}, context=context)
        call(client_url, "/v3/auth/role/add", {"name": name}, context=context)
        perm = {"permType": "READWRITE", "key": key, "range_end": range_end}
        call(client_url, "/v3/auth/role/grant", {"name": name, "perm": perm}, context=context)
        call(client_url, "/v3/auth/user/grant", {"user": name, "role": name}, context=context)
    call(client_url, "/v3/auth/enable", {}, context=context)
