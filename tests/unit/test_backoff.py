"""The one backoff rule: doubling from base to cap, jittered only when asked."""

from __future__ import annotations

import random

import pytest

from muster.backoff import Backoff
from muster.registration import lease


def test_exact_delays_double_up_to_the_cap_and_reset() -> None:
    backoff = Backoff(0.05, 1.0, jitter=False)
    assert not backoff.failing
    assert [backoff.next() for _ in range(7)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff.failing
    backoff.reset()
    assert not backoff.failing
    assert backoff.next() == 0.05


def test_jittered_delays_stay_within_half_to_whole_and_vary() -> None:
    backoff = Backoff(0.1, 2.0, rng=random.Random(7))
    draws = [backoff.delay(3) for _ in range(200)]
    assert all(0.2 <= d <= 0.4 for d in draws)
    assert len(set(draws)) > 100


def test_a_day_long_outage_does_not_overflow() -> None:
    assert Backoff(0.1, 2.0, jitter=False).delay(10**6) == 2.0


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_nonsense_bounds_are_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="0 < base <= cap"):
        Backoff(base, cap)


def test_the_registration_api_still_exports_it() -> None:
    assert lease.Backoff is Backoff
