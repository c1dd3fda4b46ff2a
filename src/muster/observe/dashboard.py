"""The dashboard's data (one JSON document) and its static files (HTML, CSS, JS; no CDN).

``build_dashboard`` joins what the daemon knows (the registry's valid servers and
rejected keys, the panic guard's holds, readiness, recent events) with nginx's traffic
figures per server into what the page and ``muster status`` show. A server's ``state``:

* ``up``: registered, no failed try in the traffic window;
* ``failing``: registered, tries to it failed (errors or timeouts) in the window: the
  balancer takes it out for ``fail_timeout`` after ``max_fails`` of them;
* ``draining``: no longer registered, still answering requests (in-flight, keep-alive);
* ``held``: no longer registered, but its service lost servers en masse and the panic
  guard keeps them routed (shown once they take traffic; the count is per service).

Servers are matched to traffic by ``host:port`` as nginx writes ``$upstream_addr``, so a
server registered by DNS name shows its traffic under each address it resolved to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

__all__ = ["STATIC_TYPES", "asset", "build_dashboard"]

STATIC_TYPES = {"css": "text/css", "js": "text/javascript", "html": "text/html", "svg": "image/svg+xml"}


def asset(name: str) -> bytes:
    """A file of the page (``index.html``, ``dashboard.js``...); ``FileNotFoundError`` if none."""
    return (resources.files("muster.observe") / "web" / name).read_bytes()


def _addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_dashboard(
    *,
    status: Mapping[str, Any],
    services: Mapping[str, Sequence[tuple[str, int, int]]],
    rejected: Mapping[str, str],
    held: Mapping[str, int],
    traffic: Mapping[tuple[str, str], Mapping[str, Any]],
    traffic_dropped: int | None,
    events: list[dict[str, Any]],
    info: Mapping[str, Any],
    now: float,
) -> dict[str, Any]:
    """The page's JSON: see the module docstring for the states."""
    by_service: dict[str, dict[str, Mapping[str, Any]]] = {}
    for (service, server), figures in traffic.items():
        by_service.setdefault(service, {})[server] = figures
    rows = []
    for name in sorted(services.keys() | by_service.keys()):
        seen = by_service.get(name, {})
        servers = []
        registered = set()
        for host, port, weight in services.get(name, ()):
            addr = _addr(host, port)
            registered.add(addr)
            figures = seen.get(addr, {})
            failing = bool(figures) and float(figures.get("error_rate", 0)) > 0
            state = "failing" if failing else "up"
            servers.append({"addr": addr, "weight": weight, "state": state, "registered": True, **figures})
        for addr, figures in sorted(seen.items()):
            if addr in registered:
                continue
            if addr == "-":
                state = "no server"  # requests that found no server: unknown service, none valid
            elif held.get(name):
                state = "held"  # the guard keeps routing servers the registry dropped
            elif float(figures.get("rps", 0)) > 0:
                state = "draining"
            else:
                continue  # left the registry and quiet: its totals live on in /metrics only
            servers.append({"addr": addr, "weight": None, "state": state, "registered": False, **figures})
        total_rps = sum(float(s.get("rps", 0)) for s in servers)
        requests = sum(int(s.get("requests", 0)) for s in servers)
        rows.append(
            {
                "name": name,
                "registered": name in services,
                "held": held.get(name, 0),
                "servers": servers,
                "rps": round(total_rps, 2),
                "requests": requests,
            }
        )
    return {
        "time": now,
        "ready": status.get("ready"),
        "reason": status.get("reason"),
        "revision": status.get("revision"),
        "batches": status.get("batches"),
        "last_success": status.get("last_success"),
        "problems": status.get("problems", []),
        "info": dict(info),
        "traffic": {"available": bool(traffic) or traffic_dropped is not None, "dropped": traffic_dropped},
        "services": rows,
        "rejected": [{"key": k, "reason": r} for k, r in sorted(rejected.items())],
        "events": events,
    }
