"""``HostResolver`` at its edges: failed submits, empty answers, crashing lookups, a full table.

Each test closes a gap a mutation run (``scripts/mutate``) found in ``services.py``. Time is
a fake clock; lookups run inside ``submit`` unless a test says otherwise.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from muster.registry.index import HostResolver

UP = ("10.0.0.1",)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Inline(concurrent.futures.Executor):
    """Runs each lookup inside ``submit``; ``refuse`` names hosts whose submit fails once."""

    def __init__(self, refuse: Sequence[str] = ()) -> None:
        self.refuse = set(refuse)
        self.submitted: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        if args[0] in self.refuse:
            self.refuse.discard(args[0])
            raise RuntimeError("cannot schedule new futures after shutdown")
        self.submitted.append(args[0])
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


def make(
    lookup: Callable[[str], Sequence[str]], pool: Inline | None = None, **options: Any
) -> tuple[HostResolver, Inline, Clock]:
    clock = Clock()
    pool = pool or Inline()
    options.setdefault("timeout", 5.0)
    return HostResolver(executor=pool, lookup=lookup, clock=clock, **options), pool, clock


def test_a_failed_submit_leaves_the_name_free_for_the_next_caller() -> None:
    resolver, pool, _ = make(lambda host: list(UP), Inline(refuse=["b.example"]))
    with pytest.raises(RuntimeError, match="shutdown"):
        resolver(["a.example", "b.example"])
    assert resolver(["b.example"]) == {"b.example": UP}
    assert pool.submitted == ["a.example", "b.example"]


def test_an_unsubscribed_callback_hears_nothing_more() -> None:
    answers = {"a.example": ["10.0.0.1"]}
    resolver, _, clock = make(lambda host: answers[host], ttl=30.0)
    told: list[str] = []
    unsubscribe = resolver.subscribe(told.append)
    resolver(["a.example"])
    unsubscribe()
    answers["a.example"] = ["10.0.0.2"]
    clock.now += 31
    resolver(["a.example"])  # stale: refreshed in the background, with a new answer
    assert resolver(["a.example"]) == {"a.example": ("10.0.0.2",)}
    assert told == []


def test_an_answer_with_no_usable_address_drops_the_name_a_crashing_lookup_keeps_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="muster")
    answers: list[list[str] | Exception] = [
        list(UP),
        ["0.0.0.0"],  # no usable address: the name is gone
        list(UP),
        RuntimeError("bug"),  # a crashing lookup: the last answer is kept
        list(UP),
        OSError(),  # a resolver failure: kept too
    ]

    def lookup(host: str) -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    resolver, _, clock = make(lookup, ttl=30.0, negative_ttl=5.0)
    expected = [UP, None, UP, UP, UP, UP]
    for want in expected:
        got = resolver(["a.example"])
        assert got == ({"a.example": want} if want else {})
        clock.now += 31
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("services.host.unresolved")]
    assert len(failed) == 3
    assert 'error="no address" using="nothing: its entries are left out"' in failed[0]
    assert 'error="RuntimeError: bug"' in failed[1]
    assert "error=OSError " in failed[2]  # an error with no message is named by its type


def test_good_answers_log_no_failure_and_a_changed_one_logs_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="muster")
    answers = [["10.0.0.1"], ["10.0.0.1"], ["10.0.0.2"]]
    resolver, _, clock = make(lambda host: answers.pop(0), ttl=30.0)
    for _ in range(3):
        resolver(["a.example"])
        clock.now += 31
    events = [r.getMessage().split()[0] for r in caplog.records]
    assert events == ["services.host.changed"]
    assert caplog.records[0].levelno == logging.DEBUG


def test_a_caller_that_got_its_answer_in_time_logs_nothing_late(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="muster")
    resolver, _, _ = make(lambda host: list(UP))
    assert resolver(["a.example", "b.example"]) == {"a.example": UP, "b.example": UP}
    assert caplog.records == []


def test_a_name_goes_stale_at_its_stale_time_not_after() -> None:
    # negative_ttl has no jitter, so the fake clock can stand exactly on the boundary.
    resolver, pool, clock = make(lambda host: [], negative_ttl=5.0)
    resolver(["a.example"])  # at 100: fails, stale at 105
    clock.now = 105.0
    resolver(["a.example"])  # asked exactly then: looked up again (fails, stale at 110)
    assert pool.submitted == ["a.example"] * 2
    clock.now = 110.0
    assert resolver.refresh() == 1


def test_a_full_table_forgets_the_names_nobody_asked_for() -> None:
    resolver, _, clock = make(lambda host: list(UP), forget_after=600.0)
    resolver([f"n{i}.example" for i in range(10_000)])  # at 100
    clock.now = 701.0
    resolver(["x.example"])  # 10,000 names is not over the bound: nothing forgotten yet
    assert resolver.answers(["n0.example"]) == {"n0.example": UP}
    resolver(["y.example"])  # 10,001 is: names not asked for in 600 s go
    assert resolver.answers(["n0.example", "n9999.example", "x.example"]) == {"x.example": UP}
    clock.now = 1301.0  # x.example asked 600 s ago: not yet forgotten (refresh prunes too)
    resolver.refresh()
    assert resolver.answers(["x.example"]) == {"x.example": UP}
    clock.now = 1301.5
    resolver.refresh()
    assert resolver.answers(["x.example"]) == {}
