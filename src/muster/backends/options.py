"""Connection options shared by every backend, mirroring confd's backend flags."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BackendOptions"]


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """What a backend needs to connect; each backend reads the fields that apply to it.

    ``nodes`` are endpoints such as ``http://127.0.0.1:2379`` (a bare ``host:port`` gets
    ``scheme``); they are tried in order and failed over. ``client_*`` are confd's TLS flags:
    ``client_ca_keys`` is the CA bundle, ``client_insecure`` skips server verification.
    ``files`` and ``filter`` serve the file backend.
    Timeouts are seconds.
    """

    nodes: tuple[str, ...] = ()
    scheme: str = "http"
    username: str = ""
    password: str = ""
    basic_auth: bool = False
    client_cert: str = ""
    client_key: str = ""
    client_ca_keys: str = ""
    client_insecure: bool = False
    files: tuple[str, ...] = ()
    filter: str = "*"
    #: Redis: what stands for ``/`` in key names (confd's ``-separator``; "" means ``/``).
    separator: str = ""
    #: Give up on one request (not on a watch) after this long and try the next node.
    request_timeout: float = 5.0
    #: A connect that takes longer goes to the next node: a member cut off silently (no RST)
    #: would otherwise hold a reconnect for the OS's SYN retries.
    dial_timeout: float = 1.0
    #: A watch that has been silent this long is probed (one status request; etcd answers it
    #: from memory), so a member cut off without a word is abandoned within about two of
    #: these; 10 s left a daemon blind for 10-13 s while the other members took writes.
    watch_probe_interval: float = 0.5

    def endpoints(self, default: str = "127.0.0.1:2379") -> tuple[str, ...]:
        """``nodes`` with a scheme on each and no trailing slash; ``default`` if none given."""
        nodes = self.nodes or (default,)
        out = []
        for node in nodes:
            node = node.strip().rstrip("/")
            if "://" not in node:
                node = f"{self.scheme}://{node}"
            out.append(node)
        return tuple(out)
