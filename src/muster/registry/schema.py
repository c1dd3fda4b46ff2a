"""What a registry entry may hold: the one rule set for writers and readers.

``muster register`` checks what it is about to write with these rules, and the daemon's
readers (``muster.registry.index``, the data plane index) keep only what passes them, so an
agent can never report success for an entry no proxy will use. Layout::

    /services/NAME/servers/ID = {"host": "10.0.0.5", "port": 8080, "weight": 2, ...}

* ``NAME`` and ``ID``: ASCII letters, digits, ``.``, ``_``, ``-``, starting with a letter
  or digit, at most 128 characters (a leading ``-`` reads as a flag, ``.``/``..`` as paths).
* ``host``: an IPv4/IPv6 address nginx can connect to (not unspecified, multicast, the
  limited broadcast address, nor an IPv6 zone) or an RFC 1123 DNS name whose last label is
  not all digits (``10.0.0.256`` is a typo, not a name).
* ``port``: 1-65535; ``weight``: 1-1000, default 1. Other fields are ignored by readers.

Each check returns why a value is refused, or None: the writer turns that into a
``RegistrationError``, the reader into a rejected entry.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "DEFAULT_ROOT",
    "MAX_NAME",
    "MAX_VALUE_BYTES",
    "MAX_WEIGHT",
    "host_problem",
    "is_ip",
    "name_problem",
    "port_problem",
    "valid_host",
    "valid_name",
    "weight_problem",
]

DEFAULT_ROOT = "/services"
MAX_NAME = 128
MAX_VALUE_BYTES = 64 * 1024
MAX_WEIGHT = 1000

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z", re.ASCII)
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z", re.ASCII)
# A dotted quad without leading zeros (which ipaddress rejects too); ipaddress is exact but
# costs more than all the rest of an entry's parsing, and most registries hold IPv4.
_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\Z", re.ASCII
)


def valid_name(name: str) -> bool:
    """Whether ``name`` is a valid service name or server ID."""
    return bool(_NAME.match(name))


def name_problem(name: object, what: str = "service name") -> str | None:
    if isinstance(name, str) and _NAME.match(name):
        return None
    if isinstance(name, str) and len(name) > MAX_NAME:
        return f"invalid {what}: longer than {MAX_NAME} characters"
    return f"invalid {what} {name!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit"


def is_ip(host: str) -> bool:
    """An address nginx can connect to: not unspecified, multicast or broadcast, no IPv6 zone."""
    if _IPV4.match(host):
        first = int(host.split(".", 1)[0])
        return host not in ("0.0.0.0", "255.255.255.255") and not 224 <= first <= 239
    if ":" not in host:
        return False
    try:
        addr = ipaddress.IPv6Address(host)
    except ValueError:
        return False
    # nginx cannot parse a zone index; unspecified and multicast are no servers.
    return addr.scope_id is None and not addr.is_unspecified and not addr.is_multicast


def _dns_name(host: str) -> bool:
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    # An all-numeric last label is no TLD: "1.2.3" would be read as the address 1.2.0.3.
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def valid_host(host: str) -> bool:
    """Whether ``host`` is a usable IP address or a syntactically valid DNS name."""
    return is_ip(host) or _dns_name(host)


def host_problem(host: object) -> str | None:
    if isinstance(host, str) and valid_host(host):
        return None
    if isinstance(host, str):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return (
                f"invalid host {host!r}: {address} is no server address (unspecified, multicast or broadcast)"
            )
    return f"invalid host {host!r}: give an IP address or a DNS name"


def port_problem(port: object) -> str | None:
    if type(port) is int and 1 <= port <= 65535:
        return None
    return f"invalid port {port!r}: use a number from 1 to 65535"


def weight_problem(weight: object) -> str | None:
    if type(weight) is int and 1 <= weight <= MAX_WEIGHT:
        return None
    return f"invalid weight {weight!r}: use a number from 1 to {MAX_WEIGHT}"
