"""``KVStore.updated``: a snapshot derived from another by changes answers every memkv
function exactly as a snapshot built from scratch over the same keys."""

from __future__ import annotations

import random

import pytest

from muster.confd.store import KVStore

SEGMENTS = ["a", "b", "c", "", "x.y", ".", "..", "s1", "é"]
PATHS = ["/", "/a", "/a/b", "a", "/a/", "/x.y", "/a//b", ""]
PATTERNS = ["/*", "/a/*", "/*/*", "*", "/a/[ab]", "/a/b/*", "[/]a"]


def _key(rng: random.Random) -> str:
    body = "/".join(rng.choice(SEGMENTS) for _ in range(rng.randint(1, 4)))
    return ("/" if rng.random() < 0.8 else "") + body


@pytest.mark.parametrize("consume", [False, True])
@pytest.mark.parametrize("seed", range(20))
def test_updated_matches_a_fresh_snapshot(seed: int, consume: bool) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        store = KVStore({_key(rng): str(rng.randint(0, 3)) for _ in range(rng.randint(0, 8))})
        if rng.random() < 0.7:
            for path in PATHS:
                store.ls(path)  # build the index and sorted listings, so updated patches them
        for _ in range(4):
            changes: dict[str, str | None] = {}
            for _ in range(rng.randint(1, 4)):
                key = rng.choice([*store, _key(rng)]) if len(store) else _key(rng)
                changes[key] = None if rng.random() < 0.5 else str(rng.randint(0, 3))
            before = dict(store.values)
            new = store.updated(changes, consume=consume)
            if consume:
                with pytest.raises(RuntimeError, match="consume"):
                    store.ls("/a")  # handed its tables on: any read fails loudly
            else:
                assert dict(store.values) == before, "the old snapshot is unchanged"
            for path in PATHS:
                new.ls(path)  # listings sorted now are patched by the next update
            expected = {k: v for k, v in {**before, **changes}.items() if v is not None}
            fresh = KVStore(expected)
            assert dict(new.values) == expected
            assert new.canonical == fresh.canonical
            for path in PATHS:
                assert new.ls(path) == fresh.ls(path) and new.lsdir(path) == fresh.lsdir(path), path
            for pattern in PATTERNS:
                assert list(new.getvs(pattern)) == list(fresh.getvs(pattern)), pattern
                assert list(new.gets(pattern)) == list(fresh.gets(pattern)), pattern
            store = new


def test_updated_shares_untouched_directories() -> None:
    store = KVStore({"/s/a/x": "1", "/s/b/x": "2"})
    store.ls("/s/a")
    new = store.updated({"/s/b/y": "3", "/s/a/x": "9"})
    assert new._children is not None and store._children is not None
    assert new._children["/s/a"] is store._children["/s/a"]  # a value change touches no directory
    assert new.ls("/s/b") == ["x", "y"] and store.ls("/s/b") == ["x"]


def test_a_consuming_update_patches_the_tables_in_place() -> None:
    store = KVStore({f"/s/{n}/x": "1" for n in range(100)})
    store.ls("/s")
    values, children = store._values, store._children
    new = store.updated({"/s/7/x": "2", "/s/new/x": "3"}, consume=True)
    # No copy of every key per change: the same tables, patched.
    assert new._values is values and new._children is children
    assert new.getv("/s/7/x") == "2" and "new" in new.ls("/s")
    with pytest.raises(RuntimeError):
        store.getv("/s/7/x")
