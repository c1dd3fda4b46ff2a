"""Run a real, unprivileged HAProxy (master-worker) on loopback, for the tests and local stacks.

Layout under ``state_dir``::

    conf/00-muster.cfg     global, defaults and the frontend; written by this module at each start
    conf/services.cfg      what muster renders (``dest``): the ``svc_NAME`` backends
    run/haproxy.cfg        what HAProxy runs: both files, server slots pre-filled (``prefill``)
    admin.sock             runtime API (stats socket, level admin): the data plane's channel
    master.sock            the master CLI
    haproxy.log            HAProxy's stderr

The frontend routes ``/NAME/...`` to backend ``svc_NAME`` by name (``use_backend
svc_%[path,field(2,/)]``), so a new service needs only its backend rendered, and answers
404 for a service it does not know.

Contracts (as ``muster.stack.nginx``): ``start()`` returns once HAProxy answers on its
runtime API and its port, or raises ``Error`` with the tail of its log; ``reload()``
re-reads the configuration with the live slot state written into it, and returns only
when the new worker serves; ``stop()`` signals the master by pid and leaves no HAProxy
process behind. Synchronous: async callers use ``asyncio.to_thread``.

``python -m muster.stack.haproxy reload --state-dir DIR`` is the ``reload_cmd`` for
this layout (``reload_cmd()``); ``check_cmd()`` checks a staged ``services.cfg``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

from muster.dataplane.haproxy.runtime import RuntimeAPIError, parse_info, query
from muster.dataplane.haproxy.slots import parse_servers_state, prefill
from muster.errors import Error
from muster.log import kv
from muster.stack.ports import free_port
from muster.stack.process import ManagedProcess, log_tail

__all__ = ["HAPROXY_BINARY", "HAProxyProcess", "haproxy_available", "stock_dir", "write_resource_for"]

log = logging.getLogger(__name__)

HAPROXY_BINARY = "/usr/sbin/haproxy"


def haproxy_available(binary: str = HAPROXY_BINARY) -> bool:
    """True when the haproxy binary exists and is executable."""
    return os.access(binary, os.X_OK)


class HAProxyProcess(ManagedProcess):
    """One HAProxy master (``-W -db``) with its worker; a context manager."""

    # Workers still draining after the soft stop (or orphaned by a killed master) are in the
    # master's group: its id stays reserved while any member lives, so stopping kills the group.
    kills_group = True

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int | None = None,
        nbthread: int = 2,
        binary: str = HAPROXY_BINARY,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.port = port or free_port()
        self.nbthread = nbthread
        self.binary = binary
        self._proc = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<HAProxyProcess {self.url} state_dir={self.state_dir} {state}>"

    # -- paths --------------------------------------------------------------------------

    @property
    def main_path(self) -> Path:
        return self.state_dir / "conf" / "00-muster.cfg"

    @property
    def dest(self) -> Path:
        """Where muster's template resource writes the backends."""
        return self.state_dir / "conf" / "services.cfg"

    @property
    def run_config(self) -> Path:
        return self.state_dir / "run" / "haproxy.cfg"

    @property
    def admin_socket(self) -> Path:
        return self.state_dir / "admin.sock"

    @property
    def master_socket(self) -> Path:
        return self.state_dir / "master.sock"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "haproxy.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- configuration ------------------------------------------------------------------

    def main_config(self) -> str:
        """The text of ``conf/00-muster.cfg``."""
        return f"""\
# Written by muster.stack.haproxy at each start: edit the code, not this file.
global
    nbthread {self.nbthread}
    stats socket {self.admin_socket} mode 600 level admin expose-fd listeners
    stats timeout 30s
    # Old workers finish their requests for at most this long after a reload.
    hard-stop-after 10s

defaults
    mode http
    option forwardfor
    option redispatch
    retries 2
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s

frontend muster
    bind 127.0.0.1:{self.port}
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Real-IP %[src]
    acl service_path path_reg ^/[A-Za-z0-9._-]+/
    http-request return status 404 content-type text/plain string "muster: no such service" if !service_path
    use_backend svc_%[path,field(2,/)]
    default_backend muster_unknown

backend muster_unknown
    http-request return status 404 content-type text/plain string "muster: no such service"
"""

    def write_config(self) -> None:
        """Create the layout and write the main config (and an empty ``services.cfg`` if missing)."""
        for sub in ("conf", "run"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self.main_path.write_text(self.main_config())
        if not self.dest.exists():
            self.dest.write_text("# Rendered by muster: the svc_NAME backends.\n")

    def write_run_config(self, *, live: bool) -> None:
        """Join the config files into ``run/haproxy.cfg``, slots filled from the running worker."""
        filled = {}
        if live:
            try:
                text = query(self.admin_socket, "show servers state")
                filled = {(s.backend, s.name): s.peer for s in parse_servers_state(text) if s.peer}
            except RuntimeAPIError as exc:
                # The new worker starts with empty slots; the data plane refills them when
                # its verify loop sees the new worker.
                log.warning(kv("haproxy.prefill.failed", error=exc))
        joined = self.main_path.read_text() + "\n" + self.dest.read_text()
        tmp = self.run_config.with_suffix(".tmp")
        tmp.write_text(prefill(joined, filled))
        tmp.replace(self.run_config)

    def check_cmd(self) -> str:
        """A ``check_cmd`` for ``dest``: ``haproxy -c`` on the main config plus the staged file."""
        args = [self.binary, "-c", "-f", str(self.main_path), "-f"]
        return f"{' '.join(map(shlex.quote, args))} {{{{.src}}}}"

    def reload_cmd(self, *, timeout: float = 10.0) -> str:
        """A ``reload_cmd``: ``reload()`` of this layout from a helper process."""
        args = [sys.executable, "-m", "muster.stack.haproxy", "reload", "--state-dir", str(self.state_dir)]
        return " ".join(map(shlex.quote, [*args, "--timeout", f"{timeout:g}"]))

    # -- lifecycle ----------------------------------------------------------------------

    def command(self) -> list[str]:
        return [self.binary, "-W", "-db", "-S", f"{self.master_socket},mode,600", "-f", str(self.run_config)]

    def start(self, timeout: float = 10.0) -> None:
        """Write the config, start HAProxy, and return once it serves."""
        if self.running:
            return
        self.write_config()
        self.write_run_config(live=False)
        for sock in (self.admin_socket, self.master_socket):
            sock.unlink(missing_ok=True)
        self._spawn(self.command(), self.log_path)
        try:
            self._wait_serving(timeout)
        except BaseException:
            self.stop()
            raise

    def worker_pid(self) -> int:
        """The pid of the worker answering the runtime API now."""
        return int(parse_info(query(self.admin_socket, "show info"))["Pid"])

    def _wait_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise Error(f"haproxy exited with status {self._proc.returncode}: {self._log_tail()}")
            with contextlib.suppress(RuntimeAPIError, KeyError, ValueError, OSError):
                self.worker_pid()
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    pass
                # The master's CLI comes up a moment after the worker serves.
                _master_pid(self.master_socket)
                return
            if time.monotonic() > deadline:
                raise Error(f"haproxy did not serve within {timeout:g}s: {self._log_tail()}")
            time.sleep(0.01)

    def reload(self, timeout: float = 10.0) -> int:
        """Reload with the live slots written into the config; return the new worker's pid."""
        return reload_layout(self.state_dir, timeout=timeout, proc=self)

    def _request_stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGUSR1)  # soft stop: finish requests, then exit

    def _log_tail(self, lines: int = 15) -> str:
        return log_tail(self.log_path, lines, "(no log)")


def stock_dir() -> Path:
    """Where the shipped ``haproxy`` resource lives (``conf.d/``, ``templates/``, ``haproxy.cfg``)."""
    return Path(str(resources.files("muster") / "templates" / "haproxy"))


def write_resource_for(confdir: Path, haproxy: HAProxyProcess) -> Path:
    """The stock resource under ``confdir``, pointed at ``haproxy``; return the toml path."""
    (confdir / "conf.d").mkdir(parents=True, exist_ok=True)
    (confdir / "templates").mkdir(parents=True, exist_ok=True)
    name = "services.cfg.tmpl"
    (confdir / "templates" / name).write_text((stock_dir() / "templates" / name).read_text())
    fields = {
        "src": name,
        "dest": str(haproxy.dest),
        "check_cmd": haproxy.check_cmd(),
        "reload_cmd": haproxy.reload_cmd(),
    }
    # A JSON string is a valid TOML basic string (same escapes).
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in fields.items())
    toml = f"""\
# Written by muster.stack.haproxy: the stock resource, pointed at a local HAProxy.
[template]
{lines}keys = ["/services"]
mode = "0644"
check_timeout = "30s"
reload_timeout = "20s"
"""
    path = confdir / "conf.d" / "services.toml"
    path.write_text(toml)
    return path


def reload_layout(state_dir: Path, *, timeout: float = 10.0, proc: HAProxyProcess | None = None) -> int:
    """Reload the HAProxy running in ``state_dir``; return the new worker's pid.

    The master is found through its CLI (``show proc``). Raises ``Error`` if the new
    configuration does not load (the old worker keeps serving then).
    """
    haproxy = proc or HAProxyProcess(state_dir)
    master = proc.pid if proc is not None and proc.pid is not None else _master_pid(haproxy.master_socket)
    old = haproxy.worker_pid()
    haproxy.write_run_config(live=True)
    # Only what the log gets from now on tells about this reload.
    offset = haproxy.log_path.stat().st_size if haproxy.log_path.exists() else 0
    os.kill(master, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(RuntimeAPIError, KeyError, ValueError):
            pid = haproxy.worker_pid()
            if pid != old:
                return pid
        news = _read_from(haproxy.log_path, offset)
        if "Loading failure" in news:
            raise Error(f"haproxy reload failed: {news.strip()[-2000:]}")
        if time.monotonic() > deadline:
            raise Error(f"haproxy did not reload within {timeout:g}s: {news.strip()[-2000:]}")
        time.sleep(0.005)


def _master_pid(master_socket: Path) -> int:
    text = query(master_socket, "show proc;quit")  # the master CLI waits for more otherwise
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[1] == "master":
            return int(fields[0])
    raise RuntimeAPIError(f"haproxy master CLI {master_socket}: no master in 'show proc'")


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    """``reload --state-dir DIR [--timeout S]``: the ``reload_cmd`` of this layout."""
    parser = argparse.ArgumentParser(prog="python -m muster.stack.haproxy")
    parser.add_argument("action", choices=["reload"])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    try:
        reload_layout(args.state_dir, timeout=args.timeout)
    except (Error, OSError) as exc:
        print(f"muster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
