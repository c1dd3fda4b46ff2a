"""Read registry keys straight from etcd's HTTP APIs (v3 gateway and v2 keys), independent of muster.

The registration tests check what muster wrote through this second, minimal client, so a
bug in muster's own etcd client cannot hide a bug in registration.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    value: str
    ttl: int | None  # remaining seconds (v2 node ttl, v3 lease TTL); None without one
    lease: int | None = None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class RegistryProbe:
    def __init__(
        self,
        url: str,
        api: str,
        *,
        context: ssl.SSLContext | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.api = api  # "etcdv3" or "etcd" (v2)
        self.context = context
        self.headers = headers or {}

    def _call(self, method: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=self.headers)
        with urllib.request.urlopen(request, timeout=5, context=self.context) as response:
            result: dict[str, object] = json.loads(response.read())
            return result

    def get(self, key: str) -> Entry | None:
        if self.api == "etcdv3":
            found = self._call("POST", "/v3/kv/range", {"key": _b64(key)})
            kvs = found.get("kvs") or []
            assert isinstance(kvs, list)
            if not kvs:
                return None
            kv = kvs[0]
            value = base64.b64decode(kv["value"]).decode()
            lease = int(kv.get("lease", 0))
            if not lease:
                return Entry(value, None)
            ttl = self._call("POST", "/v3/lease/timetolive", {"ID": lease})
            return Entry(value, int(str(ttl.get("TTL", -1))), lease)
        try:
            found = self._call("GET", "/v2/keys" + key)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        node = found["node"]
        assert isinstance(node, dict)
        return Entry(node["value"], node.get("ttl"))

    def delete(self, key: str) -> None:
        """Remove the key behind muster's back (v3: revoke its lease; v2: delete it)."""
        if self.api == "etcdv3":
            entry = self.get(key)
            assert entry is not None and entry.lease
            self._call("POST", "/v3/lease/revoke", {"ID": entry.lease})
        else:
            self._call("DELETE", "/v2/keys" + key)

    def wait_for(self, key: str, present: bool, timeout: float) -> float:
        """Poll every 20 ms until the key is (or is not) there; return the seconds it took."""

        def check() -> bool:
            try:
                entry = self.get(key)
            except (OSError, urllib.error.URLError):
                return False  # etcd unreachable: neither answer yet
            return (entry is not None) == present

        started = time.monotonic()
        return wait_until(check, timeout, f"key {key} {'present' if present else 'absent'}") - started


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
