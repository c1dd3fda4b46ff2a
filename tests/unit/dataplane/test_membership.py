"""MembershipIndex: updating by snapshot diffs gives what validating the whole snapshot gives."""

from __future__ import annotations

import json
import random

import pytest

from muster.dataplane import membership
from muster.dataplane.membership import Entries, MembershipIndex
from muster.registry.index import NameClaims, index_services

ROOT = "/services"


def full(
    values: dict[str, str], claims: NameClaims | None = None
) -> tuple[dict[str, Entries], dict[str, str]]:
    """The whole snapshot validated at once, as the stock template sees it: services, rejected."""
    rests = (k[len(ROOT) + 1 :] for k in values if k.startswith(ROOT + "/"))
    names = {rest.split("/", 1)[0] for rest in rests if "/" in rest}
    index = index_services(values.items(), names, ROOT, claims=claims)
    services = {n: [(s.Host, s.Port, s.Weight) for s in servers] for n, servers in index.services.items()}
    return services, dict(index.rejected)


def server(host: str, port: int, weight: int | None = None) -> str:
    value: dict[str, object] = {"host": host, "port": port}
    if weight is not None:
        value["weight"] = weight
    return json.dumps(value)


def test_changes_report_only_the_services_they_touch() -> None:
    index = MembershipIndex(ROOT)
    values = {
        f"{ROOT}/a/servers/1": server("10.0.0.1", 80),
        f"{ROOT}/b/servers/1": server("10.0.0.2", 80),
    }
    assert index.update(values) == {"a", "b"}
    values[f"{ROOT}/b/servers/2"] = server("10.0.0.3", 80, 2)
    assert index.update(values) == {"b"}
    assert index.services == {"a": [("10.0.0.1", 80, 1)], "b": [("10.0.0.2", 80, 1), ("10.0.0.3", 80, 2)]}
    assert index.update(dict(values)) == set(), "an identical snapshot changes nothing"
    del values[f"{ROOT}/a/servers/1"]
    assert index.update(values) == {"a"} and "a" not in index.services


def test_a_bad_value_is_rejected_and_its_fix_accepted() -> None:
    index = MembershipIndex(ROOT)
    values = {f"{ROOT}/a/servers/1": "not json", f"{ROOT}/a/servers/2": server("10.0.0.2", 80)}
    index.update(values)
    assert index.services == {"a": [("10.0.0.2", 80, 1)]}
    assert f"{ROOT}/a/servers/1" in index.rejected()
    values[f"{ROOT}/a/servers/1"] = server("10.0.0.1", 80)
    assert index.update(values) == {"a"}
    assert index.services["a"] == [("10.0.0.1", 80, 1), ("10.0.0.2", 80, 1)] and not index.rejected()


def test_a_name_freed_from_a_case_collision_gets_its_servers() -> None:
    index = MembershipIndex(ROOT)
    values = {
        f"{ROOT}/API/servers/1": server("10.0.0.1", 80),
        f"{ROOT}/api/servers/1": server("10.0.0.2", 80),
        f"{ROOT}/api/servers/2": "{",
    }
    index.update(values)
    assert index.services == {"api": [("10.0.0.2", 80, 1)]}  # seen together: lower case first
    assert set(index.rejected()) == {f"{ROOT}/API", f"{ROOT}/api/servers/2"}
    del values[f"{ROOT}/api/servers/1"], values[f"{ROOT}/api/servers/2"]
    # "API" itself did not change, but it is valid now that "api" is gone.
    assert index.update(values) == {"API", "api"}
    assert index.services == {"API": [("10.0.0.1", 80, 1)]}
    assert not index.rejected()


def test_a_newcomer_differing_only_in_case_does_not_evict_the_first() -> None:
    index = MembershipIndex(ROOT)
    values = {f"{ROOT}/hello/servers/1": server("10.0.0.1", 80)}
    index.update(values)
    values[f"{ROOT}/Hello/servers/1"] = server("10.0.0.2", 80)
    assert index.update(values) == set(), "hello keeps its servers; Hello is rejected"
    assert index.services == {"hello": [("10.0.0.1", 80, 1)]}
    assert set(index.rejected()) == {f"{ROOT}/Hello"}


def test_a_crash_half_way_forgets_everything_so_the_next_update_is_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = MembershipIndex(ROOT)
    values = {f"{ROOT}/a/servers/1": server("10.0.0.1", 80)}
    index.update(values)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    values[f"{ROOT}/b/servers/1"] = server("10.0.0.2", 80)
    with monkeypatch.context() as patch:
        patch.setattr(membership, "index_services", crash)
        with pytest.raises(RuntimeError):
            index.update(values)
    assert index.update(values) == {"a", "b"}, "every service counts as changed again"
    assert index.services == {"a": [("10.0.0.1", 80, 1)], "b": [("10.0.0.2", 80, 1)]}


def test_random_histories_match_a_full_validation() -> None:
    rng = random.Random(7)
    # Three names share one case fold, and invalid names fold onto valid ones.
    names = ["a", "b", "B", "api", "Api", "API", "c-1", "bad name", "Bad name", "d"]
    values: dict[str, str] = {f"{ROOT}/unrelated": "x", "/elsewhere/a/servers/1": server("10.0.0.9", 1)}
    index = MembershipIndex(ROOT)
    claims = NameClaims()  # the template's, which sees the same history
    for _ in range(400):
        for _ in range(rng.choice([1, 1, 2, 3])):  # some snapshots carry several changes
            key = f"{ROOT}/{rng.choice(names)}/{rng.choice(['servers', 'meta'])}/{rng.randint(1, 4)}"
            if key in values and rng.random() < 0.4:
                del values[key]
            else:
                host = rng.choice(["10.0.0.1", "10.0.0.2", "10.0.0.3", "0.0.0.0", "bad host!"])
                port, weight = rng.randint(0, 3), rng.randint(0, 3)
                values[key] = rng.choice([server(host, port), server(host, 80, weight), "{"])
        before = dict(index.services)
        changed = index.update(dict(values))
        expected, rejected = full(values, claims)
        assert index.services == expected
        assert index.rejected() == rejected
        assert changed == {n for n in before.keys() | expected.keys() if before.get(n) != expected.get(n)}


def test_random_change_logs_match_snapshot_updates() -> None:
    # apply_changes (the mirror's change log) must leave the index exactly where update
    # (a whole snapshot per change) does, including keys set to the value they had.
    rng = random.Random(11)
    names = ["a", "b", "B", "api", "Api", "bad name", "d"]
    values: dict[str, str] = {}
    by_snapshot, by_changes = MembershipIndex(ROOT), MembershipIndex(ROOT)
    for _ in range(1000):
        changes: dict[str, str | None] = {}
        for _ in range(rng.choice([1, 1, 2, 5])):
            key = f"{ROOT}/{rng.choice(names)}/{rng.choice(['servers', 'meta'])}/{rng.randint(1, 4)}"
            if key in values and rng.random() < 0.4:
                del values[key]
                changes[key] = None
            else:
                host = rng.choice(["10.0.0.1", "10.0.0.2", "0.0.0.0"])
                values[key] = changes[key] = rng.choice([server(host, rng.randint(0, 3)), "{"])
        from_snapshot = by_snapshot.update(dict(values))
        from_changes = by_changes.apply_changes(changes)
        assert by_changes.services == by_snapshot.services
        assert by_changes.rejected() == by_snapshot.rejected()
        assert from_changes == from_snapshot
