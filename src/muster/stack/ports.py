"""Free loopback ports for the processes of the local stack and the tests."""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port"]

_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, never the same twice in a process.

    Picked at random below the kernel's ephemeral range: a port from ``bind(0)`` lies in
    that range, where every outgoing connection takes its local port, so a client could
    hold it before the server that asked for it binds.
    """
    low = _ephemeral_low()
    floor = max(1024, low - 16384)
    for _ in range(100 if low - floor > 1000 else 0):
        port = random.randint(floor, low - 1)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
