"""Credentials never reach a log line, an error message or /status: URL userinfo and known secrets."""

from __future__ import annotations

import logging
import sys

import pytest

from muster import redact as redact_mod
from muster.log import RedactingFormatter, kv
from muster.redact import add_secret, add_url_secrets, redact


@pytest.fixture(autouse=True)
def no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact_mod, "_secrets", set())
    monkeypatch.setattr(redact_mod, "_ordered", [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://root:pw@10.0.0.1:2379", "http://***@10.0.0.1:2379"),
        ("https://root:pw@etcd/v3/kv/range?x=a@b", "https://***@etcd/v3/kv/range?x=a@b"),
        ("http://token@etcd:2379", "http://***@etcd:2379"),
        # A raw "@" in the password: parsers end the userinfo at the last "@".
        ("http://u:p@ss@h:2379/x", "http://***@h:2379/x"),
        ("nodes=http://a:b@h1:2379,http://c:d@h2:2379", "nodes=http://***@h1:2379,http://***@h2:2379"),
        ("('http://a:b@h1', 'http://h2')", "('http://***@h1', 'http://h2')"),
        (
            "range http://h:2379: refused; mail root@example.com",
            "range http://h:2379: refused; mail root@example.com",
        ),
        ("http://127.0.0.1:2379", "http://127.0.0.1:2379"),
    ],
)
def test_url_userinfo_is_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_registered_secrets_are_masked_anywhere() -> None:
    add_secret("s3cr%40t")  # the percent-decoded form too
    add_secret("pw")  # too short to replace as plain text
    assert redact("auth failed for s3cr%40t and s3cr@t, pw") == "auth failed for *** and ***, pw"
    add_url_secrets("http://user:from-url@h:2379")
    add_url_secrets("h:2379")
    add_url_secrets("http://[::1")  # unparsable: ignored
    assert redact("password from-url rejected") == "password *** rejected"


def test_log_lines_are_masked_with_their_tracebacks() -> None:
    add_secret("hunter22")
    assert (
        kv("etcd.failover", failed="http://root:hunter22@h:2379") == "etcd.failover failed=http://***@h:2379"
    )
    try:
        raise ValueError("bad password hunter22 for http://root:x@h")
    except ValueError:
        record = logging.LogRecord("muster", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    text = RedactingFormatter("%(message)s").format(record)
    assert "hunter22" not in text and "root:x" not in text and "http://***@h" in text
