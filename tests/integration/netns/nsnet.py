"""Network namespace plumbing for the test bed: commands, skip reasons, leftovers, the subnet.

Every name a bed creates starts with its id, ``mfb`` and five hex digits (namespaces
``ID-HOST``, the bridge ``IDbr``, root-side veths ``IDe0``...), and the bed holds an flock
on ``/run/muster-netbed/ID.lock`` while it lives. ``cleanup_leftovers()`` removes what a
killed run left (namespaces, links, the processes inside) for every id whose lock nobody
holds, so it never touches a bed that is running. ``python netbed.py`` runs it by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from muster.dataplane.nginx.conf import lua_available
from muster.errors import Error
from muster.stack.etcd import etcd_available
from muster.stack.nginx import nginx_available

__all__ = [
    "LOCK_DIR",
    "PREFIX",
    "BedError",
    "Host",
    "bed_problem",
    "choose_subnet",
    "cleanup_leftovers",
    "in_ns",
    "kill_namespace",
    "link_names",
    "lock_path",
    "netem_available",
    "run",
]

PREFIX = "mfb"
LOCK_DIR = Path("/run/muster-netbed")
_ID_RE = re.compile(rf"^({PREFIX}[0-9a-f]{{5}})")


class BedError(Error):
    """The bed could not be built, or did not come back to health."""


def run(*args: str, ns: str | None = None, check: bool = True) -> str:
    """Run a command (in namespace ``ns``); its stdout, or ``BedError`` with stderr on failure."""
    argv = ["ip", "netns", "exec", ns, *args] if ns else list(args)
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if check and proc.returncode != 0:
        raise BedError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def bed_problem() -> str | None:
    """Why the bed cannot run here (a skip reason), or None."""
    if os.geteuid() != 0:
        return "the namespace test bed needs root (ip netns, veth, bridge)"
    if not etcd_available():
        return "etcd is not installed at /usr/bin/etcd (Debian package etcd-server)"
    if not nginx_available() or not lua_available():
        return "nginx with libnginx-mod-http-lua is not installed"
    probe = f"{PREFIX}probe{os.getpid():x}"
    try:
        run("ip", "netns", "add", probe)
    except (BedError, OSError) as exc:
        return f"ip netns add fails here: {exc}"
    try:
        run("ip", "link", "add", f"{probe[:12]}b", "type", "bridge")
        run("ip", "link", "del", f"{probe[:12]}b")
    except BedError as exc:
        return f"cannot create a bridge here: {exc}"
    finally:
        run("ip", "netns", "del", probe, check=False)
    return None


def netem_available() -> bool:
    """Whether the kernel has sch_netem (tried on a throwaway namespace's loopback)."""
    probe = f"{PREFIX}netem{os.getpid():x}"
    try:
        run("ip", "netns", "add", probe)
    except BedError:
        return False
    try:
        run("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", ns=probe)
    except BedError:
        return False
    else:
        return True
    finally:
        run("ip", "netns", "del", probe, check=False)


# -- leftovers and address choice ----------------------------------------------------------------


def lock_path(bed_id: str) -> Path:
    return LOCK_DIR / f"{bed_id}.lock"


def _held(bed_id: str) -> bool:
    """Whether a live process holds the bed's lock (a running bed)."""
    try:
        fd = os.open(lock_path(bed_id), os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _netns_names() -> list[str]:
    return [line.split()[0] for line in run("ip", "netns", "list", check=False).splitlines() if line.strip()]


def link_names() -> list[str]:
    names = []
    for line in run("ip", "-o", "link", "show", check=False).splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            names.append(parts[1].strip().split("@")[0])
    return names


def kill_namespace(ns: str) -> None:
    """SIGKILL every process in ``ns`` and delete it (a namespace lives on while a process does)."""
    for _ in range(50):
        pids = [int(p) for p in run("ip", "netns", "pids", ns, check=False).split() if p.isdigit()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    run("ip", "netns", "del", ns, check=False)


def cleanup_leftovers() -> list[str]:
    """Remove namespaces and links of beds whose owner is gone; return what was removed."""
    removed = []
    for ns in _netns_names():
        m = _ID_RE.match(ns)
        if m and not _held(m.group(1)):
            kill_namespace(ns)
            removed.append(f"netns {ns}")
    for link in link_names():
        m = _ID_RE.match(link)
        if m and not _held(m.group(1)):
            run("ip", "link", "del", link, check=False)
            removed.append(f"link {link}")
    if LOCK_DIR.is_dir():
        for lock in LOCK_DIR.glob(f"{PREFIX}*.lock"):
            if not _held(lock.stem):
                with contextlib.suppress(OSError):
                    lock.unlink()
    return removed


def _taken_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the root namespace has a route or an address in."""
    taken = []
    for line in run("ip", "-4", "-o", "route", "show", "table", "all", check=False).splitlines():
        words = line.split()
        if words and words[0] in ("local", "broadcast", "unreachable", "blackhole", "prohibit", "throw"):
            words = words[1:]
        if words and words[0] != "default":
            with contextlib.suppress(ValueError):
                taken.append(ipaddress.IPv4Network(words[0], strict=False))
    for line in run("ip", "-4", "-o", "addr", "show", check=False).splitlines():
        words = line.split()
        if "inet" in words:
            with contextlib.suppress(ValueError, IndexError):
                taken.append(ipaddress.IPv4Interface(words[words.index("inet") + 1]).network)
    return taken


def choose_subnet() -> ipaddress.IPv4Network:
    """The first ``10.251.N.0/24`` that overlaps no route or address of the machine."""
    taken = _taken_networks()
    for n in range(256):
        net = ipaddress.IPv4Network(f"10.251.{n}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return net
    raise BedError("every 10.251.N.0/24 overlaps a route or address of this machine")


@dataclass(frozen=True, slots=True)
class Host:
    """One namespace on the bridge: ``ns`` its name, ``veth`` the root-side end, ``ip`` its address."""

    name: str
    ns: str
    veth: str
    ip: str


def in_ns(host: Host, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", host.ns, *argv]
