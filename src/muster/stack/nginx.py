"""Run a real, unprivileged nginx with its own prefix on loopback, for ``muster up`` and the tests.

Layout under ``prefix`` (it mirrors ``/etc/nginx`` so the stock template resource works
unchanged in both places)::

    conf/nginx.conf           main config, written by this module at every start
    conf/nginx-check.conf     its twin for checks: muster/check/ in place of muster/rendered/
    conf/muster/server.conf   listen/server_name of muster's server block (written if missing)
    conf/muster/rendered/     what muster renders (``dest``: services.conf)
    conf/muster/check/        a link to the staged file while a check runs
    conf/conf.d/*.conf        anything else to include in ``http {}``
    logs/error.log            nginx's stderr
    temp/                     request/response buffering
    nginx.pid

Contracts (as ``muster.stack.etcd``): ``start()`` returns once nginx answers on its status
port, or raises ``Error`` with the tail of its log; ``reload()`` returns only when the new
workers serve; ``stop()`` signals the master by pid (``nginx -s stop`` would parse the
config on disk first, and fail if it is broken) and always leaves no nginx process
behind, orphaned workers included. Synchronous: async callers use ``asyncio.to_thread``.

Because this module writes nginx's whole configuration, it can also hand out the fastest
``check_cmd`` and ``reload_cmd`` for it (``check_cmd()``, ``reload_cmd()``): the check runs
``nginx -t`` on the twin config with the staged file linked in (no shadow to compute),
and the reload signals the master from the shell before Python starts to confirm it.
For an nginx whose config muster does not write, use ``muster nginx-check``/``nginx-reload``.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shlex
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import muster
from muster.errors import Error, ResourceError
from muster.nginxctl.control import (
    NGINX_BINARY,
    check_config,
    children,
    error_log_flag,
    reload as reload_nginx,
)
from muster.stack.ports import free_port
from muster.stack.process import ManagedProcess, log_tail

__all__ = ["NGINX_BINARY", "NginxProcess", "nginx_available", "python_helper"]

_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_available(binary: str = NGINX_BINARY) -> bool:
    """True when the nginx binary exists and is executable."""
    return os.access(binary, os.X_OK)


class NginxProcess(ManagedProcess):
    """One nginx master (``daemon off``) with its workers; a context manager.

    ``main_snippets`` go to the main context (``load_module`` lines), ``http_snippets``
    into ``http {}`` before ``include conf.d/*.conf``. The status server on
    ``127.0.0.1:status_port`` answers ``/.muster/ping`` (with the answering worker's pid)
    and ``/.muster/nginx-status`` (stub_status).
    """

    # SIGTERM is nginx's fast shutdown; workers orphaned by a master that died hard stay in
    # its group, holding the listening sockets, so stopping also kills the group.
    kills_group = True

    def __init__(
        self,
        prefix: Path,
        *,
        port: int | None = None,
        status_port: int | None = None,
        worker_processes: int | str = 1,
        worker_connections: int = 4096,
        main_snippets: Sequence[str] = (),
        http_snippets: Sequence[str] = (),
        access_log: bool = False,
        binary: str = NGINX_BINARY,
        worker_user: tuple[str, str] | None = None,
    ) -> None:
        self.prefix = Path(prefix).absolute()
        #: (user, group) nginx's workers run as when started by root; None: root's own.
        self.worker_user = worker_user
        self._fixed_ports = port is not None or status_port is not None
        self.port = port or free_port()
        self.status_port = status_port or free_port()
        self.worker_processes = worker_processes
        self.worker_connections = worker_connections
        self.main_snippets = tuple(main_snippets)
        self.http_snippets = tuple(http_snippets)
        self.access_log = access_log
        self.binary = binary
        self._proc = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<NginxProcess {self.url} prefix={self.prefix} {state}>"

    # -- paths --------------------------------------------------------------------------

    @property
    def conf_dir(self) -> Path:
        return self.prefix / "conf"

    @property
    def conf_path(self) -> Path:
        return self.conf_dir / "nginx.conf"

    @property
    def include_dir(self) -> Path:
        """Other files for ``http {}``: every ``*.conf`` here is included (the check too)."""
        return self.conf_dir / "conf.d"

    @property
    def check_conf_path(self) -> Path:
        """The main config's twin for checks: the staged file in place of the rendered ones."""
        return self.conf_dir / "nginx-check.conf"

    @property
    def rendered_dir(self) -> Path:
        return self.conf_dir / "muster" / "rendered"

    @property
    def dest(self) -> Path:
        """Where muster's template resource writes: included in ``http {}``."""
        return self.rendered_dir / "services.conf"

    @property
    def check_link(self) -> Path:
        return self.conf_dir / "muster" / "check" / "services.conf"

    @property
    def server_conf_path(self) -> Path:
        return self.conf_dir / "muster" / "server.conf"

    @property
    def pid_path(self) -> Path:
        return self.prefix / "nginx.pid"

    @property
    def log_path(self) -> Path:
        return self.prefix / "logs" / "error.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}"

    # -- process state ------------------------------------------------------------------

    def exit_reason(self) -> str | None:
        """How the master exited on its own (``killed``, ``signal SIGSEGV``, ``status 1``);
        None while it runs, and once ``stop()`` or ``kill()`` has reaped it."""
        proc = self._proc
        if proc is None or proc.poll() is None:
            return None
        code = proc.returncode
        if code == -signal.SIGKILL:
            return "killed"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"signal {signal.Signals(-code).name}"
            return f"signal {-code}"
        return f"status {code}"

    def worker_pids(self) -> list[int]:
        """The workers taking new connections now (not those draining after a reload)."""
        if not self.running or self.pid is None:
            return []
        return sorted(c.pid for c in children(self.pid) if c.active_worker)

    def command(self) -> list[str]:
        # stderr is logs/error.log; -e (nginx >= 1.19.5) also covers messages from before
        # the config is read, which older versions send to their compiled-in error log.
        cmd = [self.binary, "-p", f"{self.prefix}/", "-c", str(self.conf_path)]
        return cmd + (["-e", "stderr"] if error_log_flag(self.binary) else [])

    # -- configuration ------------------------------------------------------------------

    def main_config(self, *, rendered: str = "muster/rendered/*.conf") -> str:
        """The text of ``conf/nginx.conf`` (with ``rendered``: of its check twin)."""
        p = self.prefix
        temp = "".join(f"    {name}_temp_path {p}/temp/{name};\n" for name in _TEMP_PATHS)
        main = "".join(s if s.endswith("\n") else s + "\n" for s in self.main_snippets)
        http = "".join(_indent(s) for s in self.http_snippets)
        # Buffered: a write(2) per request would cost the proxy more than its Lua balancer.
        access = "access_log off;"
        if self.access_log:
            access = f"access_log {p}/logs/access.log combined buffer=64k flush=1s;"
        return f"""\
# Written by muster.stack.nginx at each start: edit the code, not this file.
{main}{_user_directive(self.worker_user)}daemon off;
master_process on;
worker_processes {self.worker_processes};
pid {self.pid_path};
error_log stderr notice;
# Old workers keep idle keep-alive clients for at most this long after a reload.
worker_shutdown_timeout 10s;
# The stock template's catch-all location and its rewrite are regexes, matched per request.
pcre_jit on;

events {{
    worker_connections {self.worker_connections};
}}

http {{
    default_type application/octet-stream;
    {access}
{temp}
    # muster's status server: readiness probes and counters, loopback only.
    server {{
        listen 127.0.0.1:{self.status_port};
        access_log off;
        default_type text/plain;
        location = /.muster/ping {{ return 200 "pong $pid\\n"; }}
        location = /.muster/nginx-status {{ stub_status; }}
        location / {{ return 404; }}
    }}
{http}
    include conf.d/*.conf;
    include {rendered};
}}
"""

    def server_config(self) -> str:
        """The default ``conf/muster/server.conf``: what the stock template's server block includes."""
        return f"""\
# Included inside the server block of muster's stock template (templates/services.conf.tmpl):
# put listen, server_name and TLS settings here. Written once by muster.stack.nginx.
listen 127.0.0.1:{self.port};
server_name _;
location = / {{
    default_type text/plain;
    return 200 "muster: services are under /SERVICE/\\n";
}}
location / {{
    default_type text/plain;
    return 404 "muster: no such service\\n";
}}
"""

    def write_config(self) -> None:
        """Create the prefix layout and write the main config (and server.conf if missing)."""
        dirs = ("conf/conf.d", "conf/muster/rendered", "conf/muster/check", "logs")
        for sub in (*dirs, *(f"temp/{n}" for n in _TEMP_PATHS)):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.main_config())
        self.check_conf_path.write_text(self.main_config(rendered="muster/check/*.conf"))
        if not self.server_conf_path.exists():
            self.server_conf_path.write_text(self.server_config())

    def check_cmd(self) -> str:
        """A ``check_cmd`` for ``dest``: ``nginx -t`` on the twin config with ``{{.src}}`` linked in."""
        conf = str(self.check_conf_path)
        nginx = [self.binary, "-t", "-q", "-p", f"{self.prefix}/", "-c", conf]
        if error_log_flag(self.binary):
            nginx[3:3] = ["-e", "stderr"]
        link = shlex.quote(str(self.check_link))
        return f"ln -sfn {{{{.src}}}} {link} && exec {' '.join(map(shlex.quote, nginx))}"

    def reload_cmd(self, *, timeout: float = 10.0) -> str:
        """A ``reload_cmd``: SIGHUP from the shell at once, then wait for the new workers.

        Signalling before Python starts takes its start-up off the time to route. The
        master's children just before the signal come from ``/proc/PID/task/PID/children``;
        a kernel without that file gets the plain ``reload`` (Python signals, then waits).
        """
        pid = shlex.quote(str(self.pid_path))
        helper = python_helper()
        wait = f"--timeout {timeout:g}"
        confirm = f'{helper} confirm --pid-file {pid} --before "$before" {wait}'
        return (
            f'm=$(cat {pid}) && kids=/proc/$m/task/$m/children && if [ -r "$kids" ]; then '
            f'before=$(cat "$kids") && kill -HUP "$m" && {confirm}; '
            f"else {helper} reload --pid-file {pid} {wait}; fi"
        )

    def check(self) -> str:
        """``nginx -t`` on the configuration as it is on disk; ``CommandFailed`` if invalid."""
        return check_config(self.conf_path, binary=self.binary, prefix=self.prefix)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, *, timeout: float = 15.0) -> None:
        """Write the config, launch nginx and return once its status server answers."""
        if self.running:
            return
        for attempt in range(3):
            self.write_config()
            self._launch()
            try:
                self.wait_ready(timeout=timeout)
                return
            except Error:
                port_race = "Address already in use" in self.log_tail()
                self.stop()
                if not port_race or self._fixed_ports or attempt == 2:
                    raise
                self.port, self.status_port = free_port(), free_port()
                with contextlib.suppress(OSError):
                    self.server_conf_path.unlink()  # it names the old port

    def _launch(self) -> None:
        with contextlib.suppress(OSError):
            self.pid_path.unlink()  # a stale pid file must not pass for this master's
        self._spawn(self.command(), self.log_path)

    def ping(self, timeout: float = 1.0) -> int | None:
        """GET ``/.muster/ping``: the pid of the worker that answered, or None."""
        try:
            with urllib.request.urlopen(f"{self.status_url}/.muster/ping", timeout=timeout) as resp:
                body = resp.read().decode()
        except (OSError, ValueError):
            return None
        parts = body.split()
        return int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else None

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Poll the status server until it answers; raise ``Error`` with the log tail if not."""
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise Error(f"nginx exited with {self._proc.returncode}:\n{self.log_tail()}")
            if self.pid_path.exists() and self.ping(timeout=0.5) is not None and self._all_workers_up():
                return
            if time.monotonic() > deadline:
                raise Error(f"nginx not answering after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.01)

    def _all_workers_up(self) -> bool:
        want = self.worker_processes if isinstance(self.worker_processes, int) else 1
        return len(self.worker_pids()) >= want

    def wait_serving(self, timeout: float = 15.0) -> None:
        """Wait until the main port answers HTTP (after muster's first render included it)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/", timeout=0.5):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer means the server block is live
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise Error(f"nginx not serving {self.url} after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.02)

    def reload(self, *, rewrite: bool = False, timeout: float = 10.0) -> list[int]:
        """Reload (optionally rewriting the main config first); return the new workers' pids.

        Raises ``ResourceError`` if nginx kept its old configuration.
        """
        if not self.running:
            raise ResourceError("nginx is not running")
        if rewrite:
            self.write_config()
        return reload_nginx(self.pid_path, timeout=timeout)

    def restart(self, *, timeout: float = 15.0) -> None:
        """Stop and start again on the same ports (a fresh master: shared memory is lost)."""
        self.stop()
        self.start(timeout=timeout)

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)


def python_helper() -> str:
    """How to run ``python -m muster.nginxctl`` as fast as Python starts.

    ``-S`` skips site-packages processing (``.pth`` hooks can cost 100 ms), so the
    package's parent directory goes on ``PYTHONPATH``; the helpers need only the
    stdlib. ``sys.executable`` works in a virtualenv that is not on ``PATH``.
    """
    parent = Path(muster.__file__).parent.parent
    return f"PYTHONPATH={shlex.quote(str(parent))} {shlex.quote(sys.executable)} -S -m muster.nginxctl"


def _indent(snippet: str) -> str:
    lines = snippet.rstrip("\n").splitlines()
    return "".join(f"    {line}\n" if line.strip() else "\n" for line in lines)


def _user_directive(worker_user: tuple[str, str] | None) -> str:
    """Workers run as ``worker_user``, else as whoever runs muster: nginx's default (nobody)
    cannot enter a private state directory. Only root may name a user; for anyone else
    nginx ignores it."""
    if os.geteuid() != 0:
        return ""
    if worker_user is not None:
        return f"user {worker_user[0]} {worker_user[1]};\n"
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f"user {user} {group};\n"
