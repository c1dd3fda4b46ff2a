"""IncrementalRenderer (resources/incremental.py): follows changes, starts over when it
cannot follow them, and gives a full render's bytes either way."""

from __future__ import annotations

from pathlib import Path

import pytest

from muster.errors import TemplateExecError
from muster.resources.incremental import IncrementalRenderer, StoreReads
from muster.resources.render import TemplateCache, render
from muster.resources.spec import ResourceSpec

SEED = b"""{{range $s := ls "/services"}}{{$v := getvs (printf "/services/%s/servers/*" $s)}}\
{{if $v}}upstream {{$s}} {{range $v}}{{.}};{{end}}
{{end}}{{end}}"""


def _values(n: int) -> dict[str, str]:
    return {f"/p/services/s{i}/servers/{j}": f"10.0.{i}.{j}" for i in range(n) for j in range(2)}


def _full(values: dict[str, str], source: bytes = SEED, prefix: str = "/p") -> bytes:
    spec = ResourceSpec("r", Path("t.tmpl"), Path("out"), ("/",), prefix)
    return render(spec, values, source, TemplateCache(incremental=False))


def test_changes_are_followed_without_a_full_render() -> None:
    r = IncrementalRenderer("t.tmpl", SEED, "/p")
    values = _values(50)
    assert r.render(values) == _full(values)
    values = dict(values)
    values["/p/services/s7/servers/0"] = "10.9.9.9"
    del values["/p/services/s8/servers/1"]
    values["/p/services/zz/servers/0"] = "10.8.8.8"
    assert r.render(values) == _full(values)
    misses = r.memo.misses
    values = dict(values)
    values["/p/services/s3/servers/1"] = "10.7.7.7"
    assert r.render(values, ["/p/services/s3/servers/1"]) == _full(values)
    # Service s3's iteration and its two servers' (an execution from scratch keeps no
    # entries of units inside units: s3's servers ran again, and are kept from now on).
    assert r.memo.misses - misses == 3
    values = dict(values)
    values["/p/services/s3/servers/1"] = "10.7.7.8"
    misses = r.memo.misses
    assert r.render(values, ["/p/services/s3/servers/1"]) == _full(values)
    assert r.memo.misses - misses == 2  # s3's iteration and its changed server; server 0 reused
    assert r.full_renders == 1


def test_what_cannot_be_followed_starts_over() -> None:
    r = IncrementalRenderer("t.tmpl", SEED, "/p", max_changes=10)
    values = _values(50)
    r.render(values)
    values = {k: v + "0" for k, v in values.items()}  # 100 changes
    assert r.render(values) == _full(values)
    assert r.full_renders == 2
    # /px strips to /x, as /p/x does: confd's last key wins, which only a full render follows.
    clash = {"/p/x": "1"}
    r.render(clash)
    clash = {"/p/x": "1", "/px": "2"}
    assert r.render(clash) == _full(clash)
    assert r.full_renders == 4
    # With a change list too.
    r.render(values)
    assert r.render({**values, "/pz": "1"}, ["/pz"]) == _full({**values, "/pz": "1"})


def test_a_store_turning_empty_or_unclean_starts_the_memo_over() -> None:
    source = (
        b'{{range split "x,y" ","}}{{range gets "/a/["}}{{.Key}}{{end}}{{range ls "/a"}}{{.}}{{end}}{{end}}'
    )
    r = IncrementalRenderer("t.tmpl", source, "/")
    assert r.render({}) == b""
    with pytest.raises(TemplateExecError):
        r.render({"/a/b": "1"})  # a malformed pattern errs only over a non-empty store
    source = b'{{range split "x" ","}}{{range ls "/a/b"}}{{.}}{{end}}{{end}}'
    r = IncrementalRenderer("t.tmpl", source, "/")
    for values in ({"/a/b/c": "1"}, {"/a/b/c": "1", "/a//b/d": "2"}, {"/a/b/c": "1"}):
        assert r.render(values) == _full(values, source, "/")


def test_reads_are_re_asked_only_when_a_change_can_affect_them() -> None:
    r = IncrementalRenderer("t.tmpl", SEED, "/p")
    r.render(_values(3))
    reads = r.reads
    assert isinstance(reads, StoreReads)
    asked = []
    original = reads._ask
    reads._ask = lambda token: asked.append(token) or original(token)  # type: ignore[method-assign]
    values = {**_values(3), "/p/services/s1/servers/0": "x"}
    r.render(values)
    assert asked == [("getvs", "/services/s1/servers/*")]


def test_the_cache_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSTER_INCREMENTAL", "0")
    assert not TemplateCache().incremental
    monkeypatch.delenv("MUSTER_INCREMENTAL")
    cache = TemplateCache()
    assert cache.incremental
    spec = ResourceSpec("r", Path("t.tmpl"), Path("out"), ("/",), "/p")
    assert render(spec, _values(4), SEED, cache) == _full(_values(4))
    first = cache.renderer(spec, SEED)
    assert cache.renderer(spec, SEED) is first
    assert cache.renderer(spec, SEED + b" ") is not first  # a new source, a new memo
    assert "IncrementalRenderer" in repr(first)


def test_one_mapping_changed_in_place_between_renders() -> None:
    # The daemon keeps one view per key set and changes it in place: the renderer must not
    # compare it with itself, with or without the changed keys.
    values = _values(20)
    for told in (True, False):
        r = IncrementalRenderer("t.tmpl", SEED, "/p")
        assert r.render(values) == _full(values)
        for i, (key, value) in enumerate(
            [
                ("/p/services/s3/servers/0", "10.1.1.1"),
                ("/p/services/new/servers/0", "10.2.2.2"),
                ("/p/services/s4/servers/1", None),
            ]
        ):
            if value is None:
                del values[key]
            else:
                values[key] = value
            assert r.render(values, [key] if told else None) == _full(values), (told, i)
        assert r.full_renders == 1
        values = _values(20)
    # A second backend key for a known template key is still caught with changed keys given.
    r = IncrementalRenderer("t.tmpl", SEED, "/p")
    r.render(values)
    values["/p//services/s1/servers/0"] = "10.3.3.3"
    assert r.render(values, ["/p//services/s1/servers/0"]) == _full(values)
    assert r.full_renders == 2


@pytest.mark.parametrize("prefix", ["/", ""])
def test_backend_keys_that_are_not_their_own_template_keys_are_followed(prefix: str) -> None:
    # Under the usual prefix the renderer keeps no copy of the backend's keys (the store's
    # are the same); an unclean key ("/a//b", "x") ends that, a collision starts over.
    import random

    rng = random.Random(7)
    source = b'{{range gets "/*"}}{{.Key}}={{.Value}};{{end}}|{{range gets "/a/*"}}{{.Key}};{{end}}'
    universe = ["/a/b", "/a//b", "/a/./c", "/a/c", "x", "/x", "/y", "a/b"]
    for _ in range(200):
        r = IncrementalRenderer("t.tmpl", source, prefix)
        values: dict[str, str] = {}
        for _step in range(8):
            changed = []
            for _ in range(rng.randint(1, 3)):
                key = rng.choice(universe)
                if key in values and rng.random() < 0.4:
                    del values[key]
                else:
                    values[key] = str(rng.randint(0, 2))
                changed.append(key)
            given = changed if rng.random() < 0.6 else None
            assert r.render(values, given) == _full(values, source, prefix), (values, given)
