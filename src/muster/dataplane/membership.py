"""The valid servers of every service under the registry root, kept up to date by snapshot diffs.

The data plane is fed a whole snapshot per change, but with thousands of services a
change touches one or two of them. ``MembershipIndex.update`` diffs the snapshot
against the previous one (set operations on the dicts' items, in C) and re-validates
only the services whose keys changed, with the same rules as the stock template
(``muster.services.index_services``). Service names are still checked together,
because two names that differ only in case collide in nginx.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from muster.services import DEFAULT_ROOT, RejectLog, index_services

__all__ = ["Entries", "MembershipIndex"]

#: A service's valid servers as ``(host, port, weight)``, in the template's order.
Entries = list[tuple[str, int, int]]

_REJECTS = RejectLog()  # shared by every index: each rejected key is logged once


@dataclass(slots=True)
class MembershipIndex:
    """``services``: each valid service name -> its valid servers, as of the last ``update``."""

    root: str = DEFAULT_ROOT
    services: dict[str, Entries] = field(default_factory=dict)
    _values: dict[str, str] = field(default_factory=dict)
    _keys: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> its keys
    _rejected: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> key -> reason
    _names_rejected: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = self.root.rstrip("/")

    def update(self, values: Mapping[str, str]) -> set[str]:
        """Take the snapshot ``values``; return the names whose servers changed (or vanished)."""
        prefix = self.root + "/"
        new = {k: v for k, v in values.items() if k.startswith(prefix)}
        old = self._values
        changed = {k for k, _ in new.items() - old.items()} | (old.keys() - new.keys())
        self._values = new
        touched: set[str] = set()
        for key in changed:
            rest = key[len(prefix) :]
            if "/" not in rest:
                continue  # a value at ROOT/NAME itself: not a service directory
            name = rest.split("/", 1)[0]
            touched.add(name)
            keys = self._keys.setdefault(name, {})
            if key in new:
                keys[key] = new[key]
            else:
                keys.pop(key, None)
                if not keys:
                    del self._keys[name]
        if not touched:
            return set()
        # Names are validated together (case collisions); entries only for touched services.
        entries = [item for name in touched for item in self._keys.get(name, {}).items()]
        index = index_services(entries, self._keys.keys(), self.root)
        names_rejected = {k: v for k, v in index.rejected.items() if k.count("/") == prefix.count("/")}
        flipped = {k[len(prefix) :] for k in names_rejected.keys() ^ self._names_rejected.keys()}
        self._names_rejected = names_rejected
        result: set[str] = set()
        for name in touched | flipped:
            servers = index.services.get(name)
            if servers is None:
                self._rejected.pop(name, None)
                if self.services.pop(name, None) is not None:
                    result.add(name)
                continue
            source = index
            if name not in touched:
                # A name that became valid only now: index its servers too.
                source = index_services(self._keys[name].items(), [name], self.root)
                servers = source.services[name]
            mine = f"{prefix}{name}/"
            self._rejected[name] = {k: v for k, v in source.rejected.items() if k.startswith(mine)}
            members = [(s.Host, s.Port, s.Weight) for s in servers]
            if self.services.get(name) != members:
                self.services[name] = members
                result.add(name)
        _REJECTS.report(self.rejected(), self.root)
        return result

    def rejected(self) -> dict[str, str]:
        """Every rejected key (or service name) under the root, with its reason."""
        out = dict(self._names_rejected)
        for reasons in self._rejected.values():
            out.update(reasons)
        return out
