"""Name lookups for confd's ``lookupIP*`` and ``lookupSRV`` template functions.

``lookup_ip`` uses the system resolver (``getaddrinfo``, so ``/etc/hosts`` first, as
Go's resolver does) and formats addresses as Go's ``net.IP.String``. ``lookup_srv``
sends one plain DNS query over UDP to the resolvers of ``/etc/resolv.conf`` (the
standard library has no SRV lookup); like confd, any failure yields an empty list.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
from typing import ClassVar

from muster.golang.values import GoStruct, Uint16

__all__ = ["SRV", "lookup_ip", "lookup_srv", "resolv_conf_nameservers"]

_TYPE_SRV = 33
_CLASS_IN = 1


class SRV(GoStruct):
    """``net.SRV``; confd returns ``[]*net.SRV``, so it prints as a pointer."""

    go_type: ClassVar[str] = "net.SRV"
    go_fields: ClassVar[tuple[str, ...]] = ("Target", "Port", "Priority", "Weight")
    go_pointer: ClassVar[bool] = True
    __slots__ = ("Target", "Port", "Priority", "Weight")

    def __init__(self, target: str, port: int, priority: int, weight: int) -> None:
        self.Target = target
        self.Port = Uint16(port)
        self.Priority = Uint16(priority)
        self.Weight = Uint16(weight)

    def __repr__(self) -> str:
        return f"SRV({self.Target!r}, {self.Port}, {self.Priority}, {self.Weight})"


def _go_ip_string(addr: str) -> str:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])  # Go's net.IP has no zone
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)  # Go prints an IPv4-mapped address as IPv4
    return ip.compressed


def lookup_ip(host: str) -> list[str]:
    """confd's ``LookupIP``: the host's addresses as strings, sorted; [] on error."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return []
    ips: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        text = _go_ip_string(str(sockaddr[0]))
        if text not in ips:
            ips.append(text)
    return sorted(ips)


def resolv_conf_nameservers(path: str = "/etc/resolv.conf") -> list[tuple[str, int]]:
    """The ``nameserver`` lines of resolv.conf as (address, 53) pairs."""
    servers: list[tuple[str, int]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver":
                    servers.append((fields[1], 53))
    except OSError:
        pass
    return servers or [("127.0.0.1", 53)]


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if not label.isascii() else label.encode()
        if not raw or len(raw) > 63:
            raise ValueError(f"bad label in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def _read_name(msg: bytes, off: int) -> tuple[str, int]:
    labels: list[str] = []
    end = -1
    for _ in range(128):  # bounded: a compression loop is a malformed answer
        length = msg[off]
        if length & 0xC0 == 0xC0:
            if end < 0:
                end = off + 2
            off = ((length & 0x3F) << 8) | msg[off + 1]
            continue
        off += 1
        if length == 0:
            break
        labels.append(msg[off : off + length].decode("ascii", "replace"))
        off += length
    else:
        raise ValueError("name too long")
    return ".".join(labels) + ".", end if end >= 0 else off


def _parse_srv(msg: bytes, qid: int) -> list[SRV]:
    rid, flags, qd, an, _ns, _ar = struct.unpack_from("!HHHHHH", msg, 0)
    if rid != qid or not flags & 0x8000 or flags & 0x000F:
        raise ValueError("bad response")
    off = 12
    for _ in range(qd):
        _, off = _read_name(msg, off)
        off += 4
    records = []
    for _ in range(an):
        _, off = _read_name(msg, off)
        rtype, rclass, _ttl, rdlen = struct.unpack_from("!HHIH", msg, off)
        off += 10
        if rtype == _TYPE_SRV and rclass == _CLASS_IN:
            prio, weight, port = struct.unpack_from("!HHH", msg, off)
            target, _ = _read_name(msg, off + 6)
            records.append(SRV(target, port, prio, weight))
        off += rdlen
    return records


def lookup_srv(
    service: str,
    proto: str,
    name: str,
    *,
    nameservers: list[tuple[str, int]] | None = None,
    timeout: float = 2.0,
) -> list[SRV]:
    """``net.LookupSRV(service, proto, name)`` records in answer order; [] on any error.

    As in Go, ``_service._proto.name`` is queried unless service and proto are both
    empty, in which case ``name`` is queried as is.
    """
    target = name if not service and not proto else f"_{service}._{proto}.{name}"
    try:
        qname = _encode_name(target)
    except (ValueError, UnicodeError):
        return []
    qid = random.randrange(1 << 16)
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", _TYPE_SRV, _CLASS_IN)
    for host, port in nameservers if nameservers is not None else resolv_conf_nameservers():
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.settimeout(timeout)
                sock.sendto(query, (host, port))
                reply, _ = sock.recvfrom(65535)
            return _parse_srv(reply, qid)
        except (OSError, ValueError, struct.error, IndexError):
            continue
    return []
