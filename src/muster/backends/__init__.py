"""Backends by name: a lazy registry so only the chosen backend's module is imported.

Every backend class takes keyword-only ``options: BackendOptions`` (``backends.options``);
build one with ``create(name, options)``.
"""

from __future__ import annotations

import importlib
from typing import Any

from muster.backends.base import Backend, Lease, Registrar, Snapshot
from muster.backends.options import BackendOptions
from muster.errors import ConfigError

__all__ = ["Backend", "BackendOptions", "Lease", "REGISTRY", "Registrar", "Snapshot", "create", "load"]

#: backend name (confd's ``-backend``) -> ``"module:Class"``.
REGISTRY: dict[str, str] = {
    "etcdv3": "muster.backends.etcd.v3:EtcdV3Backend",
    "etcd": "muster.backends.etcd.v2:EtcdV2Backend",
    "file": "muster.backends.file:FileBackend",
    "env": "muster.backends.env:EnvBackend",
    "memory": "muster.backends.memory:MemoryBackend",
    "redis": "muster.backends.redis.backend:RedisBackend",
    "zookeeper": "muster.backends.zookeeper:ZooKeeperBackend",
}


def load(name: str) -> type[Any]:
    """Import and return the backend class registered as ``name``; ``ConfigError`` if unknown."""
    target = REGISTRY.get(name)
    if target is None:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigError(f"unknown backend {name!r}; choose one of {known}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"backend {name!r} is not available: {exc}") from exc
    cls: type[Any] = getattr(module, attr)
    return cls


def create(name: str, options: BackendOptions | None = None) -> Backend:
    """Instantiate the backend ``name`` with ``options`` (defaults when omitted)."""
    backend: Backend = load(name)(options=options or BackendOptions())
    return backend
