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

    async def verify(self) -> bool:
        """After a ``keepalive``: False when the key must be written back with ``restore()``.

        That is when the key is gone, or holds another value, or is bound to no lease (a
        copy that would outlive its owner). A key that another live lease holds now counts
        as intact: it belongs to another registration, and taking it back would start a
        fight costing a write per refresh on each side.
        """
        ...

    async def restore(self) -> bool:
        """Write the key again, bound to this lease, unless it changed since ``verify()``.

        Returns whether it wrote (False: someone else wrote the key meanwhile; the next
        ``verify()`` judges it). Raises ``LeaseLost`` if the lease itself is gone.
        """
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
