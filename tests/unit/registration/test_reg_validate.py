"""Validation of everything a registration writes: names, host, port, TTL, prefix, metadata."""

from __future__ import annotations

import json

import pytest

from muster.errors import RegistrationError
from muster.registration.validate import RegistrationSpec, default_id, validate_host


def test_key_and_value_follow_the_seed_layout() -> None:
    spec = RegistrationSpec.create(
        "web", "10.0.0.5", 8080, server_id="web-1", ttl=60, meta={"zone": "eu", "weight": "3"}
    )
    assert spec.key == "/services/web/servers/web-1"
    assert spec.value == '{"host":"10.0.0.5","port":8080,"weight":"3","zone":"eu"}'
    assert json.loads(spec.value)["port"] == 8080  # a number, as the seed's curl writes it


def test_prefix_is_normalised() -> None:
    assert RegistrationSpec.create("a", "h", 1, server_id="x", prefix="/reg/v1/").key == "/reg/v1/a/servers/x"
    assert RegistrationSpec.create("a", "h", 1, server_id="x", prefix="/").key == "/a/servers/x"


def test_default_id_is_hostname_and_port() -> None:
    spec = RegistrationSpec.create("web", "10.0.0.5", 8080)
    assert spec.server_id == default_id(8080)
    assert spec.server_id.endswith("-8080")


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("10.0.0.5", "10.0.0.5"),
        ("::1", "::1"),
        ("[2001:DB8:0:0::1]", "2001:db8::1"),
        ("web-1.example.com", "web-1.example.com"),
        ("localhost.", "localhost"),
        ("Web1", "Web1"),
    ],
)
def test_good_hosts(given: str, canonical: str) -> None:
    assert validate_host(given) == canonical


@pytest.mark.parametrize(
    "host",
    [
        "",
        "10.0.0.256",
        "-web",
        "web-",
        "a..b",
        "a b",
        "web_1",
        "x" * 64,
        "fe80::1%eth0",
        "1.2.3",
        "host;rm -rf",
        "a" * 250 + ".com",
    ],
)
def test_bad_hosts(host: str) -> None:
    with pytest.raises(RegistrationError, match="invalid host"):
        validate_host(host)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"service": "web/x"}, "invalid service name 'web/x'"),
        ({"service": ""}, "invalid service name"),
        ({"service": ".."}, "invalid service name"),
        ({"server_id": "a b"}, "invalid server ID 'a b'"),
        ({"server_id": "a:1"}, "invalid server ID"),
        ({"port": 0}, "invalid port 0"),
        ({"port": 65536}, "invalid port 65536"),
        ({"port": True}, "invalid port"),
        ({"ttl": 0}, "invalid TTL 0"),
        ({"ttl": 1.5}, "whole number"),
        ({"prefix": "services"}, "must start with '/'"),
        ({"prefix": "/a//b"}, "invalid prefix"),
        ({"prefix": "/a/../b"}, "invalid prefix"),
        ({"meta": {"host": "x"}}, "overwrite the server's host"),
        ({"meta": {"port": "1"}}, "overwrite the server's port"),
        ({"meta": {"a b": "x"}}, "invalid metadata key 'a b'"),
        ({"meta": {"k": "line\nbreak"}}, "control characters"),
        ({"meta": {"k": "bad\udcff"}}, "not valid UTF-8"),
        ({"meta": {"k": 3}}, "expected a string, got int"),
        ({"meta": {"k": "x" * 5000}}, "longer than 4096"),
    ],
)
def test_bad_input_is_named_in_the_error(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"service": "web", "host": "10.0.0.5", "port": 8080, "server_id": "a"}
    args.update(kwargs)
    with pytest.raises(RegistrationError, match=message.replace("(", r"\(")):
        RegistrationSpec.create(**args)  # type: ignore[arg-type]


def test_unicode_metadata_is_kept_as_json_escapes() -> None:
    spec = RegistrationSpec.create("web", "h", 1, server_id="a", meta={"owner": "Zoë"})
    assert spec.value == '{"host":"h","port":1,"owner":"Zo\\u00eb"}'
    assert json.loads(spec.value)["owner"] == "Zoë"


def test_public_names_are_exported() -> None:
    import muster.registration as package

    for name in package.__all__:
        assert getattr(package, name) is not None, name
    assert {"registration", "sync_registration", "Registration", "RegistrationSpec"} <= set(package.__all__)
