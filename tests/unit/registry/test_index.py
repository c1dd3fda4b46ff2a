from __future__ import annotations

import concurrent.futures
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest

import muster.registry.resolve as resolve
from muster.confd.store import KVStore
from muster.gotemplate import Template
from muster.registry.index import (
    IGNORED_KEY,
    HostResolver,
    NameClaims,
    Rejected,
    RejectLog,
    Server,
    index_services,
    parse_server,
    valid_host,
    valid_name,
)
from muster.registry.servicefuncs import service_funcs

KEY = "/services/web/servers/a"


def value(**fields: object) -> str:
    return json.dumps(fields)


@pytest.mark.parametrize(
    "host", ["10.0.0.5", "::1", "2001:db8::1", "localhost", "api.internal", "a-b.example.com."]
)
def test_valid_hosts(host: str) -> None:
    assert valid_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "1.2.3.4; include /etc/passwd",
        "1.2.3.4\n}\nserver {",
        "",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "fe80::1%eth0",
        "1.2.3",  # inet_aton would read it as 1.2.0.3
        "-bad.example",
        "bad-.example",
        "under_score.example",
        "a" * 64 + ".example",
        "a." * 127 + "com",
        "exa mple.com",
        "ex{ample}.com",
        "[::1]",
        "127.0.0.1:80",
    ],
)
def test_invalid_hosts(host: str) -> None:
    assert not valid_host(host)


@pytest.mark.parametrize("name", ["web", "web-1", "a.b_c", "X9"])
def test_valid_names(name: str) -> None:
    assert valid_name(name)


@pytest.mark.parametrize("name", ["", "bad name", "a\nb", "a{b", "a;b", "a}", "-x", ".x", "é", "a" * 129])
def test_invalid_names(name: str) -> None:
    assert not valid_name(name)


def test_parse_server_fields() -> None:
    server = parse_server(KEY, value(host="10.0.0.5", port=8080, weight=3, zone="x"))
    assert (server.ID, server.Host, server.Port, server.Weight, server.Addr) == (
        "a",
        "10.0.0.5",
        8080,
        3,
        "10.0.0.5:8080",
    )


def test_ipv6_addr_is_bracketed_and_port_may_be_a_digit_string() -> None:
    server = parse_server(KEY, value(host="::1", port="81"))
    assert server.Addr == "[::1]:81"
    assert server.Port == 81
    assert server.Weight == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not JSON"),
        ('["10.0.0.1", 80]', "not a JSON object"),
        ('"10.0.0.1:80"', "not a JSON object"),
        (value(port=80), "host"),
        (value(host=5, port=80), "host"),
        (value(host="10.0.0.1"), "no port"),
        (value(host="10.0.0.1", port=0), "port out of range"),
        (value(host="10.0.0.1", port=65536), "port out of range"),
        (value(host="10.0.0.1", port=80.0), "port is not an integer"),
        (value(host="10.0.0.1", port=True), "port is not an integer"),
        (value(host="10.0.0.1", port="80; x"), "port is not an integer"),
        (value(host="10.0.0.1", port=80, weight=0), "weight out of range"),
        (value(host="10.0.0.1", port=80, weight=1001), "weight out of range"),
        (value(host="10.0.0.1", port=80, weight="2 backup"), "weight is not an integer"),
        ('{"host": "10.0.0.1", "port": 80, "x": "' + "y" * 70000 + '"}', "larger than"),
    ],
)
def test_parse_server_rejects(raw: str, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        parse_server(KEY, raw)


def test_bad_server_id_is_rejected() -> None:
    with pytest.raises(Rejected, match="server ID"):
        parse_server("/services/web/servers/a b", value(host="10.0.0.1", port=80))


def entries(mapping: dict[str, str]) -> list[tuple[str, str]]:
    return sorted(mapping.items())


def test_index_keeps_good_entries_and_explains_bad_ones() -> None:
    data = {
        "/services/web/servers/a": value(host="10.0.0.1", port=80),
        "/services/web/servers/b": "garbage",
        "/services/web/servers/c": value(host="10.0.0.3", port=80),
        "/services/api/servers/x": value(host="1.2.3.4; include /etc/passwd", port=80),
        "/services/bad name/servers/x": value(host="10.0.0.9", port=80),
    }
    index = index_services(entries(data), ["web", "api", "bad name"])
    assert [s.ID for s in index.services["web"]] == ["a", "c"]
    assert index.services["api"] == []  # still listed: the template answers 503
    assert "bad name" not in index.services
    assert set(index.rejected) == {
        "/services/web/servers/b",
        "/services/api/servers/x",
        "/services/bad name",
    }


def test_names_differing_only_in_case_seen_together_prefer_lower_case() -> None:
    index = index_services([], ["Web", "web", "WEB"])
    assert list(index.services) == ["web"]
    assert set(index.rejected) == {"/services/Web", "/services/WEB"}
    assert index_services([], ["Web", "WEB"]).services.keys() == {"WEB"}  # then code point order


def test_the_name_registered_first_keeps_it_against_a_newcomer() -> None:
    claims = NameClaims()
    assert list(index_services([], ["hello"], claims=claims).services) == ["hello"]
    # "Hello" sorts first and is not lower case, but "hello" was there first.
    index = index_services([], ["Hello", "hello"], claims=claims)
    assert list(index.services) == ["hello"]
    assert index.rejected == {
        "/services/Hello": "service name differs only in case from hello, registered first"
    }
    # Once the holder leaves, the other name takes over, and keeps it when it comes back.
    assert list(index_services([], ["HELLO"], claims=claims).services) == ["HELLO"]
    assert list(index_services([], ["hello", "HELLO"], claims=claims).services) == ["HELLO"]


def test_hostile_values_cost_only_their_entry() -> None:
    hostile = [
        "[" * 2000 + "]" * 2000,
        '{"host": ' * 3000,
        '{"host": "10.0.0.1", "port": ' + "9" * 5000 + "}",
        '{"host": "10.0.0.1", "port": 1e999}',
        '{"host": "10.0.0.1\u0000", "port": 80}',
        '{"host": "\udc80", "port": 80}',
        "\udcff\udcfe",
        '{"host": "255.255.255.255", "port": 80}',
    ] + [f'{{"host": "10.0.0.1{chr(c)}", "port": 80}}' for c in range(32)]
    data = {f"/services/web/servers/h{i}": v for i, v in enumerate(hostile)}
    data["/services/web/servers/ok"] = value(host="10.0.0.9", port=80)
    index = index_services(entries(data), ["web"])
    assert [s.ID for s in index.services["web"]] == ["ok"]
    assert set(index.rejected) == {k for k in data if not k.endswith("/ok")}
    assert index.rejected["/services/web/servers/h0"] == "value is nested too deeply"


def test_duplicate_address_is_kept_once() -> None:
    data = {
        "/services/web/servers/a": value(host="10.0.0.1", port=80),
        "/services/web/servers/b": value(host="10.0.0.1", port=80),
    }
    index = index_services(entries(data), ["web"])
    assert [s.ID for s in index.services["web"]] == ["a"]
    assert index.rejected == {"/services/web/servers/b": "address already registered under another ID"}


def test_unresolvable_names_are_left_out_and_names_render_as_addresses() -> None:
    asked: list[Collection[str]] = []

    def resolvable(hosts: Collection[str]) -> dict[str, tuple[str, ...]]:
        asked.append(set(hosts))
        return {"good.internal": ("10.0.0.9", "2001:db8::9")}

    data = {
        "/services/web/servers/a": value(host="good.internal", port=80),
        "/services/web/servers/b": value(host="gone.internal", port=80),
        "/services/web/servers/c": value(host="10.0.0.1", port=80),
    }
    index = index_services(entries(data), ["web"], resolvable=resolvable)
    # One server per address, as nginx makes one peer per address of a name it resolves.
    assert [(s.ID, s.Host, s.Addr) for s in index.services["web"]] == [
        ("a", "good.internal", "10.0.0.9:80"),
        ("a", "good.internal", "[2001:db8::9]:80"),
        ("c", "10.0.0.1", "10.0.0.1:80"),
    ]
    assert index.rejected == {"/services/web/servers/b": "host does not resolve"}
    assert asked == [{"good.internal", "gone.internal"}]  # addresses are never looked up


def test_other_keys_are_ignored_and_said_so() -> None:
    data = {
        "/services/web/config": "{}",
        "/services/web/servers/a/deeper": value(host="10.0.0.1", port=80),
        "/servicesx/web/servers/a": value(host="10.0.0.1", port=80),
    }
    index = index_services(entries(data), ["web"])
    assert index.services == {"web": []}
    assert index.rejected == {
        "/services/web/config": IGNORED_KEY,
        "/services/web/servers/a/deeper": IGNORED_KEY,
    }


def test_the_template_functions_say_which_keys_they_ignore(caplog: pytest.LogCaptureFixture) -> None:
    store = KVStore(
        {
            "/services/web/servers/a": value(host="10.0.0.1", port=80),
            "/services/web/servers/a/deeper": value(host="10.0.0.2", port=80),
            "/services/web/config": "x",
        }
    )
    with caplog.at_level(logging.WARNING, logger="muster.registry.index"):
        funcs = service_funcs(store, reject_log=RejectLog(), resolvable=None)
        assert [s.ID for s in funcs["servers"].fn("web")] == ["a"]
    ignored = sorted(line for line in caplog.messages if IGNORED_KEY in line)
    assert len(ignored) == 2 and "web/config " in ignored[0] and "servers/a/deeper" in ignored[1]


def test_host_resolver_caches_and_answers() -> None:
    resolver = HostResolver(timeout=5.0)
    found = resolver(["localhost", "nonexistent.invalid"])
    assert found.keys() == {"localhost"} and "127.0.0.1" in found["localhost"]
    assert resolver(["localhost"]) == {"localhost": found["localhost"]}


def test_host_resolver_waits_once_for_a_slow_lookup(monkeypatch: pytest.MonkeyPatch) -> None:

    release = threading.Event()
    calls: list[str] = []

    def slow(host: str) -> list[str]:
        calls.append(host)
        release.wait(5)
        return ["10.0.0.1"]

    monkeypatch.setattr(resolve, "lookup_addresses", slow)
    resolver = HostResolver(timeout=0.05)
    assert resolver(["slow.example"]) == {}  # past the deadline: left out this time
    assert resolver(["slow.example"]) == {}  # still pending: no second wait, no second lookup
    assert calls == ["slow.example"]
    release.set()
    # The lookup now finishes in its thread: wait for its answer to reach the cache.
    deadline = time.monotonic() + 10
    while resolver(["slow.example"]) == {} and time.monotonic() < deadline:
        time.sleep(0.01)
    assert resolver(["slow.example"]) == {"slow.example": ("10.0.0.1",)}
    assert calls == ["slow.example"]


def test_a_stuck_lookup_does_not_hold_up_the_exit(tmp_path: Path) -> None:
    # A resolver that never answers: the process must still exit once its work is done.
    script = tmp_path / "stuck.py"
    script.write_text(
        "import time\n"
        "import muster.registry.resolve\n"
        "import muster.registry.index as services\n"
        "muster.registry.resolve.lookup_addresses = lambda host: time.sleep(60) or ['10.0.0.1']\n"
        "assert services.HostResolver(timeout=0.05)(['stuck.example']) == {}\n"
    )
    started = time.monotonic()
    subprocess.run([sys.executable, str(script)], check=True, timeout=30)
    assert time.monotonic() - started < 10


class InlineExecutor(concurrent.futures.Executor):
    """Runs each call inside ``submit``: the lookup is over before ``submit`` returns, the
    interleaving a loaded machine produces now and then with a thread pool."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def call_with_deadline(fn: Callable[[], Any], seconds: float = 10.0) -> Any:
    """``fn()`` in a daemon thread, so a deadlock fails the test instead of hanging the run."""
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "deadlocked"
    return result[0]


def test_host_resolver_survives_a_lookup_that_finishes_before_submit_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    def lookup(host: str) -> list[str]:
        if host != "up.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return ["10.0.0.1"]

    monkeypatch.setattr(resolve, "lookup_addresses", lookup)
    resolver = HostResolver(timeout=5.0, executor=InlineExecutor())
    hosts = ["up.example", "down.example"]
    assert call_with_deadline(lambda: resolver(hosts)) == {"up.example": ("10.0.0.1",)}
    assert call_with_deadline(lambda: resolver(hosts)) == {"up.example": ("10.0.0.1",)}  # cached


def test_host_resolver_answers_each_finished_lookup_under_contention(monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setattr(resolve, "lookup_addresses", lambda host: ["10.0.0.1"])
    # Threads render at once with fresh names; every lookup is instant, so any answer
    # lost between a future completing and its result being stored shows up here.
    resolver = HostResolver(timeout=10.0, negative_ttl=0.0)
    failures: list[str] = []

    def render(worker: int) -> None:
        for round in range(50):
            hosts = {f"h{worker}-{round}-{i}.example" for i in range(4)}
            if set(resolver(hosts)) != hosts:
                failures.append(f"worker {worker} round {round}")

    threads = [threading.Thread(target=render, args=(n,), daemon=True) for n in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "deadlocked"
    assert failures == []


def test_host_resolver_retries_a_lookup_that_raised(monkeypatch: pytest.MonkeyPatch) -> None:

    answers: list[list[str] | Exception] = [RuntimeError("resolver bug"), ["10.0.0.1"]]

    def flaky(host: str) -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(resolve, "lookup_addresses", flaky)
    resolver = HostResolver(timeout=5.0, negative_ttl=0.0, executor=InlineExecutor())
    assert resolver(["a.example"]) == {}  # failed: stored as unresolved, not left pending
    assert resolver(["a.example"]) == {"a.example": ("10.0.0.1",)}
    assert answers == []


def test_reject_log_logs_each_key_once(caplog: pytest.LogCaptureFixture) -> None:
    reject_log = RejectLog()
    caplog.set_level(logging.WARNING, logger="muster.registry.index")
    reject_log.report({"/services/web/servers/b": "value is not JSON"}, "/services")
    reject_log.report({"/services/web/servers/b": "value is not JSON"}, "/services")
    assert len(caplog.records) == 1
    # Fixed, then broken again: that is news.
    reject_log.report({}, "/services")
    reject_log.report({"/services/web/servers/b": "value is not JSON"}, "/services")
    assert len(caplog.records) == 2
    # The log names the key and reason, never the value.
    assert "value is not JSON" in caplog.records[0].getMessage()


def test_reject_log_keeps_keys_on_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="muster.registry.index")
    RejectLog().report({"/services/a\nb": "service name is not [A-Za-z0-9._-]"}, "/services")
    assert "\n" not in caplog.records[0].getMessage()


STOCK = """\
{{- range $name := services }}{{ $name }}:{{ range servers $name }} {{ .Addr }}/{{ .Weight }}{{ end }}
{{ end }}"""


def render(values: dict[str, str], source: str = STOCK) -> str:
    funcs = service_funcs(KVStore(values), reject_log=RejectLog(), resolvable=None)
    return Template("t", funcs=funcs).parse(source).execute(None)


def test_template_funcs_render_only_valid_entries() -> None:
    out = render(
        {
            "/services/web/servers/a": value(host="10.0.0.1", port=80, weight=2),
            "/services/web/servers/b": value(host="10.0.0.2; }", port=80),
            "/services/api/servers/a": "nope",
        }
    )
    assert out == "api:\nweb: 10.0.0.1:80/2\n"


def test_template_funcs_take_a_root() -> None:
    out = render(
        {"/apps/web/servers/a": value(host="10.0.0.1", port=80)},
        '{{ range services "/apps" }}{{ . }}{{ range servers . "/apps" }} {{ .ID }}{{ end }}{{ end }}',
    )
    assert out == "web a"


def test_unknown_service_has_no_servers() -> None:
    assert render({}, '{{ len (servers "nope") }}') == "0"


def test_server_struct_equality() -> None:
    assert Server("a", KEY, "10.0.0.1", 80) == Server("a", KEY, "10.0.0.1", 80)
    assert Server("a", KEY, "10.0.0.1", 80) != Server("a", KEY, "10.0.0.1", 81)
    assert repr(Server("a", KEY, "::1", 80)) == "Server('a', '[::1]:80', weight=1)"


class Slot:
    """Like the daemon's template cache: functions bound once, the snapshot swapped under them."""

    def __init__(self, store: KVStore) -> None:
        self.store = store

    def lsdir(self, path: str) -> list[str]:
        return self.store.lsdir(path)

    def gets(self, pattern: str) -> list[object]:
        return list(self.store.gets(pattern))


def test_index_follows_a_slot_pointed_at_a_new_snapshot() -> None:
    slot = Slot(KVStore({}))
    funcs = service_funcs(slot, reject_log=RejectLog(), resolvable=None)
    template = Template("t", funcs=funcs).parse(STOCK)
    assert template.execute(None) == ""
    slot.store = KVStore({"/services/web/servers/a": value(host="10.0.0.1", port=80)})
    assert template.execute(None) == "web: 10.0.0.1:80/1\n"


def reference_is_ip(host: str) -> bool:
    import ipaddress

    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    scoped = isinstance(addr, ipaddress.IPv6Address) and addr.scope_id is not None
    return not (scoped or addr.is_unspecified or addr.is_multicast)


def test_fast_address_check_agrees_with_ipaddress() -> None:
    import random

    from muster.registry.index import _is_ip

    rng = random.Random(5)
    pieces = "0 00 01 1 9 10 99 100 199 200 249 250 255 256 300 224 239 240 a -1 ١".split() + ["", " 1"]
    samples = [".".join(rng.choice(pieces) for _ in range(rng.choice([3, 4, 4, 4, 5]))) for _ in range(20000)]
    samples += ["::1", "::", "ff02::1", "fe80::1%eth0", "2001:db8::1", "1.2.3.4\n", "0.0.0.0", "224.0.0.1"]
    for host in samples:
        assert _is_ip(host) == reference_is_ip(host), host


def test_parse_cache_reparses_only_what_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    import muster.registry.index as services

    calls: list[str] = []
    real = services.parse_server

    def counting(key: str, raw: str) -> Server:
        calls.append(key)
        return real(key, raw)

    monkeypatch.setattr(services, "parse_server", counting)
    cache: dict[str, tuple[str, Server | str]] = {}
    data = {
        "/services/web/servers/a": value(host="10.0.0.1", port=80),
        "/services/web/servers/b": "bad",
    }
    first = index_services(entries(data), ["web"], cache=cache)
    assert sorted(calls) == ["/services/web/servers/a", "/services/web/servers/b"]
    calls.clear()
    data["/services/web/servers/c"] = value(host="10.0.0.3", port=80)
    data["/services/web/servers/a"] = value(host="10.0.0.9", port=80)
    second = index_services(entries(data), ["web"], cache=cache)
    assert sorted(calls) == ["/services/web/servers/a", "/services/web/servers/c"]
    assert first.rejected == second.rejected == {"/services/web/servers/b": "value is not JSON"}
    assert [s.Addr for s in second.services["web"]] == ["10.0.0.9:80", "10.0.0.3:80"]
    del data["/services/web/servers/b"]
    index_services(entries(data), ["web"], cache=cache)
    assert set(cache) == {"/services/web/servers/a", "/services/web/servers/c"}  # bounded by the snapshot
