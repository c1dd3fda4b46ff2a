"""muster: load-balance microservices with nginx, driven by a service registry in etcd."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
