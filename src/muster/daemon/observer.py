"""Follow the registry's services for the dashboard: who joined, who left, what was rejected.

``RegistryObserver`` is the daemon's ``Observer``: each batch that reads ``/services``
anyway (the stock template, the Lua data plane) hands it that snapshot, and it keeps its
own ``MembershipIndex``: the same rules as the template functions and the data planes, so
what the page lists as valid or rejected is what nginx gets. Each update turns the
difference into events. It reads nothing itself and widens no watch (a daemon whose
templates never read ``/services`` shows no services); per change it costs the
revalidation of the services touched (about 2 ms with 3,000 services, see
``muster.dataplane.membership``).
"""

from __future__ import annotations

from collections.abc import Mapping

from muster.dataplane.membership import Entries, MembershipIndex
from muster.log import printable
from muster.observe.events import EventLog
from muster.registry.index import DEFAULT_ROOT

__all__ = ["RegistryObserver"]


def _server(entry: tuple[str, int, int]) -> str:
    host, port, weight = entry
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" + (f" weight {weight}" if weight != 1 else "")


class RegistryObserver:
    """Valid services and rejected keys under ``root`` as of the last batch, as events."""

    def __init__(self, events: EventLog, root: str = DEFAULT_ROOT) -> None:
        self.events = events
        self.root = root.rstrip("/") or "/"
        self._index = MembershipIndex(self.root)
        self._rejected: dict[str, str] = {}
        self._first = True

    @property
    def services(self) -> Mapping[str, Entries]:
        return self._index.services

    @property
    def rejected(self) -> Mapping[str, str]:
        return self._rejected

    def snapshot(self) -> tuple[Mapping[str, Entries], Mapping[str, str]]:
        return self._index.services, self._rejected

    async def apply(self, values: Mapping[str, str]) -> None:
        """Take the whole of ``values`` under the root."""
        before = {name: list(entries) for name, entries in self._index.services.items()}
        self._report(before, self._index.update(values))

    async def apply_changes(self, changes: Mapping[str, str | None]) -> None:
        """Take only the keys changed since the last call (None: deleted)."""
        before = {
            name: list(self._index.services[name])
            for name in self._names(changes)
            if name in self._index.services
        }
        self._report(before, self._index.apply_changes(changes))

    def _names(self, keys: Mapping[str, object]) -> set[str]:
        prefix = self.root + "/"
        return {key[len(prefix) :].split("/", 1)[0] for key in keys if key.startswith(prefix)}

    def _report(self, before: Mapping[str, list[tuple[str, int, int]]], changed: set[str]) -> None:
        rejected = self._index.rejected()
        if self._first:
            # The state at start is not news: one line instead of a join per server.
            count = sum(len(e) for e in self._index.services.values())
            self.events.add("start", f"{len(self._index.services)} service(s), {count} server(s) at start")
            self._first = False
        else:
            for name in sorted(changed):
                old = set(before.get(name, ()))
                new = set(self._index.services.get(name, ()))
                for entry in sorted(new - old):
                    self.events.add("join", f"{name}: {_server(entry)} joined")
                for entry in sorted(old - new):
                    self.events.add("leave", f"{name}: {_server(entry)} left")
        for key, reason in sorted(rejected.items()):
            if self._rejected.get(key) != reason:
                self.events.add("reject", f"{printable(key)} rejected: {reason}")
        for key in sorted(self._rejected.keys() - rejected.keys()):
            self.events.add("accept", f"{printable(key)} no longer rejected (fixed or gone)")
        self._rejected = rejected
