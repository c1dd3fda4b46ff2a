"""A registration in Redis: the key itself is the lease, written with ``EX`` and kept by ``EXPIRE``.

Redis has no lease objects, so a lost key is not a lost lease: ``keepalive`` refreshes the
TTL only while the key holds our value (never another writer's), ``verify`` reads the key and
its TTL, and ``restore`` writes it back unless someone wrote it since ``verify`` (compare and
set in one Lua script, atomic on the server). ``LeaseLost`` is never raised: the agent's
restore path puts a vanished key back within a refresh.
"""

from __future__ import annotations

import logging

from muster.backends.redis.client import RedisNodes
from muster.log import kv

__all__ = ["RedisLease"]

log = logging.getLogger(__name__)

# KEYS[1] key; ARGV[1] our value, ARGV[2] ttl.
_KEEPALIVE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
# ARGV[3] "1" if verify found no key; ARGV[4] the value it found.
_RESTORE = """
local cur = redis.call('GET', KEYS[1])
if (ARGV[3] == '1' and cur == false) or (ARGV[3] == '0' and cur == ARGV[4]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""
_REVOKE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLease:
    """``muster.backends.base.Lease`` for a Redis key with a TTL (see the module doc)."""

    def __init__(self, nodes: RedisNodes, key: str, value: str, ttl: int) -> None:
        self._nodes = nodes
        self.key = key
        self.value = value
        self._ttl = ttl
        self._seen: bytes | None = None  # the value verify() found (None: absent)

    def __repr__(self) -> str:
        return f"<RedisLease key={self.key!r} ttl={self._ttl}>"

    @property
    def ttl(self) -> int:
        return self._ttl

    async def write(self) -> None:
        """``SET key value EX ttl``, unconditionally (a fresh registration)."""
        await self._nodes.run(f"register {self.key}", lambda r: r.set(self.key, self.value, ex=self._ttl))

    async def keepalive(self) -> int:
        """Push the expiry ``ttl`` seconds out if the key is ours; return the TTL either way."""
        refreshed = await self._nodes.run(
            f"keepalive {self.key}", lambda r: r.eval(_KEEPALIVE, 1, self.key, self.value, self._ttl)
        )
        if not refreshed:
            log.debug(kv("redis.lease.refresh_missed", key=self.key))
        return self._ttl

    async def verify(self) -> bool:
        """Whether the key holds our value with a TTL, or another writer's value with a TTL.

        A key with no TTL (``PERSIST``, a backup restored) would outlive its owner: False,
        so ``restore`` writes it again with one.
        """

        async def read(r: object) -> list[object]:
            from redis.asyncio import Redis  # the redis extra, loaded with this backend

            assert isinstance(r, Redis)
            async with r.pipeline(transaction=True) as pipe:
                pipe.get(self.key)
                pipe.pttl(self.key)
                result: list[object] = await pipe.execute()
            return result

        value, pttl = await self._nodes.run(f"verify {self.key}", read)
        assert value is None or isinstance(value, bytes)
        self._seen = value
        if value is None or not isinstance(pttl, int) or pttl < 0:
            return False
        if value != self.value.encode():
            log.debug(kv("redis.lease.key_taken", key=self.key))
        return True

    async def restore(self) -> bool:
        """Write the key with our value and TTL if it is as ``verify`` saw it."""
        absent = "1" if self._seen is None else "0"
        seen = self._seen or b""
        wrote = await self._nodes.run(
            f"restore {self.key}",
            lambda r: r.eval(_RESTORE, 1, self.key, self.value, self._ttl, absent, seen),
        )
        return bool(wrote)

    async def revoke(self) -> None:
        """Delete the key if it still holds our value; a key already gone is not an error."""
        await self._nodes.run(f"deregister {self.key}", lambda r: r.eval(_REVOKE, 1, self.key, self.value))
