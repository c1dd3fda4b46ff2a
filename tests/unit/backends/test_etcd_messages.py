"""Parsing of etcd gateway and v2 replies: errors, watch messages, events."""

from __future__ import annotations

import pytest

from muster.backends.etcd.v2_client import flatten, is_noop_event
from muster.backends.etcd.v3_client import GatewayError, classify, parse_watch_message
from muster.errors import BackendUnavailable, RevisionCompacted


def test_classify_unary_errors() -> None:
    compacted = {"error": "etcdserver: mvcc: required revision has been compacted", "code": 11,
                 "message": "etcdserver: mvcc: required revision has been compacted"}  # fmt: skip
    assert isinstance(classify(compacted, "range"), RevisionCompacted)
    no_leader = {"error": "etcdserver: no leader", "message": "etcdserver: no leader", "code": 14}
    assert isinstance(classify(no_leader, "range"), BackendUnavailable)
    timed_out = {"message": "etcdserver: request timed out", "code": 4}
    assert isinstance(classify(timed_out, "put"), BackendUnavailable)
    token = classify({"message": "etcdserver: invalid auth token", "code": 16}, "range")
    assert isinstance(token, GatewayError) and token.is_auth_token_error
    lease = classify({"message": "etcdserver: requested lease not found", "code": 5}, "revoke")
    assert isinstance(lease, GatewayError) and lease.is_lease_not_found and not lease.is_auth_token_error
    assert "range: etcdserver: permission denied" in str(classify({"message": "etcdserver: permission denied",
                                                                  "code": 7}, "range"))  # fmt: skip


def test_classify_stream_error_and_plain_text() -> None:
    stream = {"error": {"grpc_code": 14, "http_code": 503, "message": "etcdserver: no leader"}}
    assert isinstance(classify(stream, "watch"), BackendUnavailable)
    cn = classify({"message": "CommonName of client sending a request against gateway will be ignored"},
                  "range", 400)  # fmt: skip
    assert "client-certificate auth and RBAC" in str(cn)


def test_parse_watch_messages() -> None:
    created = parse_watch_message({"result": {"header": {"revision": "7"}, "created": True}})
    assert created.created and created.watch_id == 0 and created.revision == 7 and not created.is_progress
    event = parse_watch_message({"result": {"header": {"revision": "9"}, "watch_id": "1", "events": [
        {"kv": {"key": "L2EvYg==", "value": "MQ==", "mod_revision": "8"}},
        {"type": "DELETE", "kv": {"key": "L2EvYw==", "mod_revision": "9"}},
    ]}})  # fmt: skip
    assert [(e.type, e.key, e.value, e.mod_revision) for e in event.events] == [
        ("PUT", b"/a/b", b"1", 8), ("DELETE", b"/a/c", b"", 9)]  # fmt: skip
    progress = parse_watch_message({"result": {"header": {"revision": "12"}}})
    assert progress.is_progress and progress.revision == 12
    canceled = parse_watch_message({"result": {"header": {}, "canceled": True, "compact_revision": "5"}})
    assert canceled.canceled and canceled.compact_revision == 5
    with pytest.raises(BackendUnavailable):
        parse_watch_message({"error": {"grpc_code": 14, "message": "etcdserver: no leader"}})


def test_flatten_v2_tree() -> None:
    tree = {"key": "/s", "dir": True, "nodes": [
        {"key": "/s/a", "value": "1"},
        {"key": "/s/d", "dir": True, "nodes": [{"key": "/s/d/b", "value": "2"}]},
        {"key": "/s/empty", "dir": True},
    ]}  # fmt: skip
    assert dict(flatten(tree)) == {"/s/a": "1", "/s/d/b": "2"}
    assert dict(flatten({"key": "/leaf", "value": ""})) == {"/leaf": ""}
    assert list(flatten(None)) == []


@pytest.mark.parametrize(
    ("event", "noop"),
    [
        ({"action": "update", "refresh": True, "node": {"key": "/k", "value": "v"}}, True),
        (
            {"action": "set", "node": {"key": "/k", "value": "v"}, "prevNode": {"key": "/k", "value": "v"}},
            True,
        ),
        (
            {"action": "set", "node": {"key": "/k", "value": "w"}, "prevNode": {"key": "/k", "value": "v"}},
            False,
        ),
        ({"action": "set", "node": {"key": "/k", "value": "v"}}, False),
        ({"action": "create", "node": {"key": "/k", "value": "v"}}, False),
        ({"action": "expire", "node": {"key": "/k"}, "prevNode": {"key": "/k", "value": "v"}}, False),
        ({"action": "delete", "node": {"key": "/k"}, "prevNode": {"key": "/k", "value": "v"}}, False),
        (
            {"action": "set", "node": {"key": "/d", "dir": True}, "prevNode": {"key": "/d", "dir": True}},
            False,
        ),
    ],
)
def test_noop_events(event: dict[str, object], noop: bool) -> None:
    assert is_noop_event(event) is noop
