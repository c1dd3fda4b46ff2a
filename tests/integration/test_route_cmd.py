"""``muster route set|get|rm`` against a real etcd: validated before anything is written."""

from __future__ import annotations

import json

from click.testing import CliRunner

from muster.cli.main import main
from muster.stack.etcd import EtcdProcess


def run(etcd: EtcdProcess, prefix: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["route", *args, "--node", etcd.client_url, "--prefix", prefix])
    return result.exit_code, result.output


def test_set_get_rm(etcd: EtcdProcess, key_prefix: str) -> None:
    code, out = run(etcd, key_prefix, "get", "api")
    assert code == 1 and "no route" in out
    flags = ["--host", "api.example.com", "--path", "/", "--read-timeout", "30"]
    flags += ["--balance", "hash:cookie:sid"]
    flags += ["--response-header", "X-Frame-Options=DENY", "--rate-limit", "50/100", "--websocket"]
    code, out = run(etcd, key_prefix, "set", "api", *flags)
    assert code == 0, out
    code, out = run(etcd, key_prefix, "get", "api")
    assert code == 0, out
    assert json.loads(out) == {
        "hosts": ["api.example.com"],
        "paths": ["/"],
        "timeouts": {"read": 30.0},
        "balance": "hash:cookie:sid",
        "headers": {"response": {"X-Frame-Options": "DENY"}},
        "rate_limit": {"rate": 50, "burst": 100},
        "websocket": True,
    }
    code, out = run(etcd, key_prefix, "rm", "api")
    assert code == 0 and "removed" in out
    assert run(etcd, key_prefix, "get", "api")[0] == 1


def test_bad_routes_are_refused_before_anything_is_written(etcd: EtcdProcess, key_prefix: str) -> None:
    bad = [
        ("--request-header", "X-A=a;b"),
        ("--host", "a{b}.example.com"),
        ("--path", "/a b/"),
        ("--retries", "1000"),
        ("--split", "ghost=5"),
        ("--json", '{"hosts": ["ok.example.com"], "bogus": 1}'),
    ]
    for flag, value in bad:
        code, out = run(etcd, key_prefix, "set", "api", flag, value)
        assert code == 2, (flag, out)
        assert f"{key_prefix}/api/route" in out, out
    assert "service ghost is not registered" in run(etcd, key_prefix, "set", "api", "--split", "ghost=5")[1]
    assert run(etcd, key_prefix, "get", "api")[0] == 1, "nothing was written"
