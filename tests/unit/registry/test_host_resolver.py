"""``HostResolver``'s timing rules: stale-while-revalidate, one wait per new name, state logs.

The rules are pure timing, so they run on a fake clock, with lookups held by a manual
executor until the test lets them finish (``ManualExecutor.finish``).
"""

from __future__ import annotations

import concurrent.futures
import gc
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from muster.confd.store import KVStore
from muster.gotemplate import Template
from muster.registry.index import HostResolver, RejectLog
from muster.registry.servicefuncs import service_funcs

NO_SUCH_NAME = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
TRY_AGAIN = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ManualExecutor(concurrent.futures.Executor):
    """Holds each submitted lookup until ``finish(host)`` runs it (in the test's thread)."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[..., Any], tuple[Any, ...], concurrent.futures.Future[Any]]] = []
        self.submitted: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.pending.append((fn, args, future))
        self.submitted.append(args[0])
        return future

    def finish(self, host: str) -> None:
        for item in self.pending:
            fn, args, future = item
            if args[0] == host:
                self.pending.remove(item)
                future.set_result(fn(*args))
                return
        raise AssertionError(f"no lookup of {host} is running")


class Answers:
    """The lookup function: each host's scripted answer (a list of addresses or an error)."""

    def __init__(self, **answers: list[str] | Exception) -> None:
        self.answers = {host.replace("_", "."): a for host, a in answers.items()}

    def __call__(self, host: str) -> list[str]:
        answer = self.answers[host]
        if isinstance(answer, Exception):
            raise type(answer)(*answer.args)  # a fresh one: a raised one keeps its frames alive
        return answer


def make(answers: Answers, **options: Any) -> tuple[HostResolver, ManualExecutor, Clock, list[str]]:
    clock = Clock()
    pool = ManualExecutor()
    resolver = HostResolver(executor=pool, lookup=answers, clock=clock, **options)
    told: list[str] = []
    resolver.subscribe(told.append)
    return resolver, pool, clock, told


def test_a_known_name_is_answered_at_once_and_refreshed_in_the_background() -> None:
    answers = Answers(a_example=["10.0.0.1"])
    resolver, pool, clock, told = make(answers, timeout=0.0, ttl=30.0)
    assert resolver(["a.example"]) == {}  # new, and its lookup is not done: left out
    pool.finish("a.example")
    assert told == ["a.example"], "an answer nobody waited for is news"
    assert resolver(["a.example"]) == {"a.example": ("10.0.0.1",)}
    assert pool.submitted == ["a.example"], "fresh: not looked up again"

    clock.now += 31  # stale: answered from the last answer while a lookup refreshes it
    answers.answers["a.example"] = ["10.0.0.2"]
    assert resolver(["a.example"]) == {"a.example": ("10.0.0.1",)}
    assert resolver(["a.example"]) == {"a.example": ("10.0.0.1",)}
    assert pool.submitted == ["a.example"] * 2, "one lookup at a time per name"
    pool.finish("a.example")
    assert told == ["a.example"] * 2
    assert resolver(["a.example"]) == {"a.example": ("10.0.0.2",)}

    clock.now += 31  # the same answer again: no news
    resolver(["a.example"])
    pool.finish("a.example")
    assert told == ["a.example"] * 2


def test_only_the_caller_that_starts_a_new_name_waits_and_only_until_the_deadline() -> None:
    release = threading.Event()

    def slow(host: str) -> list[str]:
        release.wait(10)
        return ["10.0.0.1"]

    resolver = HostResolver(timeout=0.2, lookup=slow)
    told: list[str] = []
    resolver.subscribe(told.append)
    try:
        started = time.monotonic()
        assert resolver(["slow.example"]) == {}
        assert 0.15 < time.monotonic() - started < 2.0, "a new name waits, at most the deadline"
        started = time.monotonic()
        for _ in range(5):
            assert resolver(["slow.example"]) == {}
        assert time.monotonic() - started < 0.1, "its lookup is running: nobody waits for it again"
    finally:
        release.set()
    deadline = time.monotonic() + 10
    while not told and time.monotonic() < deadline:
        time.sleep(0.005)
    assert told == ["slow.example"], "the late answer is news: the caller renders again"
    assert resolver(["slow.example"]) == {"slow.example": ("10.0.0.1",)}


def test_an_answer_a_caller_waited_for_is_no_news() -> None:
    resolver = HostResolver(timeout=5.0, lookup=lambda host: ["10.0.0.1"])
    told: list[str] = []
    resolver.subscribe(told.append)
    assert resolver(["quick.example"]) == {"quick.example": ("10.0.0.1",)}
    assert told == [], "the caller used it already: rendering again would change nothing"


def test_a_name_that_is_gone_costs_its_entries_a_resolver_down_keeps_the_last_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="muster")
    answers = Answers(a_example=["10.0.0.1"])
    resolver, pool, clock, told = make(answers, timeout=0.0, ttl=30.0, negative_ttl=5.0)
    resolver(["a.example"])
    pool.finish("a.example")

    answers.answers["a.example"] = TRY_AGAIN  # a resolver timing out: serve the last answer
    for _ in range(3):
        clock.now += 31
        resolver(["a.example"])
        pool.finish("a.example")
        assert resolver(["a.example"]) == {"a.example": ("10.0.0.1",)}
    failed = [r.getMessage() for r in caplog.records if "services.host.unresolved" in r.getMessage()]
    assert len(failed) == 1, "logged once per change of state, not per lookup"
    assert 'using="the last answer"' in failed[0] or "using=the last answer" in failed[0]

    answers.answers["a.example"] = NO_SUCH_NAME  # gone: its entries are left out
    clock.now += 6
    resolver(["a.example"])
    pool.finish("a.example")
    assert resolver(["a.example"]) == {}
    assert told[-1] == "a.example"
    assert sum("services.host.unresolved" in r.getMessage() for r in caplog.records) == 1

    answers.answers["a.example"] = ["10.0.0.3"]
    clock.now += 6
    resolver(["a.example"])
    pool.finish("a.example")
    assert resolver(["a.example"]) == {"a.example": ("10.0.0.3",)}
    recovered = [r for r in caplog.records if "services.host.resolved" in r.getMessage()]
    assert len(recovered) == 1 and recovered[0].levelno == logging.INFO


def test_a_late_new_name_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="muster")
    resolver, pool, clock, _ = make(Answers(a_example=["10.0.0.1"]), timeout=0.0)
    resolver(["a.example"])
    resolver(["a.example"])
    assert [r.getMessage().split()[0] for r in caplog.records] == ["services.host.late"]


def test_refresh_follows_held_names_and_forgets_the_rest() -> None:
    answers = Answers(held_example=["10.0.0.1"], asked_example=["10.0.0.2"])
    resolver, pool, clock, _ = make(answers, timeout=0.0, ttl=30.0, forget_after=600.0)
    holding = resolver.holding()
    resolver.addresses(["held.example"], holding=holding)
    resolver(["asked.example"])
    pool.finish("held.example")
    pool.finish("asked.example")
    assert resolver.refresh() == 0, "nothing stale yet"
    clock.now += 31
    assert resolver.refresh() == 2
    pool.finish("held.example")
    pool.finish("asked.example")

    clock.now += 601  # asked.example was not asked for since: forgotten; held.example is held
    assert resolver.refresh() == 1 and pool.submitted[-1] == "held.example"
    pool.finish("held.example")
    assert resolver.answers(["held.example", "asked.example"]) == {"held.example": ("10.0.0.1",)}

    del holding  # the template (or sink) that held it is gone
    gc.collect()
    clock.now += 601
    assert resolver.refresh() == 0
    assert resolver.answers(["held.example"]) == {}


def test_addresses_are_usable_deduplicated_and_in_a_stable_order() -> None:
    rotating = ["2001:db8::2", "10.0.0.2", "fe80::1%eth0", "10.0.0.10", "10.0.0.2", "0.0.0.0"]
    resolver = HostResolver(timeout=5.0, lookup=lambda host: rotating)
    assert resolver(["a.example"]) == {"a.example": ("10.0.0.2", "10.0.0.10", "2001:db8::2")}


def test_a_failing_listener_does_not_cost_the_others_their_news() -> None:
    resolver, pool, _, told = make(Answers(a_example=["10.0.0.1"]), timeout=0.0)
    also: list[str] = []

    def broken(host: str) -> None:
        raise RuntimeError("listener bug")

    resolver.subscribe(broken)
    unsubscribe = resolver.subscribe(also.append)
    resolver(["a.example"])
    pool.finish("a.example")
    assert told == also == ["a.example"]
    unsubscribe()
    assert also == ["a.example"]


def test_templates_render_addresses_never_names() -> None:
    store = KVStore(
        {
            "/services/web/servers/a": '{"host": "web.example", "port": 80}',
            "/services/web/servers/b": '{"host": "10.0.0.5", "port": 80}',
            "/services/web/servers/c": '{"host": "gone.example", "port": 80}',
        }
    )
    answers = Answers(web_example=["10.0.0.7", "10.0.0.6"], gone_example=NO_SUCH_NAME)
    clock = Clock()
    resolver = HostResolver(timeout=5.0, lookup=answers, clock=clock, executor=InlineExecutor())
    funcs = service_funcs(store, reject_log=RejectLog(), resolvable=resolver)
    template = Template("t", funcs=funcs).parse('{{ range servers "web" }}{{ .ID }} {{ .Addr }}\n{{ end }}')
    assert template.execute(None) == "a 10.0.0.6:80\na 10.0.0.7:80\nb 10.0.0.5:80\n"
    # The root's names are held while its funcs live: refreshed however long nobody renders.
    clock.now += 10_000
    assert resolver.refresh() == 2
    del funcs, template
    gc.collect()
    clock.now += 10_000
    assert resolver.refresh() == 0, "funcs gone (a template cache dropped them): names forgotten"


class InlineExecutor(concurrent.futures.Executor):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


def test_refresh_starts_the_stalest_names_first_and_at_most_limit_at_once() -> None:
    answers = Answers(**{f"n{i}_example": [f"10.0.0.{i}"] for i in range(5)})
    resolver, pool, clock, _ = make(answers, timeout=0.0, ttl=30.0)
    for i in range(5):
        resolver([f"n{i}.example"])
        pool.finish(f"n{i}.example")
        clock.now += 10  # more than the TTL's jitter (10 %)
    clock.now += 40
    pool.submitted.clear()
    assert resolver.refresh(limit=2) == 2
    assert pool.submitted == ["n0.example", "n1.example"], "the stalest first: one thread each"
    assert resolver.refresh(limit=2) == 2 and resolver.refresh(limit=2) == 1
    assert resolver.refresh(limit=2) == 0, "all running: none twice"


def test_a_failed_submit_leaves_no_waiter_behind_so_subscribers_still_hear() -> None:
    class FlakyPool(concurrent.futures.ThreadPoolExecutor):
        fail = True

        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
            if FlakyPool.fail:
                FlakyPool.fail = False
                raise RuntimeError("cannot schedule new futures after shutdown")
            return super().submit(fn, *args, **kwargs)

    answers = {"a.example": ["10.0.0.1"]}
    heard: list[str] = []
    with FlakyPool(2) as pool:
        resolver = HostResolver(executor=pool, lookup=lambda host: answers[host], ttl=0.0)
        resolver.subscribe(heard.append)
        with pytest.raises(RuntimeError):
            resolver.addresses({"a.example"})
        assert resolver.addresses({"a.example"}) == {"a.example": ("10.0.0.1",)}
        answers["a.example"] = ["10.0.0.2"]
        resolver.refresh()
        deadline = time.monotonic() + 5
        while "a.example" not in heard:
            assert time.monotonic() < deadline, "the changed answer was never announced"
            time.sleep(0.01)
