"""Rendering a resource: confd's prefix stripping, template naming, and the parsed-template cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from muster.errors import TemplateExecError, TemplateSyntaxError
from muster.resources.render import TemplateCache, render, strip_prefix
from muster.resources.spec import ResourceSpec, go_join


def spec(prefix: str = "/", src: str = "app.tmpl") -> ResourceSpec:
    return ResourceSpec(name="r", src=Path("/t") / src, dest=Path("/d"), keys=("/",), prefix=prefix)


@pytest.mark.parametrize("prefix", ["/", "/p", "/p/", ""])
@pytest.mark.parametrize(
    "key", ["/a/b", "/p/a", "/pa", "/p", "/p//a", "/p/./a", "/p/../x", "/p/a/", "/p/.h", "p/a"]
)
def test_strip_prefix_is_confds_trim_and_join(prefix: str, key: str) -> None:
    assert strip_prefix({key: "v"}, prefix) == {go_join("/", key.removeprefix(prefix)): "v"}


def test_string_prefix_trim_quirk() -> None:
    # confd trims a plain string prefix: /app also strips the front of /application.
    assert strip_prefix({"/application/x": "1", "/app/y": "2"}, "/app") == {"/lication/x": "1", "/y": "2"}


def test_render_with_prefix_and_template_name() -> None:
    source = b'{{define "x"}}X{{end}}{{getv "/app/name"}}-{{template "x"}}-{{block "app.tmpl2" .}}B{{end}}'
    assert render(spec("/prod"), {"/prod/app/name": "shop"}, source) == b"shop-X-B"


def test_errors_are_template_errors() -> None:
    with pytest.raises(TemplateSyntaxError, match="app.tmpl:1"):
        render(spec(), {}, b"{{ if }}")
    with pytest.raises(TemplateExecError, match="key does not exist: /nope"):
        render(spec(), {}, b'{{getv "/nope"}}')


def test_invalid_utf8_passes_through() -> None:
    assert render(spec(), {"/k": "v"}, b'\xff{{getv "/k"}}\xfe') == b"\xffv\xfe"


def test_cache_reuses_the_parse_with_new_values() -> None:
    cache = TemplateCache()
    source = b'{{range gets "/s/*"}}{{.Value}},{{end}}'
    assert render(spec(), {"/s/a": "1"}, source, cache) == b"1,"
    first = cache.get("app.tmpl", source)[0]
    assert render(spec(), {"/s/a": "1", "/s/b": "2"}, source, cache) == b"1,2,"
    assert cache.get("app.tmpl", source)[0] is first
    # An edited template is parsed again; an error does not poison the cache.
    assert render(spec(), {"/s/a": "1"}, b'{{len (ls "/s")}}', cache) == b"1"
    with pytest.raises(TemplateExecError):
        render(spec(), {}, b'{{getv "/x"}}', cache)
    assert render(spec(), {"/x": "ok"}, b'{{getv "/x"}}', cache) == b"ok"


def test_cache_is_bounded() -> None:
    cache = TemplateCache(size=2, incremental=False)
    for i in range(5):
        assert render(spec(), {}, f"{i}".encode(), cache) == f"{i}".encode()
    assert len(cache._entries) == 2
    # Incremental: one renderer per resource, replaced when its source changes.
    cache = TemplateCache(size=2, incremental=True)
    for i in range(5):
        assert render(spec(), {}, f"{i}".encode(), cache) == f"{i}".encode()
    assert len(cache._renderers) == 1
