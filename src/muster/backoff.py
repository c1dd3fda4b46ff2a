"""Exponential backoff: the one rule for how long every retry loop of muster waits.

``Backoff.delay(n)`` is the pure rule (attempt ``n`` waits ``min(cap, base * 2**(n-1))``,
jittered into ``[d/2, d]`` when asked); ``next()`` and ``reset()`` keep the attempt count for
a loop that retries until something succeeds. Jitter is for many clients hitting one server
(registration agents after an etcd restart); a single daemon's loops wait exactly, so their
log lines and tests can name the delay.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays doubling from ``base`` up to ``cap``; ``jitter`` draws each in ``[d/2, d]``."""

    def __init__(
        self, base: float = 0.1, cap: float = 2.0, *, jitter: bool = True, rng: random.Random | None = None
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self.attempt = 0  # failures since the last reset(), for next()
        self._rng = rng if rng is not None else random.Random()

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (1 for the first)."""
        # Cap the exponent too, so a day-long outage cannot overflow the float.
        ceiling = min(self.cap, self.base * 2 ** min(max(attempt - 1, 0), 60))
        return self._rng.uniform(ceiling / 2, ceiling) if self.jitter else ceiling

    def next(self) -> float:
        """Count one more failure and return the wait before the next try."""
        self.attempt += 1
        return self.delay(self.attempt)

    @property
    def failing(self) -> bool:
        """Whether a failure was counted since the last ``reset()``."""
        return self.attempt > 0

    def reset(self) -> None:
        """A success: the next failure waits ``base`` again."""
        self.attempt = 0

    def __repr__(self) -> str:
        return f"Backoff(base={self.base}, cap={self.cap}, jitter={self.jitter})"
