"""Pure parts of the redis backend: confd's node syntax, key names with -separator, glob escaping."""

from __future__ import annotations

import pytest

from muster.backends import BackendOptions
from muster.backends.redis.backend import RedisBackend, _key
from muster.backends.redis.client import glob_escape, parse_node
from muster.errors import ConfigError


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ("127.0.0.1:6379", {"host": "127.0.0.1", "port": 6379, "db": 0}),
        ("10.0.0.1:6380/2", {"host": "10.0.0.1", "port": 6380, "db": 2}),
        ("redis.local", {"host": "redis.local", "port": 6379, "db": 0}),
        ("[::1]:6379/1", {"host": "::1", "port": 6379, "db": 1}),
        ("/run/redis.sock", {"unix_socket_path": "/run/redis.sock", "db": 0}),
        ("/run/redis.sock/3", {"unix_socket_path": "/run/redis.sock", "db": 3}),
        ("redis://:pw@h:6380/4", {"url": "redis://:pw@h:6380/4"}),
    ],
)
def test_parse_node(node: str, expected: dict[str, object]) -> None:
    assert parse_node(node) == expected


def test_a_bad_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="host:port"):
        parse_node("host:http")


def test_separator_maps_both_ways() -> None:
    slash = RedisBackend(options=BackendOptions())
    assert slash.to_redis("/a/b") == "/a/b" and slash.to_path("a/b") == "/a/b"
    colon = RedisBackend(options=BackendOptions(separator=":"))
    assert colon.to_redis("/a/b/c") == "a:b:c"
    assert colon.to_path("a:b:c") == "/a/b/c"
    assert colon.to_path(colon.to_redis("/x/y")) == "/x/y"


def test_glob_characters_are_escaped() -> None:
    assert glob_escape("/a*b?[c]\\d") == "/a\\*b\\?\\[c\\]\\\\d"


def test_prefixes_as_confd_takes_them() -> None:
    assert _key(["/app/*", "/app/", "/cfg"]) == ("/app", "/cfg")
    assert _key(["", "/"]) == ("/",)


def test_separator_flows_from_flags_and_env_to_the_backend() -> None:
    from muster.config import load
    from muster.daemon.backend import create_backend

    none = {"config_file": "/nonexistent/confd.toml"}
    cfg = load({**none, "backend": "redis", "separator": ":"}, {})
    backend = create_backend(cfg)
    assert isinstance(backend, RedisBackend) and backend.separator == ":"
    assert load({**none, "backend": "redis"}, {"CONFD_SEPARATOR": "."}).separator == "."
