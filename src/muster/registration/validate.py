"""What a registration writes (key and JSON value), checked in full before anything is written.

The value keeps the seed post's layout, ``{"host": "10.0.0.5", "port": 8080}``, with the
port as a JSON number and any metadata as extra string fields. Service names, server IDs,
hosts, ports and weights follow ``muster.registry.schema``, the rules the daemon reads
with, so nothing is written that no proxy would use; metadata is restricted here, so
hostile or mistyped input never reaches the registry, nginx's config or a log line.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from muster.errors import RegistrationError
from muster.registry import schema

__all__ = [
    "DEFAULT_PREFIX",
    "MAX_TTL",
    "RegistrationSpec",
    "default_id",
    "validate_host",
    "validate_meta",
    "validate_name",
    "validate_port",
    "validate_prefix",
    "validate_ttl",
]

DEFAULT_PREFIX = schema.DEFAULT_ROOT
MAX_TTL = 10_000_000  # seconds; etcd v3 caps leases near 9e9, v2 has no practical cap
MAX_META_VALUE = 4096

_NAME = re.compile(r"[A-Za-z0-9._-]+")  # metadata keys and prefix segments
_RESERVED = frozenset({"host", "port"})


def validate_name(value: str, what: str = "service name") -> str:
    """A service name or server ID, as the daemon reads them (``registry.schema``)."""
    problem = schema.name_problem(value, what)
    if problem is not None:
        raise RegistrationError(problem)
    return value


def _validate_key_name(value: str, what: str) -> str:
    """A metadata key: ``[A-Za-z0-9._-]+``, not ``.`` or ``..`` (readers ignore these fields)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value in (".", ".."):
        raise RegistrationError(f"invalid {what} {value!r}: use letters, digits, '.', '_' and '-' only")
    return value


def validate_host(value: str) -> str:
    """A host the daemon will route to (``registry.schema``); IPv6 in canonical form."""
    candidate = (
        value[1:-1] if isinstance(value, str) and value.startswith("[") and value.endswith("]") else value
    )
    if isinstance(candidate, str) and ":" in candidate:
        try:
            # str() canonicalises IPv6 (``::1``), so the registry holds one spelling per address.
            candidate = str(ipaddress.IPv6Address(candidate))
        except ValueError:
            pass
    problem = schema.host_problem(candidate)
    if problem is not None:
        raise RegistrationError(problem.replace(repr(candidate), repr(value), 1))
    return candidate[:-1] if candidate.endswith(".") else candidate


def validate_port(value: int) -> int:
    problem = schema.port_problem(value)
    if problem is not None:
        raise RegistrationError(problem)
    return value


def validate_ttl(value: float) -> int:
    """A whole number of seconds from 1 to ``MAX_TTL`` (etcd TTLs are integers)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise RegistrationError(f"invalid TTL {value!r}: use a whole number of seconds")
    if not 1 <= value <= MAX_TTL:
        raise RegistrationError(f"invalid TTL {value!r}: use 1 to {MAX_TTL} seconds")
    return int(value)


def validate_prefix(value: str) -> str:
    """An absolute key prefix such as ``/services``; returned without a trailing slash."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise RegistrationError(f"invalid prefix {value!r}: it must start with '/'")
    stripped = value.rstrip("/")
    for segment in stripped.split("/")[1:]:
        if segment in ("", ".", "..") or not _NAME.fullmatch(segment):
            raise RegistrationError(
                f"invalid prefix {value!r}: segments use letters, digits, '.', '_' and '-' only"
            )
    return stripped


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise RegistrationError(f"invalid {what}: expected a string, got {type(value).__name__}")
    if len(value) > MAX_META_VALUE:
        raise RegistrationError(f"invalid {what}: longer than {MAX_META_VALUE} characters")
    for ch in value:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise RegistrationError(f"invalid {what} {value!r}: control characters are not allowed")
        if 0xD800 <= ord(ch) <= 0xDFFF:
            # Lone surrogates come from undecodable bytes (argv, environ); JSON cannot carry them.
            raise RegistrationError(f"invalid {what} {value!r}: not valid UTF-8 text")
    return value


def validate_meta(meta: Mapping[str, str]) -> dict[str, str]:
    """Metadata keys as names (not ``host``/``port``), values as printable strings."""
    clean: dict[str, str] = {}
    for key, value in meta.items():
        _validate_key_name(key, "metadata key")
        if key in _RESERVED:
            raise RegistrationError(f"invalid metadata key {key!r}: it would overwrite the server's {key}")
        clean[key] = _check_text(value, f"metadata value for {key!r}")
        if key == "weight":
            # The daemon reads "weight" (a number, or a string of digits) to balance by.
            weight = int(value) if value.isascii() and value.isdigit() else value
            problem = schema.weight_problem(weight)
            if problem is not None:
                raise RegistrationError(problem)
    return clean


def default_id(port: int) -> str:
    """``<hostname>-<port>``, the machine's short name made safe for a key segment."""
    host = socket.gethostname().split(".")[0] or "localhost"
    host = re.sub(r"[^A-Za-z0-9._-]", "-", host).lstrip("._-")[:100] or "localhost"
    return f"{host}-{port}"


@dataclass(frozen=True, slots=True)
class RegistrationSpec:
    """One server of one service: where it is announced and what is written there.

    Build it with ``RegistrationSpec.create`` (which validates); the fields are then known
    good. ``key`` is ``PREFIX/SERVICE/servers/ID``; ``value`` is compact JSON.
    """

    service: str
    server_id: str
    host: str
    port: int
    ttl: int
    prefix: str = DEFAULT_PREFIX
    meta: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        service: str,
        host: str,
        port: int,
        *,
        server_id: str | None = None,
        ttl: float = 10,
        prefix: str = DEFAULT_PREFIX,
        meta: Mapping[str, str] | None = None,
    ) -> RegistrationSpec:
        """Validate every part; raise ``RegistrationError`` naming the first bad one."""
        port = validate_port(port)
        spec = cls(
            service=validate_name(service, "service name"),
            server_id=validate_name(server_id if server_id is not None else default_id(port), "server ID"),
            host=validate_host(host),
            port=port,
            ttl=validate_ttl(ttl),
            prefix=validate_prefix(prefix),
            meta=validate_meta(meta or {}),
        )
        if len(spec.value.encode()) > schema.MAX_VALUE_BYTES:
            raise RegistrationError(f"invalid metadata: the value exceeds {schema.MAX_VALUE_BYTES} bytes")
        return spec

    @property
    def key(self) -> str:
        return f"{self.prefix}/{self.service}/servers/{self.server_id}"

    @property
    def value(self) -> str:
        document: dict[str, str | int] = {"host": self.host, "port": self.port}
        document.update(sorted(self.meta.items()))
        return json.dumps(document, separators=(",", ":"))
