"""An in-memory ``Registrar`` shipped for tests of code that registers itself (httpx MockTransport style).

It keeps keys in a dict, hands out leases that live until revoked or ``expire()``d, and has
the knobs a test needs: ``unavailable`` makes every call fail as a dead store would,
``hang`` makes calls block (a partitioned store), ``failing`` and ``hanging`` do the same for
some operations only (``{"restore"}``), ``delete()`` removes a key but not its lease
(``etcdctl del``), and ``calls`` records the traffic.
"""

from __future__ import annotations

import asyncio
import itertools

from muster.errors import BackendUnavailable, LeaseLost

__all__ = ["MemoryLease", "MemoryRegistrar"]


class MemoryRegistrar:
    """Keys bound to leases in a dict. Lease ``ttl`` is recorded, never counted down."""

    def __init__(self, *, grant_ttl: int | None = None) -> None:
        #: Overrides the granted TTL, as etcd does when asked for less than its minimum.
        self.grant_ttl = grant_ttl
        self.values: dict[str, str] = {}
        self.leases: dict[int, MemoryLease] = {}
        self.unavailable = False
        self.hang = False
        self.failing: set[str] = set()  # operations that fail as on a dead store
        self.hanging: set[str] = set()  # operations that block until cancelled
        self.calls: list[tuple[str, str]] = []  # (operation, key)
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"<MemoryRegistrar keys={sorted(self.values)} unavailable={self.unavailable}>"

    async def _io(self, op: str, key: str) -> None:
        self.calls.append((op, key))
        if self.hang or op in self.hanging:
            await asyncio.Event().wait()  # forever, until cancelled
        if self.unavailable or op in self.failing:
            raise BackendUnavailable(f"{op} {key}: store unavailable (MemoryRegistrar)")
        await asyncio.sleep(0)

    async def register(self, key: str, value: str, ttl: int) -> MemoryLease:
        await self._io("register", key)
        lease = MemoryLease(self, next(self._ids), key, value, self.grant_ttl or ttl)
        # A re-put moves the key to the new lease, as in etcd v3.
        for old in self.leases.values():
            if old.key == key:
                old.key = None
        self.leases[lease.lease_id] = lease
        self.values[key] = value
        return lease

    def expire(self, key: str | None = None) -> None:
        """Drop the lease of ``key`` (every lease if None) and its key, as a TTL running out does."""
        for lease_id, lease in list(self.leases.items()):
            if key is None or lease.key == key:
                self._drop(lease_id)

    def delete(self, key: str) -> None:
        """Remove ``key`` behind its owner's back; its lease lives on, as after ``etcdctl del``."""
        self.values.pop(key, None)

    def _drop(self, lease_id: int) -> None:
        lease = self.leases.pop(lease_id)
        if lease.key is not None:
            self.values.pop(lease.key, None)


class MemoryLease:
    def __init__(self, registrar: MemoryRegistrar, lease_id: int, key: str, value: str, ttl: int) -> None:
        self._registrar = registrar
        self.lease_id = lease_id
        self.key: str | None = key  # None once another lease took the key
        self.value = value
        self._ttl = ttl

    def __repr__(self) -> str:
        return f"<MemoryLease id={self.lease_id} key={self.key} ttl={self._ttl}>"

    @property
    def ttl(self) -> int:
        return self._ttl

    async def keepalive(self) -> int:
        await self._registrar._io("keepalive", self.key or "")
        if self.lease_id not in self._registrar.leases:
            raise LeaseLost(f"lease {self.lease_id} expired")
        return self._ttl

    async def verify(self) -> bool:
        await self._registrar._io("verify", self.key or "")
        # A key another lease took is that registration's business, as in etcd v3.
        return self.key is None or self._registrar.values.get(self.key) == self.value

    async def restore(self) -> bool:
        await self._registrar._io("restore", self.key or "")
        if self.lease_id not in self._registrar.leases:
            raise LeaseLost(f"lease {self.lease_id} expired")
        if self.key is None:
            return False
        self._registrar.values[self.key] = self.value
        return True

    async def revoke(self) -> None:
        await self._registrar._io("revoke", self.key or "")
        if self.lease_id in self._registrar.leases:
            self._registrar._drop(self.lease_id)
