"""KVStore: memkv's answers (quirks included), from an index, checked against a scan.

The reference functions below restate memkv's scanning algorithms (List, ListDir,
GetAll) over a plain dict; the indexed store must agree with them on random trees
and random queries, and answer the documented confd behaviours.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest

from muster.confd.store import KeyNotFound, KVPair, KVPairs, KVStore, path_base, path_clean, path_dir
from muster.golang import path as gopath
from muster.golang.values import GoSlice, go_type_name

APP = {
    "/app/name": "muster",
    "/app/port": "8080",
    "/app/db/host": "db.local",
    "/app/db/user": "admin",
    "/app/cache/ttl": "60",
}
SERVICES = {
    "/services/web/servers/web1": '{"host":"10.0.0.1","port":8080}',
    "/services/web/servers/web2": '{"host":"10.0.0.2","port":8081}',
    "/services/api/servers/api1": '{"host":"10.0.1.1","port":9000}',
    "/services/empty/meta": "none",
}


# -- reference: memkv's scans, restated -----------------------------------------


def _terms(p: str) -> list[str]:
    return path_clean(p).split("/")


def ref_ls(values: Mapping[str, str], file_path: str) -> list[str]:
    prefix = _terms(file_path)
    out = set()
    for key in values:
        if key == file_path:
            out.add(path_base(key))
            continue
        target = _terms(path_dir(key))
        if target[: len(prefix)] == prefix and len(target) >= len(prefix):
            out.add(key.removeprefix(file_path).removeprefix("/").split("/")[0])
    return sorted(out)


def ref_lsdir(values: Mapping[str, str], file_path: str) -> list[str]:
    prefix = _terms(file_path)
    out = set()
    for key in values:
        if key.startswith(file_path):
            items = _terms(path_dir(key))
            if items[: len(prefix)] == prefix and len(items) > len(prefix):
                out.add(items[len(prefix)])
    return sorted(out)


def ref_match(values: Mapping[str, str], pattern: str) -> list[str]:
    return sorted(k for k in values if gopath.match(pattern, k))


# -- documented behaviours --------------------------------------------------------


def test_get_and_getv() -> None:
    store = KVStore(APP)
    assert store.get("/app/name") == KVPair("/app/name", "muster")
    assert store.getv("/app/port") == "8080"
    assert store.getv("/app/nope", "fallback", "ignored") == "fallback"
    assert store.getv("/app/nope", "") == ""
    with pytest.raises(KeyNotFound, match="^key does not exist: /app/nope$"):
        store.getv("/app/nope")
    with pytest.raises(KeyNotFound, match="key does not exist: /app/db"):
        store.get("/app/db")  # a directory is not a key
    assert store.exists("/app/name") and not store.exists("/app/db") and not store.exists("/app/name/")


def test_gets_sorted_by_key_and_typed() -> None:
    store = KVStore({"/k/b": "1", "/k/a": "2", "/k/c": "0", "/k/B": "9"})
    pairs = store.gets("/k/*")
    assert [p.Key for p in pairs] == ["/k/B", "/k/a", "/k/b", "/k/c"]
    assert isinstance(pairs, KVPairs) and go_type_name(pairs) == "memkv.KVPairs"
    assert store.gets("/nope/*") == [] and isinstance(store.gets("/nope/*"), KVPairs)


def test_getvs_sorted_by_value_bytewise() -> None:
    store = KVStore({"/k/a": "zeta", "/k/b": "alpha", "/k/c": "Mid", "/k/d": "10", "/k/e": "9"})
    values = store.getvs("/k/*")
    assert values == ["10", "9", "Mid", "alpha", "zeta"]
    assert isinstance(values, GoSlice) and values.elem == "string"


def test_multi_level_glob_and_classes() -> None:
    store = KVStore(SERVICES)
    assert sorted(store.match_keys("/services/*/servers/*")) == sorted(
        k for k in SERVICES if "/servers/" in k
    )
    assert store.getvs("/services/w?b/servers/web[2-9]") == ['{"host":"10.0.0.2","port":8081}']
    assert store.match_keys("/services/web/servers/web1") == ("/services/web/servers/web1",)
    assert store.match_keys("/services/web") == ()  # a directory is not a key


def test_bad_pattern_errors_only_on_a_non_empty_store() -> None:
    with pytest.raises(gopath.BadPattern):
        KVStore(APP).gets("/app/[")
    assert KVStore({}).gets("/app/[") == []  # memkv never calls path.Match then


def test_ls_quirks() -> None:
    store = KVStore({**APP, **SERVICES})
    assert store.ls("/app") == ["cache", "db", "name", "port"]
    assert store.ls("/app/") == ["cache", "db", "name", "port"]
    assert store.ls("/ap") == []
    assert store.ls("/") == []  # confd#725: directories under / are invisible
    assert store.ls("/app/name") == ["name"]  # a key lists as its base name
    assert store.lsdir("/app") == ["cache", "db"]
    assert store.lsdir("/services") == ["api", "empty", "web"]
    assert store.lsdir("/") == []
    assert KVStore({"/top": "1", "/dir/x": "2"}).ls("/") == ["top"]
    assert KVStore({"/": "r", "/top": "1", "/dir/x": "2"}).ls("/") == ["/", "top"]


def test_ls_with_odd_arguments_matches_memkv() -> None:
    store = KVStore(APP)
    for arg in ["/app//", "/app/.", "app", "", "/../app", "//app", "/app/db/../db"]:
        assert store.ls(arg) == ref_ls(APP, arg), arg
        assert store.lsdir(arg) == ref_lsdir(APP, arg), arg


def test_results_are_fresh_lists() -> None:
    store = KVStore(APP)
    first = store.ls("/app")
    first.reverse()
    assert store.ls("/app") == ["cache", "db", "name", "port"]
    values = store.getvs("/app/*")
    values.append("x")
    assert store.getvs("/app/*") == ["8080", "muster"]


# -- differential against the scans ------------------------------------------------

_SEGS = ["a", "b", "ab", "web1", "web2", "x.y", "é"]


def _random_store(rng: random.Random, canonical: bool) -> dict[str, str]:
    values = {}
    for _ in range(rng.randint(0, 40)):
        depth = rng.randint(1, 4)
        segs = [rng.choice(_SEGS) for _ in range(depth)]
        if not canonical and rng.random() < 0.3:
            segs.insert(rng.randrange(len(segs) + 1), rng.choice(["", ".", ".."]))
        key = "/".join(segs) if (not canonical and rng.random() < 0.2) else "/" + "/".join(segs)
        values[key] = str(rng.randint(0, 99))
    if rng.random() < 0.2:
        values["/"] = "root"  # a key equal to the prefix, as confd's path.Join makes it
    return values


def _random_path(rng: random.Random) -> str:
    segs = [rng.choice([*_SEGS, "", ".", ".."]) for _ in range(rng.randint(0, 3))]
    path = "/".join(segs)
    return rng.choice(["/", "", "//"]) + path + rng.choice(["", "/", "//"])


def _random_pattern(rng: random.Random) -> str:
    segs = []
    for _ in range(rng.randint(1, 4)):
        segs.append(rng.choice([*_SEGS, "*", "?", "w*", "*b", "a?", "[ab]", "[^a]*", "web[12]", "\\a", ""]))
    return rng.choice(["/", ""]) + "/".join(segs)


@pytest.mark.parametrize("canonical", [True, False])
def test_index_agrees_with_memkv_scans(canonical: bool) -> None:
    rng = random.Random(20261125 + canonical)
    for _ in range(150):
        values = _random_store(rng, canonical)
        store = KVStore(values)
        for _ in range(15):
            path = _random_path(rng)
            assert store.ls(path) == ref_ls(values, path), (values, path)
            assert store.lsdir(path) == ref_lsdir(values, path), (values, path)
            pattern = _random_pattern(rng)
            assert sorted(store.match_keys(pattern)) == ref_match(values, pattern), (values, pattern)


def test_large_store() -> None:
    # The seed benchmark's shape: 10,000 services x 3 servers.
    values = {f"/services/s{i}/servers/{j}": f"v{i}.{j}" for i in range(10_000) for j in range(3)}
    store = KVStore(values)
    assert store.getvs("/services/s42/servers/*") == ["v42.0", "v42.1", "v42.2"]
    assert store.ls("/services/s42/servers") == ["0", "1", "2"]
    assert len(store.ls("/services")) == 10_000
    assert store.lsdir("/services/s7") == ["servers"]


def test_bulk_clean_key_check_agrees_with_the_per_key_one() -> None:
    import random

    from muster.confd.store import _all_clean, _is_clean_key

    rng = random.Random(1)
    alphabet = ["/", ".", "a", "\x00", "b"]  # NUL is the bulk check's separator
    agreed_clean = 0
    for _ in range(5000):
        keys = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(rng.randint(0, 4))
        ]
        keys = list(dict.fromkeys(keys))
        assert _all_clean(keys) == all(map(_is_clean_key, keys)), keys
        agreed_clean += _all_clean(keys)
    assert agreed_clean > 500
    assert _all_clean(["/a/b", "/c"]) and not _all_clean(["/a/", "/c"]) and not _all_clean(["/a/.."])


def test_store_container_protocol_and_reprs() -> None:
    store = KVStore({"/a": "1", "/b/c": "2"})
    assert len(store) == 2 and list(store) == ["/a", "/b/c"] and "/a" in store and "/b" not in store
    assert repr(store) == "KVStore(2 keys)" and dict(store.values) == {"/a": "1", "/b/c": "2"}
    with pytest.raises(TypeError):
        store.values["/a"] = "x"  # type: ignore[index]
    pair = KVPair("/a", "1")
    assert repr(pair) == "KVPair('/a', '1')" and len({pair, KVPair("/a", "1")}) == 1


def test_getvs_sorts_non_ascii_values_bytewise_and_the_memo_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import muster.confd.store

    store = KVStore({"/k/a": "é", "/k/b": "z", "/k/c": "\udcff", "/k/d": "A"})
    assert list(store.getvs("/k/*")) == ["A", "z", "é", "\udcff"]  # UTF-8 bytes: C3 A9 < FF
    monkeypatch.setattr(muster.confd.store, "_MEMO_LIMIT", 2)
    for name in "abcd":
        assert list(store.getvs(f"/k/{name}")) == [store.getv(f"/k/{name}")]
    assert len(store._memo) <= 2
