"""The panic guard: a mass removal from the registry keeps routing to the last known servers.

Why: a load balancer that applies every removal at once turns a registry accident into an
outage. Agents partitioned from etcd lose their leases while their servers serve fine;
``etcdctl del --prefix /services`` or a deploy script's bug empties the registry in one
revision. confd and consul-template apply both and every service answers 404. airbnb's
synapse keeps the previous backends, Envoy has a panic threshold; muster holds the
removed servers for a grace period.

Theory of operation. ``PanicGuard.update(services, changed)`` is given each new
membership (service name -> its valid servers, any hashable item) and returns what to
publish. The removed servers of a service are *held* when, in one update, it would

* go from some servers to none (the service may even vanish), or
* shrink by more than ``max_server_loss`` of its servers, or
* shrink in an update in which more than ``max_service_loss`` of the services that had
  servers, and at least ``MASS_MIN_SERVICES``, shrink (one host partitioned away from
  every service it serves).

Shrink counts servers, not names: a server replaced by another (a deploy, an address
that moved in DNS) is no loss of capacity and is applied at once. Shrink is counted over
``window`` seconds, not one update: leases that expire a few seconds apart (every agent
of a host cut off from etcd) arrive in separate updates, 3 -> 2 -> 1 -> 0, each under
half; once the losses of the window add up past the share, the servers removed earlier
in it are published again and held too.

A held server keeps being published until its grace period ends (per service or the
default; 0 disables the guard), until it comes back (the hold simply ends), or until an
operator accepts the removals (``accept``; the daemon wires SIGUSR1 to it). A removal the
guard does not cover (one server of four leaves) is applied at once. Held servers are
still ordinary peers, so nginx's passive health checks (``max_fails``) keep a dead one
from costing more than retries. Pure: the clock is injected, no I/O.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from muster.log import kv

__all__ = ["GuardSettings", "Guards", "PanicGuard"]

log = logging.getLogger(__name__)

#: The fewest services that must lose servers in one update for the mass rule to apply.
MASS_MIN_SERVICES = 3

T = TypeVar("T", bound=Hashable)


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """How the guard judges a removal; ``grace`` 0 turns it off."""

    grace: float = 300.0
    #: Hold a removal of more than this share of one service's servers (0.5: 3 of 4, not 2 of 4).
    max_server_loss: float = 0.5
    #: Hold every removal of an update in which more than this share of services lose servers.
    max_service_loss: float = 0.5
    #: Grace per service name, overriding ``grace`` (0 turns the guard off for that service).
    grace_for: Mapping[str, float] = field(default_factory=dict)
    #: Removals within this many seconds count together (see the module docstring).
    window: float = 30.0

    def grace_of(self, service: str) -> float:
        return self.grace_for.get(service, self.grace)


class PanicGuard(Generic[T]):
    """Holds mass removals of one membership view (one registry root of one consumer)."""

    def __init__(self, settings: GuardSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        #: What was last published, per service.
        self.published: dict[str, list[T]] = {}
        self._held: dict[str, dict[T, float]] = {}  # service -> held server -> deadline
        self._recent: dict[str, dict[T, float]] = {}  # service -> removal applied -> when
        self._accepted = False

    def __repr__(self) -> str:
        return f"<PanicGuard held={self.held_count()} services={len(self.published)}>"

    def held(self) -> dict[str, list[T]]:
        """The servers published only because the guard holds them, per service."""
        return {name: list(servers) for name, servers in self._held.items()}

    def held_count(self) -> int:
        return sum(len(servers) for servers in self._held.values())

    def next_deadline(self) -> float | None:
        """When the earliest hold ends (clock time), or None if nothing is held."""
        return min((d for held in self._held.values() for d in held.values()), default=None)

    def accept(self) -> None:
        """Apply every held removal at the next ``update`` (an operator's confirmation)."""
        self._accepted = True

    def update(
        self, services: Mapping[str, Sequence[T]], changed: Collection[str] | None = None
    ) -> tuple[dict[str, list[T]], set[str]]:
        """The membership to publish for ``services``, and the names whose published servers
        changed. ``changed``: the names that may differ from the last call (None: any)."""
        now = self.clock()
        names = set(self.published) | set(services) if changed is None else set(changed)
        names |= set(self._held)  # a hold may end by time or by acceptance
        losing = self._losing(services, names)
        # A mass event needs a few services: in a fleet of one or two, any loss is "most".
        # Counting the fleet walks every service, so only when a few are losing servers.
        mass = len(losing) >= MASS_MIN_SERVICES and len(losing) > self.settings.max_service_loss * sum(
            1 for servers in self.published.values() if servers
        )
        accepted, self._accepted = self._accepted, False
        touched: set[str] = set()
        for name in names:
            current = list(services.get(name, ()))
            before = self.published.get(name, [])
            held = self._judge(name, before, current, name in losing and mass, now, accepted)
            publish = current + [s for s in held if s not in set(current)]
            if publish != before or (name in self.published) != (name in services or bool(held)):
                touched.add(name)
            if name in services or held:
                self.published[name] = publish
            else:
                self.published.pop(name, None)
        return self.published, touched

    def _losing(self, services: Mapping[str, Sequence[T]], names: Collection[str]) -> set[str]:
        """The names whose count of registered servers shrinks in this update."""
        out = set()
        for name in names:
            registered = self._registered(name)
            if registered and len(services.get(name, ())) < registered:
                out.add(name)
        return out

    def _registered(self, name: str) -> int:
        """How many of ``name``'s published servers the registry still had last time."""
        return len(self.published.get(name, ())) - len(self._held.get(name, ()))

    def _judge(
        self, name: str, before: list[T], current: list[T], mass: bool, now: float, accepted: bool
    ) -> dict[T, float]:
        """Update and return ``name``'s held servers (server -> deadline)."""
        held = self._held.pop(name, {})
        was_held = set(held)  # judged when they left: not removed again when their hold ends
        present = set(current)
        came_back = [s for s in held if s in present]
        for server in came_back:
            del held[server]
        if came_back and not held:
            log.info(kv("guard.released", service=name, reason="the servers came back"))
        expired = [s for s, deadline in held.items() if deadline <= now]
        for server in expired:
            del held[server]
        if expired:
            log.warning(kv("guard.expired", service=name, removed=len(expired), note="removal applied"))
        if accepted and held:
            log.warning(kv("guard.accepted", service=name, removed=len(held), note="removal applied"))
            held = {}
        grace = self.settings.grace_of(name)
        removed = [s for s in before if s not in present and s not in was_held]
        recent = {
            s: t
            for s, t in self._recent.pop(name, {}).items()
            if now - t < self.settings.window and s not in present and s not in held
        }
        # ``before`` includes held servers: judge against what was really registered, plus
        # what this window already removed.
        registered = len([s for s in before if s not in was_held]) + len(recent)
        lost = registered - len(current)
        reason = None
        if removed and lost > 0 and grace > 0 and not accepted:
            reason = (
                "every server of the service is gone"
                if not current
                else f"{lost} of {registered} servers gone within {self.settings.window:.0f} s"
                if lost > self.settings.max_server_loss * registered
                else "part of a mass removal across services"
                if mass
                else None
            )
        if reason is None:
            # Only a shrink counts toward the window: a server replaced by another is no loss.
            shrink = registered - len(recent) - len(current)  # this update's own loss
            recent.update(dict.fromkeys(removed[: max(shrink, 0)], now))
            if recent:
                self._recent[name] = recent
        else:
            deadline = now + grace
            held.update(dict.fromkeys(removed, deadline))
            # Removed earlier in the window: routed again, for what is left of their grace.
            held.update({s: t + grace for s, t in recent.items() if t + grace > now})
            log.warning(
                kv(
                    "guard.holding",
                    service=name,
                    servers=len(removed) + len(recent),
                    reason=reason,
                    grace_s=grace,
                    note="still routed until the grace ends, they return, or SIGUSR1 accepts",
                )
            )
        if held:
            self._held[name] = held
        return held


class Guards:
    """Every live ``PanicGuard`` of a daemon, so its timer and SIGUSR1 reach them all."""

    def __init__(self, settings: GuardSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._guards: weakref.WeakSet[PanicGuard[Hashable]] = weakref.WeakSet()

    def new(self) -> PanicGuard[T]:
        guard: PanicGuard[T] = PanicGuard(self.settings, clock=self.clock)
        self._guards.add(guard)  # type: ignore[arg-type]
        return guard

    def next_deadline(self) -> float | None:
        deadlines = [d for g in self._guards if (d := g.next_deadline()) is not None]
        return min(deadlines, default=None)

    def accept(self) -> None:
        for guard in self._guards:
            guard.accept()

    def held(self) -> dict[str, int]:
        """Held servers per service, over every guard (the largest count where two views hold)."""
        out: dict[str, int] = {}
        for guard in self._guards:
            for name, servers in guard.held().items():
                out[name] = max(out.get(name, 0), len(servers))
        return out

    def problem(self) -> str | None:
        """For ``/readyz``: which services are routed to servers the registry no longer has."""
        held = self.held()
        if not held:
            return None
        names = ",".join(sorted(held)[:5]) + (",..." if len(held) > 5 else "")
        return (
            f"the panic guard keeps {sum(held.values())} removed server(s) of {len(held)} service(s) "
            f"routed ({names}); kill -USR1 the daemon to accept the removal"
        )
