"""The sans-IO lease machine, driven with a fake clock: every timing rule, no real waiting."""

from __future__ import annotations

import copy
import dataclasses
import random

import pytest

from muster.registration.lease import (
    Backoff,
    Done,
    HealthChanged,
    LeaseGone,
    LeaseMachine,
    Refresh,
    Refreshed,
    RefreshFailed,
    Register,
    Registered,
    RegisterFailed,
    Restore,
    Restored,
    RestoreFailed,
    Revoke,
    Revoked,
    RevokeFailed,
    State,
    Stop,
    Wait,
)


class MaxRandom(random.Random):
    """Jitter that always picks the top of the range, so delays are exact in tests."""

    def uniform(self, a: float, b: float) -> float:
        return b


def machine(**kw: object) -> LeaseMachine:
    kw.setdefault("backoff", Backoff(base=0.1, cap=2.0, rng=MaxRandom()))
    return LeaseMachine(**kw)  # type: ignore[arg-type]


def registered(m: LeaseMachine, now: float = 0.0, ttl: float = 9.0) -> None:
    assert m.next_action(now) == Register()
    m.handle(Registered(ttl), now)


def test_registers_at_once_then_refreshes_at_a_third_of_the_ttl() -> None:
    m = machine()
    assert m.next_action(0.0) == Register()
    assert m.state is State.REGISTERING
    assert m.next_action(0.5) == Wait(None)  # in flight: nothing else to do
    m.handle(Registered(9.0), 0.5)
    # Timed from when the request was issued (0.0), not when it was answered.
    assert m.next_action(0.5) == Wait(3.0)
    assert m.is_registered(0.5)
    assert m.next_action(3.0) == Refresh()
    m.handle(Refreshed(9.0), 3.2)
    assert m.next_action(3.2) == Wait(6.0)
    assert m.expires_at == 12.0


def test_granted_ttl_longer_than_asked_is_used() -> None:
    m = machine()
    assert m.next_action(0.0) == Register()
    m.handle(Registered(30.0), 0.0)
    assert m.next_action(0.0) == Wait(10.0)


def test_waits_for_health_before_registering() -> None:
    m = machine(healthy=False)
    assert m.next_action(0.0) == Wait(None)
    m.handle(HealthChanged(True), 4.0)
    assert m.next_action(4.0) == Register()


def test_register_failure_backs_off_exponentially_up_to_the_cap() -> None:
    m = machine()
    now = 0.0
    delays = []
    for _ in range(7):
        assert m.next_action(now) == Register()
        m.handle(RegisterFailed("down"), now)
        action = m.next_action(now)
        assert isinstance(action, Wait) and action.until is not None
        delays.append(round(action.until - now, 3))
        assert m.next_action(action.until - 0.001) == action  # not due yet
        now = action.until
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert m.next_action(now) == Register()
    m.handle(Registered(6.0), now)
    assert m.failures == 0


def test_refresh_failure_retries_with_backoff_then_reregisters_after_expiry() -> None:
    m = machine(backoff=Backoff(base=1.0, cap=2.0, rng=MaxRandom()))
    registered(m, ttl=6.0)  # expires at 6, refresh at 2
    assert m.next_action(2.0) == Refresh()
    m.handle(RefreshFailed("timeout"), 2.5)
    assert m.next_action(2.5) == Wait(3.5)
    assert m.next_action(3.5) == Refresh()
    m.handle(RefreshFailed("timeout"), 4.0)
    assert m.next_action(4.0) == Wait(6.0)  # 4 + 2 = 6: retry no later than expiry
    assert m.next_action(5.9) == Wait(6.0)
    # Presumed expired: register afresh (a new lease, the key written again).
    assert m.next_action(6.0) == Register()
    assert m.failures == 2  # still backing off if the store stays down
    m.handle(RegisterFailed("down"), 6.0)
    assert m.next_action(6.0) == Wait(8.0)


def test_retry_is_capped_by_expiry_when_backoff_is_long() -> None:
    m = machine(backoff=Backoff(base=5.0, cap=5.0, rng=MaxRandom()))
    registered(m, ttl=3.0)
    assert m.next_action(1.0) == Refresh()
    m.handle(RefreshFailed(), 1.0)
    assert m.next_action(1.0) == Wait(3.0)


def test_lease_lost_reregisters_at_once_without_backoff() -> None:
    m = machine()
    registered(m)
    assert m.next_action(3.0) == Refresh()
    m.handle(LeaseGone(), 3.1)
    assert m.state is State.IDLE
    assert not m.is_registered(3.1)
    assert m.next_action(3.1) == Register()


def test_unhealthy_revokes_at_once_and_recovery_registers_again() -> None:
    m = machine()
    registered(m)
    m.handle(HealthChanged(False), 1.0)
    assert m.next_action(1.0) == Revoke()
    m.handle(Revoked(), 1.1)
    assert m.state is State.IDLE
    assert m.next_action(1.1) == Wait(None)
    m.handle(HealthChanged(True), 7.0)
    assert m.next_action(7.0) == Register()


def test_repeated_health_reports_change_nothing() -> None:
    m = machine()
    registered(m)
    m.handle(HealthChanged(True), 1.0)
    assert m.next_action(1.0) == Wait(3.0)


def test_health_failure_during_refresh_revokes_after_it_answers() -> None:
    m = machine()
    registered(m)
    assert m.next_action(3.0) == Refresh()
    m.handle(HealthChanged(False), 3.05)
    m.handle(Refreshed(9.0), 3.1)
    assert m.next_action(3.1) == Revoke()


def test_unhealthy_revoke_failing_retries_until_expiry() -> None:
    m = machine(backoff=Backoff(base=2.0, cap=2.0, rng=MaxRandom()))
    registered(m, ttl=3.0)
    m.handle(HealthChanged(False), 0.5)
    assert m.next_action(0.5) == Revoke()
    m.handle(RevokeFailed("down"), 0.5)
    assert m.next_action(0.5) == Wait(2.5)
    assert m.next_action(2.5) == Revoke()
    m.handle(RevokeFailed("down"), 2.5)
    assert m.next_action(2.5) == Wait(3.0)  # min(retry at 4.5, expiry at 3)
    assert m.next_action(3.0) == Wait(None)  # the TTL removed it; wait for health
    assert m.state is State.IDLE


def test_stop_revokes_then_is_done_cleanly() -> None:
    m = machine()
    registered(m)
    m.handle(Stop(), 1.0)
    assert not m.wanted
    assert m.next_action(1.0) == Revoke()
    m.handle(Revoked(), 1.2)
    assert m.next_action(1.2) == Done(clean=True)
    assert m.state is State.CLOSED
    assert m.next_action(99.0) == Done(clean=True)


def test_stop_while_idle_is_done_at_once() -> None:
    m = machine(healthy=False)
    m.handle(Stop(), 0.0)
    m.handle(Stop(), 0.1)  # idempotent
    assert m.next_action(0.1) == Done(clean=True)


def test_stop_during_register_revokes_the_new_lease() -> None:
    m = machine()
    assert m.next_action(0.0) == Register()
    m.handle(Stop(), 0.1)
    m.handle(Registered(9.0), 0.2)
    assert m.next_action(0.2) == Revoke()
    m.handle(Revoked(), 0.3)
    assert m.next_action(0.3) == Done(clean=True)


def test_stop_during_failed_register_is_done() -> None:
    m = machine()
    assert m.next_action(0.0) == Register()
    m.handle(Stop(), 0.1)
    m.handle(RegisterFailed("down"), 0.2)
    assert m.next_action(0.2) == Done(clean=True)


def test_revoke_failing_on_stop_retries_until_the_stop_timeout() -> None:
    m = machine(stop_timeout=1.0, backoff=Backoff(base=0.4, cap=0.4, rng=MaxRandom()))
    registered(m, ttl=30.0)
    m.handle(Stop(), 5.0)
    assert m.next_action(5.0) == Revoke()
    m.handle(RevokeFailed("down"), 5.0)
    assert m.next_action(5.0) == Wait(5.4)
    assert m.next_action(5.4) == Revoke()
    m.handle(RevokeFailed("down"), 5.8)
    assert m.next_action(5.8) == Wait(6.0)  # capped by the stop deadline
    assert m.next_action(6.0) == Done(clean=False)
    assert m.state is State.CLOSED


def test_revoke_of_a_lost_lease_counts_as_revoked() -> None:
    m = machine()
    registered(m)
    m.handle(Stop(), 1.0)
    assert m.next_action(1.0) == Revoke()
    m.handle(LeaseGone(), 1.1)
    assert m.next_action(1.1) == Done(clean=True)


def test_stop_after_presumed_expiry_needs_no_revoke() -> None:
    m = machine()
    registered(m, ttl=3.0)
    m.handle(Stop(), 10.0)
    assert m.next_action(10.0) == Done(clean=True)


@pytest.mark.parametrize(
    "event",
    [
        Registered(1.0),
        RegisterFailed(),
        Refreshed(1.0),
        RefreshFailed(),
        LeaseGone(),
        Restored(),
        RestoreFailed(),
        Revoked(),
        RevokeFailed(),
    ],
)
def test_outcome_without_a_request_in_flight_is_a_bug(event: object) -> None:
    m = machine()
    with pytest.raises(RuntimeError, match="while idle"):
        m.handle(event, 0.0)  # type: ignore[arg-type]


def test_zero_ttl_is_not_a_lease() -> None:
    m = machine()
    assert m.next_action(0.0) == Register()
    with pytest.raises(ValueError, match="positive TTL"):
        m.handle(Registered(0), 0.0)


def test_backoff_jitter_stays_in_range_and_validates() -> None:
    b = Backoff(base=0.5, cap=4.0, rng=random.Random(7))
    for attempt in range(1, 80):
        ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= b.delay(attempt) <= ceiling
    assert repr(b) == "Backoff(base=0.5, cap=4.0, jitter=True)"
    with pytest.raises(ValueError):
        Backoff(base=0, cap=1)
    with pytest.raises(ValueError):
        Backoff(base=2, cap=1)


def test_repr_shows_the_state() -> None:
    m = machine()
    registered(m)
    assert "state=registered" in repr(m) and "ttl=9.0" in repr(m)


# -- a key that vanished while its lease lives -----------------------------------------------


def missing_key(m: LeaseMachine, ttl: float = 9.0) -> None:
    """Registered at 0, refreshed at ttl/3, and that refresh found the key gone."""
    registered(m, ttl=ttl)
    assert m.next_action(ttl / 3) == Refresh()
    m.handle(Refreshed(ttl, key_intact=False), ttl / 3)


def test_missing_key_is_written_back_on_the_same_lease_at_once() -> None:
    m = machine()
    missing_key(m)
    assert m.key_missing and not m.is_registered(3.0)
    assert m.expires_at == 12.0  # the lease itself was refreshed
    assert m.next_action(3.0) == Restore()
    assert m.state is State.RESTORING
    assert m.next_action(3.1) == Wait(None)
    assert not m.is_registered(3.1)
    m.handle(Restored(), 3.2)
    assert m.is_registered(3.2) and not m.key_missing
    # The refresh stays on the lease's schedule (issued at 3, due a third of 9 later).
    assert m.next_action(3.2) == Wait(6.0)
    assert m.next_action(6.0) == Refresh()
    m.handle(Refreshed(9.0), 6.0)
    assert m.next_action(6.0) == Wait(9.0)


def test_restore_slower_than_the_refresh_interval_refreshes_at_once() -> None:
    m = machine()
    missing_key(m)
    assert m.next_action(3.0) == Restore()
    m.handle(Restored(), 6.5)
    assert m.next_action(6.5) == Refresh()


def test_an_intact_key_costs_no_write() -> None:
    m = machine()
    registered(m)
    for n in range(1, 4):
        assert m.next_action(3.0 * n) == Refresh()
        m.handle(Refreshed(9.0, key_intact=True), 3.0 * n)
        assert not m.key_missing
    assert m.next_action(9.0) == Wait(12.0)


def test_restore_failing_retries_with_backoff_until_expiry_then_registers_afresh() -> None:
    m = machine(backoff=Backoff(base=1.0, cap=2.0, rng=MaxRandom()))
    missing_key(m, ttl=6.0)  # refreshed at 2: expires at 8
    assert m.next_action(2.0) == Restore()
    m.handle(RestoreFailed("down"), 2.0)
    assert m.failures == 1 and m.key_missing
    assert m.next_action(2.0) == Wait(3.0)
    assert m.next_action(3.0) == Restore()  # not a refresh: the lease is worth nothing without its key
    m.handle(RestoreFailed("down"), 3.0)
    assert m.next_action(3.0) == Wait(5.0)
    assert m.next_action(5.0) == Restore()
    m.handle(RestoreFailed("down"), 7.0)
    assert m.next_action(7.0) == Wait(8.0)  # retry at 9 capped by the presumed expiry
    assert m.next_action(8.0) == Register()
    assert not m.key_missing and m.refresh_at is None
    m.handle(Registered(6.0), 8.0)
    assert m.is_registered(8.0) and m.failures == 0
    assert m.next_action(8.0) == Wait(10.0)


def test_restored_resets_the_failure_count() -> None:
    m = machine()
    missing_key(m)
    assert m.next_action(3.0) == Restore()
    m.handle(RestoreFailed("down"), 3.0)
    assert m.next_action(3.1) == Restore()
    m.handle(Restored(), 3.1)
    assert m.failures == 0


def test_lease_lost_while_restoring_registers_afresh_at_once() -> None:
    m = machine()
    missing_key(m)
    assert m.next_action(3.0) == Restore()
    m.handle(LeaseGone(), 3.1)
    assert m.state is State.IDLE and not m.key_missing
    assert m.next_action(3.1) == Register()


def test_a_missing_key_is_not_written_back_once_unwanted() -> None:
    m = machine()
    registered(m)
    assert m.next_action(3.0) == Refresh()
    m.handle(HealthChanged(False), 3.05)
    m.handle(Refreshed(9.0, key_intact=False), 3.1)
    assert m.next_action(3.1) == Revoke()  # the lease goes, never the key back


def test_health_failure_during_restore_revokes_after_it_answers() -> None:
    m = machine()
    missing_key(m)
    assert m.next_action(3.0) == Restore()
    m.handle(HealthChanged(False), 3.05)
    m.handle(Restored(), 3.1)
    assert m.next_action(3.1) == Revoke()


def test_stop_during_restore_revokes_then_is_done() -> None:
    m = machine()
    missing_key(m)
    assert m.next_action(3.0) == Restore()
    m.handle(Stop(), 3.05)
    m.handle(Restored(), 3.1)
    assert m.next_action(3.1) == Revoke()
    m.handle(Revoked(), 3.2)
    assert m.next_action(3.2) == Done(clean=True)


# -- the failure count (issue 17): consecutive failures only ---------------------------------


def test_failure_count_restarts_after_a_lost_lease() -> None:
    """The store answered "lease lost", so it is up: a new streak starts at the first step."""
    m = machine()
    registered(m)
    assert m.next_action(3.0) == Refresh()
    m.handle(RefreshFailed("timeout"), 3.0)
    assert m.next_action(3.1) == Refresh()
    m.handle(RefreshFailed("timeout"), 3.1)
    assert m.failures == 2
    assert m.next_action(3.5) == Refresh()
    m.handle(LeaseGone(), 3.5)
    assert m.failures == 0
    assert m.next_action(3.5) == Register()
    m.handle(RegisterFailed("down"), 3.5)
    assert m.next_action(3.5) == Wait(3.6)  # 0.1: the first step again, not the third (0.4)


def test_failure_count_restarts_after_a_revoke() -> None:
    m = machine()
    registered(m)
    m.handle(HealthChanged(False), 1.0)
    assert m.next_action(1.0) == Revoke()
    m.handle(RevokeFailed("down"), 1.0)
    assert m.next_action(1.1) == Revoke()
    m.handle(Revoked(), 1.1)
    assert m.failures == 0


def test_revoke_failing_retries_after_backoff() -> None:
    m = machine(backoff=Backoff(base=1.0, cap=1.0, rng=MaxRandom()))
    registered(m, ttl=30.0)
    m.handle(HealthChanged(False), 1.0)
    assert m.next_action(1.0) == Revoke()
    m.handle(RevokeFailed("down"), 1.5)
    assert m.state is State.REGISTERED and m.failures == 1
    assert m.next_action(1.5) == Wait(2.5)
    assert m.next_action(2.5) == Revoke()


# -- the small print: values, defaults and messages -----------------------------------------

ACTIONS_AND_EVENTS = [
    Register(),
    Refresh(),
    Restore(),
    Revoke(),
    Wait(1.0),
    Done(clean=True),
    Registered(1.0),
    RegisterFailed(),
    Refreshed(1.0),
    RefreshFailed(),
    LeaseGone(),
    Restored(),
    RestoreFailed(),
    Revoked(),
    RevokeFailed(),
    HealthChanged(True),
    Stop(),
]


@pytest.mark.parametrize("value", ACTIONS_AND_EVENTS, ids=lambda v: type(v).__name__)
def test_actions_and_events_are_immutable_slotted_values(value: object) -> None:
    assert value == copy.copy(value) and hash(value) == hash(copy.copy(value))
    assert not hasattr(value, "__dict__")  # slots: cheap to make one per request
    fields = getattr(value, "__dataclass_fields__", {})
    for name in fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, name, None)


def test_failure_reasons_default_to_empty_and_health_is_compared() -> None:
    assert RegisterFailed() == RegisterFailed("") and RegisterFailed().reason == ""
    assert RefreshFailed().reason == RestoreFailed().reason == RevokeFailed().reason == ""
    assert Refreshed(1.0) == Refreshed(1.0, key_intact=True) != Refreshed(1.0, key_intact=False)
    assert HealthChanged(True) != HealthChanged(False)


def test_repr_of_a_fresh_machine() -> None:
    assert repr(machine()) == (
        "<LeaseMachine state=idle healthy=True stopping=False ttl=None failures=0 next_at=None"
        " expires_at=None key_missing=False>"
    )


def test_states_are_named_in_repr_and_errors() -> None:
    m = machine()
    assert m.next_action(0.0) == Register()
    assert "state=registering" in repr(m)
    with pytest.raises(
        RuntimeError, match=r"Refreshed\(ttl=1.0, key_intact=True\) while registering, expected refreshing"
    ):
        m.handle(Refreshed(1.0), 0.0)
    m.handle(Registered(9.0), 0.0)
    assert m.next_action(3.0) == Refresh()
    assert "state=refreshing" in repr(m)
    m.handle(Refreshed(9.0, key_intact=False), 3.0)
    assert m.next_action(3.0) == Restore()
    assert "state=restoring" in repr(m) and "key_missing=True" in repr(m)
    with pytest.raises(RuntimeError, match="while restoring, expected revoking"):
        m.handle(Revoked(), 3.0)
    m.handle(Stop(), 3.0)
    m.handle(Restored(), 3.0)
    assert m.next_action(3.0) == Revoke()
    assert "state=revoking" in repr(m)
    m.handle(Revoked(), 3.0)
    assert m.next_action(3.0) == Done(clean=True)
    assert "state=closed" in repr(m) and "stopping=True" in repr(m)


def test_lease_lost_while_registering_is_a_bug() -> None:
    m = machine()
    assert m.next_action(0.0) == Register()
    with pytest.raises(RuntimeError, match="LeaseGone.. while registering: no lease in use"):
        m.handle(LeaseGone(), 0.0)


def test_a_dropped_lease_leaves_nothing_behind() -> None:
    m = machine()
    missing_key(m)
    assert m.next_action(3.0) == Restore()
    m.handle(LeaseGone(), 3.0)
    assert (m.state, m.ttl, m.expires_at, m.refresh_at, m.next_at, m.key_missing) == (
        State.IDLE,
        None,
        None,
        None,
        None,
        False,
    )


def test_defaults_stop_timeout_five_seconds_and_backoff_capped_at_two() -> None:
    assert repr(Backoff()) == "Backoff(base=0.1, cap=2.0, jitter=True)"
    m = LeaseMachine(backoff=Backoff(rng=MaxRandom()))
    registered(m, ttl=60.0)
    m.handle(Stop(), 10.0)
    now, delays = 10.0, []
    while (action := m.next_action(now)) == Revoke():
        m.handle(RevokeFailed("down"), now)
        wait = m.next_action(now)
        assert isinstance(wait, Wait) and wait.until is not None
        delays.append(round(wait.until - now, 3))
        now = wait.until
    assert action == Done(clean=False) and now == 15.0
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 1.9]  # the last one cut by the stop deadline


def test_backoff_rejects_bad_bounds_with_a_message() -> None:
    with pytest.raises(ValueError, match=r"backoff needs 0 < base <= cap, got base=3 cap=1"):
        Backoff(base=3, cap=1)


def test_a_fresh_machine_holds_nothing() -> None:
    m = LeaseMachine()
    assert (m.state, m.healthy, m.stopping, m.failures, m.key_missing) == (State.IDLE, True, False, 0, False)
    assert (m.ttl, m.expires_at, m.refresh_at, m.next_at, m.stop_deadline) == (None, None, None, None, None)
    assert not m.is_registered(0.0)


def test_registration_ends_exactly_at_the_presumed_expiry() -> None:
    m = machine()
    registered(m, ttl=3.0)
    assert m.is_registered(2.999)
    assert not m.is_registered(3.0)  # as next_action presumes it expired at 3.0
    assert m.next_action(3.0) == Register()


def test_any_positive_ttl_is_a_lease() -> None:
    m = machine()
    assert m.next_action(0.0) == Register()
    m.handle(Registered(0.9), 0.0)  # v2 TTLs go down to 1 s; a granted TTL is whatever etcd says
    assert m.next_action(0.0) == Wait(0.3)
    assert m.next_action(0.3) == Refresh()
    with pytest.raises(ValueError, match="positive TTL, got -1"):
        m.handle(Refreshed(-1), 0.3)


def test_a_second_stop_keeps_the_first_deadline() -> None:
    m = machine(stop_timeout=1.0)
    registered(m, ttl=30.0)
    m.handle(Stop(), 5.0)
    assert m.next_action(5.0) == Revoke()
    m.handle(Stop(), 5.5)
    m.handle(RevokeFailed("down"), 5.5)
    assert m.stop_deadline == 6.0
    assert m.next_action(6.0) == Done(clean=False)
