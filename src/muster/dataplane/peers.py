"""Peers as the Lua balancer reads them: ``ip port weight`` lines, pure and validated."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Peer", "encode_peers"]


@dataclass(frozen=True, slots=True, order=True)
class Peer:
    """One upstream server. ``ip`` must be an address: the balancer phase cannot resolve names."""

    ip: str
    port: int
    weight: int = 1

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.ip)  # raises ValueError for anything but an address
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port out of range: {self.port}")
        if not 1 <= self.weight <= 1000:
            raise ValueError(f"weight out of range: {self.weight}")


def encode_peers(peers: Iterable[Peer]) -> bytes:
    """The admin endpoint's body for one service; sorted so equal sets encode equally."""
    return "".join(f"{p.ip} {p.port} {p.weight}\n" for p in sorted(set(peers))).encode("ascii")
