"""The edges of the registry schema and its template functions, one boundary at a time.

Each test closes a gap a mutation run (``scripts/mutate``) found in ``services.py``: an
off-by-one bound, a root spelled with a trailing slash, a field templates could not reach.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import pytest

from muster.confd.store import KVStore
from muster.errors import TemplateExecError
from muster.gotemplate import Template
from muster.registry.index import (
    IGNORED_KEY,
    NameClaims,
    Rejected,
    RejectLog,
    Server,
    index_services,
    parse_server,
    valid_host,
)
from muster.registry.servicefuncs import service_funcs

KEY = "/services/web/servers/a"
LONGEST_NAME = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters: DNS's limit
A = json.dumps({"host": "10.0.0.1", "port": 80})


def render(values: dict[str, str], source: str, reject_log: RejectLog | None = None) -> str:
    funcs = service_funcs(KVStore(values), reject_log=reject_log or RejectLog(), resolvable=None)
    return Template("t", funcs=funcs).parse(source).execute(None)


@pytest.mark.parametrize(
    ("host", "valid"),
    [
        ("x.12a.", True),  # the root dot goes, and only it: "x.12" would end in a number
        ("ab.c-.", False),  # "ab.c-" ends a label with a hyphen, whatever the dot
        (LONGEST_NAME, True),
        (LONGEST_NAME + ".", True),
        (".".join(["a" * 63] * 3 + ["b" * 62]), False),  # every label fine, the whole too long
    ],
)
def test_a_trailing_dot_is_the_root_and_only_it_is_stripped(host: str, valid: bool) -> None:
    assert valid_host(host) is valid


def test_digit_strings_reach_both_ends_of_their_range() -> None:
    server = parse_server(KEY, json.dumps({"host": "10.0.0.1", "port": "65535", "weight": "1000"}))
    assert (server.Port, server.Weight) == (65535, 1000)
    server = parse_server(KEY, json.dumps({"host": "10.0.0.1", "port": "1", "weight": "1"}))
    assert (server.Port, server.Weight) == (1, 1)
    with pytest.raises(Rejected, match="port out of range 1-65535"):
        parse_server(KEY, json.dumps({"host": "10.0.0.1", "port": "65536"}))


def test_a_value_of_exactly_64_kib_is_parsed_and_no_longer() -> None:
    head = '{"host": "10.0.0.1", "port": 80, "pad": "'
    exact = head + "x" * (64 * 1024 - len(head) - 2) + '"}'
    assert parse_server(KEY, exact).Port == 80
    with pytest.raises(Rejected, match="^value larger than 65536 bytes$"):
        parse_server(KEY, exact[:-2] + 'x"}')


def test_server_is_never_equal_to_another_type() -> None:
    server = Server("a", KEY, "10.0.0.1", 80)
    assert server.__eq__("10.0.0.1:80") is NotImplemented
    assert (server == "10.0.0.1:80") is False and server != "10.0.0.1:80"


def test_templates_reach_every_server_field() -> None:
    out = render(
        {KEY: json.dumps({"host": "10.0.0.1", "port": 80, "weight": 2})},
        '{{ range servers "web" }}{{ .ID }} {{ .Key }} {{ .Host }} {{ .Port }} {{ .Weight }} {{ .Addr }}'
        '{{ end }}|{{ printf "%v" (servers "web") }}',
    )
    assert out == f"a {KEY} 10.0.0.1 80 2 10.0.0.1:80|[{{a {KEY} 10.0.0.1 80 2 10.0.0.1:80}}]"
    types = render({KEY: A}, '{{ printf "%T %T" (servers "web") (index (servers "web") 0) }}')
    assert types == "[]services.Server services.Server"


def test_a_bad_service_name_is_rejected_saying_why() -> None:
    index = index_services([], ["bad name"])
    assert index.rejected == {"/services/bad name": "service name is not [A-Za-z0-9._-]"}


def test_a_fold_nobody_holds_any_more_is_released() -> None:
    claims = NameClaims()
    assert claims.judge("new", []) is None  # never held: nothing to release
    assert claims.judge("web", ["web", "Web"]) == "web"
    assert claims.judge("web", []) is None
    assert claims.judge("web", ["Web"]) == "Web"
    claims.keep_only([])  # every name gone: when both come back, the usual order decides
    assert claims.judge("web", ["Web", "web"]) == "web"


def test_reject_log_forgets_under_a_root_spelled_with_a_slash(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="muster.registry.index")
    reject_log = RejectLog()
    for rejected in ({KEY: "value is not JSON"}, {}, {KEY: "value is not JSON"}):
        reject_log.report(rejected, "/services/")
    assert len(caplog.records) == 2  # fixed in between: broken again is news


def test_a_root_may_end_in_a_slash() -> None:
    index = index_services([(KEY, A)], ["web"], "/services/")
    assert [s.Addr for s in index.services["web"]] == ["10.0.0.1:80"]
    out = render({"/apps/web/servers/a": A}, '{{ range servers "web" "/apps/" }}{{ .Addr }}{{ end }}')
    assert out == "10.0.0.1:80"


def test_template_funcs_take_at_most_one_root() -> None:
    with pytest.raises(TemplateExecError, match="error calling servers: at most one root"):
        render({}, '{{ servers "web" "/a" "/b" }}')


def test_servers_wants_a_string_name() -> None:
    with pytest.raises(TemplateExecError, match="expected string; found 5"):
        render({}, "{{ servers 5 }}")


def test_a_value_on_the_servers_directory_key_is_not_an_ignored_entry() -> None:
    reported: list[dict[str, str]] = []

    class Recording(RejectLog):
        def report(self, rejected: Mapping[str, str], root: str) -> None:
            reported.append(dict(rejected))

    values = {KEY: A, "/services/web/servers": "set by hand", "/services/web/sever": "a typo"}
    assert render(values, '{{ len (servers "web") }}', Recording()) == "1"
    assert reported == [{"/services/web/sever": IGNORED_KEY}]
