"""Sans-IO lease state machine for one registration: events in, actions and deadlines out.

Theory of operation
===================

The machine owns *when* to talk to the store; the driver (``agent.py``) owns *how*. The
driver loops::

    action = machine.next_action(now)
    Register / Refresh / Restore / Revoke  -> do the I/O, then machine.handle(<outcome event>, now)
    Wait(until)                            -> sleep until ``until`` (None: until some event arrives)
    Done(clean)                            -> stop

Health and shutdown arrive at any time (``HealthChanged``, ``Stop``), also while an I/O
action is in flight; they only change what the *next* action is, so an in-flight request
always gets its outcome reported and the machine never loses track of a lease.

The key is *wanted* while the service is healthy and no stop was requested. States::

    IDLE ──Register──> REGISTERING ──Registered──> REGISTERED ──Refresh──> REFRESHING
     ^                     │                        │  ^  │                 │
     │              RegisterFailed (backoff)        │  └──┼── Refreshed ────┤
     └─────────────────────┘                        │     └── RefreshFailed ┘ (retry, backoff)
     ^                                              │  ^  │
     │                                              │  │  └─ Refreshed(key_intact=False) ─> RESTORING
     │                                              │  └─── Restored ─────────────────────────┘
     │                                              │       (RestoreFailed: retry, backoff)
     ├──────── LeaseGone / presumed expired ────────┤
     │                                              │ not wanted
     └──────────── Revoked ──────── REVOKING <──────┘ ──RevokeFailed──> REGISTERED (retry)

    any state, once stopping and no lease is held (or the stop deadline passed) -> CLOSED

Timing rules (``ttl`` is what the store granted, which may exceed what was asked):

* refresh at ``ttl / 3`` after the request that (re)started the lease was *issued*, so a
  slow answer never makes us believe the lease lives longer than it does;
* the lease is presumed expired at ``issued + ttl``; after that we stop refreshing it and
  register afresh (a new lease and the key written again), because a refresh could only
  answer "lease lost" anyway;
* every failure (store down, timeout, refused) retries after a jittered exponential backoff
  (``Backoff``), capped low (2 s by default) so that the key is back within seconds of the
  store's return; a failed refresh is retried no later than the presumed expiry;
* ``LeaseGone`` means the store answered, so we re-register at once, without backoff;
* ``failures`` counts consecutive failed requests: any answer (a success, ``LeaseGone``)
  ends the streak, so the backoff starts again at its first step; a presumed expiry does
  not, since the store has still said nothing;
* on ``Stop`` we revoke (deleting the key) and retry a failed revoke until
  ``stop_timeout`` has passed; then we give up (``Done(clean=False)``) and let the TTL
  remove the key.

The key can vanish while its lease lives (``etcdctl del --prefix /services``, a backup put
back without leases). So every ``Refresh`` also checks the key, and reports it in
``Refreshed(key_intact=...)``; a missing key is written back on the same lease at once
(``Restore``), so it is back within one refresh interval. A key that is intact costs no
write: a put would cost a revision and wake every watcher. A failed restore is retried with
backoff, not interleaved with refreshes: without its key the lease serves nothing, and if
it lapses meanwhile we register afresh, which writes the key too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from muster.backoff import Backoff  # re-exported: part of the registration API

__all__ = [
    "Backoff",
    "Done",
    "Event",
    "HealthChanged",
    "LeaseGone",
    "LeaseMachine",
    "Refresh",
    "RefreshFailed",
    "Refreshed",
    "Register",
    "RegisterFailed",
    "Registered",
    "Restore",
    "RestoreFailed",
    "Restored",
    "Revoke",
    "RevokeFailed",
    "Revoked",
    "State",
    "Stop",
    "Wait",
]


class State(enum.Enum):
    IDLE = "idle"  # no lease held
    REGISTERING = "registering"  # register request in flight
    REGISTERED = "registered"  # lease held (presumed alive until its expiry)
    REFRESHING = "refreshing"  # keepalive request in flight
    RESTORING = "restoring"  # writing the vanished key back on the held lease
    REVOKING = "revoking"  # revoke request in flight
    CLOSED = "closed"  # stopped; nothing more to do


# -- actions (machine -> driver) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Register:
    """Write the key bound to a fresh lease; report ``Registered`` or ``RegisterFailed``."""


@dataclass(frozen=True, slots=True)
class Refresh:
    """Keep the lease alive, then check its key; report ``Refreshed``, ``RefreshFailed``, ``LeaseGone``."""


@dataclass(frozen=True, slots=True)
class Restore:
    """Write the key again on the held lease; report ``Restored``, ``RestoreFailed`` or ``LeaseGone``."""


@dataclass(frozen=True, slots=True)
class Revoke:
    """Delete the key (revoke the lease); report ``Revoked`` or ``RevokeFailed``."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do before ``until`` (a clock reading), or until an event if ``None``."""

    until: float | None


@dataclass(frozen=True, slots=True)
class Done:
    """Stopped. ``clean`` is False when the key may outlive us until its TTL runs out."""

    clean: bool


Action = Register | Refresh | Restore | Revoke | Wait | Done


# -- events (driver -> machine) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registered:
    ttl: float


@dataclass(frozen=True, slots=True)
class RegisterFailed:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Refreshed:
    """The lease was kept alive; ``key_intact`` is False when its key is gone or altered."""

    ttl: float
    key_intact: bool = True


@dataclass(frozen=True, slots=True)
class RefreshFailed:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LeaseGone:
    """The store answered that the lease (or the v2 key) no longer exists."""


@dataclass(frozen=True, slots=True)
class Restored:
    pass


@dataclass(frozen=True, slots=True)
class RestoreFailed:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Revoked:
    pass


@dataclass(frozen=True, slots=True)
class RevokeFailed:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HealthChanged:
    healthy: bool


@dataclass(frozen=True, slots=True)
class Stop:
    pass


Event = (
    Registered
    | RegisterFailed
    | Refreshed
    | RefreshFailed
    | LeaseGone
    | Restored
    | RestoreFailed
    | Revoked
    | RevokeFailed
    | HealthChanged
    | Stop
)


class LeaseMachine:
    """When to register, refresh and revoke one key; see the module docstring.

    ``healthy`` is the initial health: pass ``False`` when health checks must pass before
    the key is written. ``stop_timeout`` bounds how long revocation is retried after
    ``Stop``. The machine never reads a clock: every call takes ``now``.
    """

    def __init__(
        self,
        *,
        healthy: bool = True,
        stop_timeout: float = 5.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.state = State.IDLE
        self.healthy = healthy
        self.stopping = False
        self.stop_timeout = stop_timeout
        self.backoff = backoff if backoff is not None else Backoff()
        self.ttl: float | None = None  # as granted by the store
        self.failures = 0  # consecutive failed requests, drives the backoff
        self.expires_at: float | None = None  # presumed expiry of the held lease
        self.refresh_at: float | None = None  # when the held lease is due for a refresh
        self.next_at: float | None = None  # when the next request is due (None: now)
        self.key_missing = False  # the last refresh found the key gone under a live lease
        self.stop_deadline: float | None = None
        self._issued_at = 0.0

    def __repr__(self) -> str:
        return (
            f"<LeaseMachine state={self.state.value} healthy={self.healthy} stopping={self.stopping}"
            f" ttl={self.ttl} failures={self.failures} next_at={self.next_at}"
            f" expires_at={self.expires_at} key_missing={self.key_missing}>"
        )

    @property
    def wanted(self) -> bool:
        """Whether the key should exist right now."""
        return self.healthy and not self.stopping

    def is_registered(self, now: float) -> bool:
        """Whether the key is in the store: a lease we believe alive at ``now`` holds it."""
        held = self.state in (State.REGISTERED, State.REFRESHING, State.RESTORING, State.REVOKING)
        return held and not self.key_missing and self.expires_at is not None and now < self.expires_at

    # -- the driver asks what to do ------------------------------------------------------

    def next_action(self, now: float) -> Action:
        """The next thing to do at ``now``; an I/O action puts the machine in flight.

        While a request is in flight, returns ``Wait(None)``: the driver must first report
        its outcome with ``handle``.
        """
        match self.state:
            case State.CLOSED:
                return Done(clean=True)
            case State.REGISTERING | State.REFRESHING | State.RESTORING | State.REVOKING:
                return Wait(None)
            case State.IDLE:
                return self._idle_action(now)
            case State.REGISTERED:
                return self._registered_action(now)
        raise AssertionError(self.state)  # pragma: no cover

    def _idle_action(self, now: float) -> Action:
        if self.stopping:
            self.state = State.CLOSED
            return Done(clean=True)
        if not self.healthy:
            return Wait(None)
        if self.next_at is not None and now < self.next_at:
            return Wait(self.next_at)
        return self._issue(State.REGISTERING, Register(), now)

    def _registered_action(self, now: float) -> Action:
        assert self.expires_at is not None
        if now >= self.expires_at:
            # Presumed gone: nothing left to refresh or revoke. Re-register at once (the
            # failure count is kept, so a store that is still down keeps backing off).
            self._drop_lease()
            self.next_at = None
            return self._idle_action(now)
        if self.stop_deadline is not None and now >= self.stop_deadline:  # set once stopping
            self.state = State.CLOSED
            return Done(clean=False)
        due = self.next_at is None or now >= self.next_at
        if due:
            if not self.wanted:
                return self._issue(State.REVOKING, Revoke(), now)
            if self.key_missing:
                return self._issue(State.RESTORING, Restore(), now)
            return self._issue(State.REFRESHING, Refresh(), now)
        assert self.next_at is not None
        until = min(self.next_at, self.expires_at)
        if self.stop_deadline is not None:
            until = min(until, self.stop_deadline)
        return Wait(until)

    def _issue(self, state: State, action: Register | Refresh | Restore | Revoke, now: float) -> Action:
        self.state = state
        self._issued_at = now
        return action

    def _drop_lease(self) -> None:
        self.state = State.IDLE
        self.expires_at = None
        self.refresh_at = None
        self.ttl = None
        self.key_missing = False

    # -- the driver reports what happened -------------------------------------------------

    def handle(self, event: Event, now: float) -> None:
        """Feed one event. Outcome events must match the request in flight."""
        match event:
            case HealthChanged(healthy=healthy):
                self._on_health(healthy, now)
            case Stop():
                self._on_stop(now)
            case Registered(ttl=ttl):
                self._expect(State.REGISTERING, event)
                self._start_lease(ttl, key_intact=True)
            case RegisterFailed():
                self._expect(State.REGISTERING, event)
                self.state = State.IDLE
                self._fail(now)
            case Refreshed(ttl=ttl, key_intact=key_intact):
                self._expect(State.REFRESHING, event)
                self._start_lease(ttl, key_intact=key_intact)
            case RefreshFailed():
                self._expect(State.REFRESHING, event)
                self._retry_held(now)
            case Restored():
                self._expect(State.RESTORING, event)
                self.state = State.REGISTERED
                self.key_missing = False
                self.failures = 0
                self._schedule(now)
            case RestoreFailed():
                self._expect(State.RESTORING, event)
                self._retry_held(now)
            case LeaseGone():
                if self.state not in (State.REFRESHING, State.RESTORING, State.REVOKING):
                    raise RuntimeError(f"{event!r} while {self.state.value}: no lease in use")
                self._lease_gone()
            case Revoked():
                self._expect(State.REVOKING, event)
                self._lease_gone()
            case RevokeFailed():
                self._expect(State.REVOKING, event)
                self._retry_held(now)
            case _:  # pragma: no cover - typing makes this unreachable
                raise TypeError(f"not a lease event: {event!r}")  # pragma: no mutate

    def _expect(self, state: State, event: Event) -> None:
        if self.state is not state:
            raise RuntimeError(f"{event!r} while {self.state.value}, expected {state.value}")

    def _start_lease(self, ttl: float, *, key_intact: bool) -> None:
        if ttl <= 0:
            raise ValueError(f"a live lease needs a positive TTL, got {ttl}")
        self.state = State.REGISTERED
        self.ttl = ttl
        self.failures = 0
        self.expires_at = self._issued_at + ttl
        self.refresh_at = self._issued_at + ttl / 3
        self.key_missing = not key_intact
        self._schedule(self._issued_at)

    def _schedule(self, now: float) -> None:
        # Revoke at once when health failed or stop came while a request was in flight, and
        # write a missing key back at once; otherwise refresh on time.
        assert self.refresh_at is not None
        urgent = self.key_missing or not self.wanted
        self.next_at = now if urgent else self.refresh_at

    def _retry_held(self, now: float) -> None:
        # A failed request on a held lease: retry after backoff. No cap needed here: the
        # REGISTERED state never waits past the presumed expiry, where it registers afresh.
        self.state = State.REGISTERED
        self._fail(now)

    def _lease_gone(self) -> None:
        self._drop_lease()
        # The store answered, so it is up: act again at once, without backoff.
        self.failures = 0
        self.next_at = None

    def _fail(self, now: float) -> None:
        self.failures += 1
        self.next_at = now + self.backoff.delay(self.failures)

    def _on_health(self, healthy: bool, now: float) -> None:
        if healthy == self.healthy:
            return
        self.healthy = healthy
        if self.state in (State.IDLE, State.REGISTERED):
            # Act on the change now rather than at the next refresh or retry.
            self.next_at = now

    def _on_stop(self, now: float) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stop_deadline = now + self.stop_timeout
        if self.state is State.REGISTERED:
            self.next_at = now
