"""The panic guard's rules, on a fake clock: what is held, for how long, and what is not."""

from __future__ import annotations

import pytest

from muster.registry.guard import Guards, GuardSettings, PanicGuard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def guard(clock: Clock, **settings: object) -> PanicGuard[str]:
    return PanicGuard(GuardSettings(**settings), clock=clock)  # type: ignore[arg-type]


def test_a_service_losing_every_server_keeps_them_for_the_grace(clock: Clock) -> None:
    g = guard(clock, grace=60)
    g.update({"web": ["a", "b"], "api": ["x"]})
    published, touched = g.update({"api": ["x"]})
    assert published == {"web": ["a", "b"], "api": ["x"]} and touched == set()
    assert g.held() == {"web": ["a", "b"]} and g.next_deadline() == 1060.0
    clock.now = 1059.0
    assert g.update({"api": ["x"]})[0]["web"] == ["a", "b"]
    clock.now = 1060.0
    published, touched = g.update({"api": ["x"]})
    assert published == {"api": ["x"]} and touched == {"web"} and not g.held()


def test_one_server_of_four_leaves_at_once_but_three_of_four_are_held(clock: Clock) -> None:
    g = guard(clock, grace=60)
    g.update({"web": ["a", "b", "c", "d"]})
    assert g.update({"web": ["a", "b", "c"]})[0] == {"web": ["a", "b", "c"]}
    g = guard(clock, grace=60)
    g.update({"web": ["a", "b", "c", "d"]})
    assert g.update({"web": ["a", "b"]})[0] == {"web": ["a", "b"]}, "half is not more than half"
    g = guard(clock, grace=60)
    g.update({"web": ["a", "b", "c", "d"]})
    assert g.update({"web": ["a"]})[0] == {"web": ["a", "b", "c", "d"]}


def test_a_mass_removal_across_services_holds_even_small_losses(clock: Clock) -> None:
    # One host (h3) serves every service and is partitioned from etcd: each loses 1 of 3.
    g = guard(clock, grace=60)
    before = {f"s{i}": ["h1", "h2", "h3"] for i in range(4)}
    g.update(before)
    published, _ = g.update({name: ["h1", "h2"] for name in before})
    assert published == before
    # The same loss in one service of four is ordinary churn.
    g = guard(clock, grace=60)
    g.update(before)
    published, touched = g.update({**before, "s0": ["h1", "h2"]})
    assert published["s0"] == ["h1", "h2"] and touched == {"s0"}


def test_a_replaced_server_is_no_loss_and_applies_at_once(clock: Clock) -> None:
    g = guard(clock, grace=60)
    g.update({"web": ["old"]})
    assert g.update({"web": ["new"]})[0] == {"web": ["new"]}, "a deploy or a moved address"
    g.update({"web": ["a", "b", "c", "d"]})
    assert g.update({"web": ["a", "x"]})[0] == {"web": ["a", "x"]}, "half replaced, half gone: 50 %"


def test_losses_a_few_seconds_apart_add_up_within_the_window(clock: Clock) -> None:
    # Three agents cut off from etcd: their leases expire in three updates, each under half.
    g = guard(clock, grace=60, window=30)
    g.update({"web": ["a", "b", "c"]})
    assert g.update({"web": ["b", "c"]})[0] == {"web": ["b", "c"]}, "one of three: applied"
    clock.now += 3
    published, touched = g.update({"web": ["c"]})
    assert published == {"web": ["c", "b", "a"]} and touched == {"web"}, "two of three within 30 s"
    assert g.next_deadline() == 1000.0 + 60, "a's grace counts from its own removal"
    clock.now += 3
    assert g.update({"web": []})[0] == {"web": ["b", "a", "c"]}
    # Outside the window, a slow decline is ordinary churn.
    slow = guard(clock, grace=60, window=30)
    slow.update({"web": ["a", "b", "c"]})
    slow.update({"web": ["b", "c"]})
    clock.now += 31
    assert slow.update({"web": ["c"]})[0] == {"web": ["c"]}


def test_servers_coming_back_end_the_hold_and_new_ones_join_at_once(clock: Clock) -> None:
    g = guard(clock, grace=60)
    g.update({"web": ["a", "b"]})
    g.update({})
    published, _ = g.update({"web": ["c"]})
    assert published == {"web": ["c", "a", "b"]}, "a newcomer joins, the held stay"
    published, _ = g.update({"web": ["c", "a", "b"]})
    assert published == {"web": ["c", "a", "b"]} and not g.held()


def test_accept_applies_every_held_removal_and_zero_grace_disables(clock: Clock) -> None:
    g = guard(clock, grace=60)
    g.update({"web": ["a"], "api": ["x"]})
    g.update({})
    assert g.held_count() == 2
    g.accept()
    assert g.update({}) == ({}, {"web", "api"})
    off = guard(clock, grace=0)
    off.update({"web": ["a"]})
    assert off.update({})[0] == {}


def test_grace_per_service_overrides_the_default(clock: Clock) -> None:
    g = guard(clock, grace=60, grace_for={"batch": 0, "slow": 600})
    g.update({"web": ["a"], "batch": ["b"], "slow": ["c"]})
    assert g.update({})[0] == {"web": ["a"], "slow": ["c"]}
    clock.now += 61
    assert g.update({})[0] == {"slow": ["c"]}


def test_incremental_updates_judge_only_the_changed_names(clock: Clock) -> None:
    g = guard(clock, grace=60)
    g.update({"web": ["a"], "api": ["x"]})
    published, touched = g.update({"api": ["x"]}, changed={"web"})
    assert published == {"web": ["a"], "api": ["x"]} and touched == set()
    clock.now += 60
    published, touched = g.update({"api": ["x"]}, changed=set())
    assert published == {"api": ["x"]} and touched == {"web"}, "an expired hold is applied unasked"


def test_guards_see_every_guard(clock: Clock) -> None:
    guards = Guards(GuardSettings(grace=60), clock=clock)
    one: PanicGuard[str] = guards.new()
    two: PanicGuard[str] = guards.new()
    one.update({"web": ["a", "b"]})
    two.update({"web": ["a"]})
    one.update({})
    two.update({})
    assert guards.held() == {"web": 2} and guards.next_deadline() == 1060.0
    problem = guards.problem()
    assert problem is not None and "2 removed server(s) of 1 service(s)" in problem and "USR1" in problem
    guards.accept()
    one.update({})
    two.update({})
    assert guards.problem() is None
