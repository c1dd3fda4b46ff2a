"""The backend contract: a consistent snapshot of keys, and a way to wait for changes.

Kept as small as confd's ``StoreClient`` so a new store costs 100-300 lines. These are
``typing.Protocol``s, so fakes (``backends.memory``) need no inheritance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Backend", "Lease", "Registrar", "Snapshot"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every key under the requested prefixes at one moment, with full (unprefixed) paths.

    ``revision`` is the store revision the values were read at, or ``None`` for stores
    without revisions (env, file).
    """

    values: Mapping[str, str]
    revision: int | None


@runtime_checkable
class Backend(Protocol):
    async def get_values(self, prefixes: Sequence[str]) -> Snapshot:
        """Read every key equal to or below each prefix, all at one revision.

        A prefix ``/a`` matches ``/a`` and ``/a/...`` but not ``/ab`` for hierarchical
        stores; the file backend keeps confd's plain string-prefix match.
        Raises ``BackendUnavailable`` when no endpoint answers.
        """
        ...

    async def wait_changed(self, prefixes: Sequence[str], since: int | None) -> int | None:
        """Block until a key under ``prefixes`` changes after revision ``since``.

        Returns the new revision (``None`` for stores without revisions). Cancel the
        task to stop waiting. Raises ``WatchUnsupported`` if the store cannot watch and
        ``RevisionCompacted`` if ``since`` is no longer available.
        """
        ...

    async def aclose(self) -> None:
        """Release connections. Always safe to call, also twice."""
        ...


@runtime_checkable
class Lease(Protocol):
    """A registration kept alive by its backend until ``revoke()``."""

    @property
    def ttl(self) -> int: ...

    async def keepalive(self) -> int:
        """Refresh once; return the remaining TTL. Raises ``LeaseLost`` if it expired."""
        ...

    async def revoke(self) -> None:
        """Delete the key now (revoke the lease)."""
        ...


@runtime_checkable
class Registrar(Protocol):
    """Stores that can hold a key only while its owner is alive (leases, TTLs)."""

    async def register(self, key: str, value: str, ttl: int) -> Lease:
        """Write ``key`` bound to a fresh lease or TTL of ``ttl`` seconds."""
        ...
