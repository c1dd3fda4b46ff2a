"""The sans-IO lease machine, driven with a fake clock: every timing rule, no real waiting."""

from __future__ import annotations

import random

import pytest

from muster.registration.lease import (
    Backoff,
    Done,
    HealthChanged,
    LeaseLost,
    LeaseMachine,
    Refresh,
    Refreshed,
    RefreshFailed,
    Register,
    Registered,
    RegisterFailed,
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
    m.handle(LeaseLost(), 3.1)
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
    m.handle(LeaseLost(), 1.1)
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
        LeaseLost(),
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
    assert repr(b) == "Backoff(base=0.5, cap=4.0)"
    with pytest.raises(ValueError):
        Backoff(base=0, cap=1)
    with pytest.raises(ValueError):
        Backoff(base=2, cap=1)


def test_repr_shows_the_state() -> None:
    m = machine()
    registered(m)
    assert "state=registered" in repr(m) and "ttl=9.0" in repr(m)
