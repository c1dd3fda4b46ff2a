"""``muster register`` refuses bad input with exit 2 and a message naming it, before connecting."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from muster.cli.main import main

BASE = [
    "register",
    "--service",
    "web",
    "--host",
    "10.0.0.5",
    "--port",
    "8080",
    "--node",
    "http://127.0.0.1:9",
]  # discard port: nothing may be written anyway


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The command configures the ``muster`` logger; undo that for the tests that follow."""
    logger = logging.getLogger("muster")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--service", "we b"], "invalid service name 'we b'"),
        (["--host", "10.0.0.256"], "invalid host '10.0.0.256'"),
        (["--port", "0"], "invalid port 0"),
        # What the daemon would reject (``registry.schema``) is refused before any write.
        (["--service=-web"], "invalid service name '-web'"),
        (["--service", "_web"], "invalid service name '_web'"),
        (["--service", "x" * 200], "longer than 128 characters"),
        (["--host", "0.0.0.0"], "invalid host '0.0.0.0'"),
        (["--host", "224.0.0.1"], "invalid host '224.0.0.1'"),
        (["--host", "255.255.255.255"], "invalid host '255.255.255.255'"),
        (["--meta", "weight=0"], "invalid weight 0"),
        (["--id", "a/b"], "invalid server ID 'a/b'"),
        (["--ttl", "0"], "invalid TTL 0"),
        (["--prefix", "services"], "must start with '/'"),
        (["--meta", "zone"], "'zone' is not KEY=VALUE"),
        (["--meta", "a=1", "--meta", "a=2"], "key 'a' given twice"),
        (["--meta", "host=evil"], "overwrite the server's host"),
        (["--check-tcp", "x:1", "--check-cmd", "true"], "at most one health check"),
        (["--check-tcp", "nohost"], "expected HOST:PORT"),
        (["--check-http", "gopher://x"], "invalid check URL"),
        (["--no-check", "--check-cmd", "true"], "--no-check contradicts --check-cmd"),
        (["--backend", "consul"], "'consul' is not one of"),
        (["--rise", "0"], "--rise"),
    ],
)
def test_bad_flags_exit_2_naming_the_problem(extra: list[str], message: str) -> None:
    result = CliRunner().invoke(main, BASE + extra)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(main, ["register", "--help"])
    assert result.exit_code == 0
    for option in ("--check-http", "--drain", "--client-ca-keys", "--meta", "--node"):
        assert option in result.output


def test_unreadable_tls_files_exit_2_without_retrying() -> None:
    result = CliRunner().invoke(
        main, BASE + ["--client-cert", "/nonexistent/cert.pem", "--client-key", "/nonexistent/key.pem"]
    )
    assert result.exit_code == 2, result.output
    assert "cannot load TLS files" in result.output
