from __future__ import annotations

import pytest

from muster.dataplane.peers import Peer, encode_peers


def test_encode_is_sorted_and_deduplicated() -> None:
    peers = [Peer("10.0.0.2", 80), Peer("10.0.0.1", 8080, 3), Peer("10.0.0.2", 80)]
    assert encode_peers(peers) == b"10.0.0.1 8080 3\n10.0.0.2 80 1\n"


def test_encode_empty() -> None:
    assert encode_peers([]) == b""


def test_ipv6_peer_encodes_plainly() -> None:
    assert encode_peers([Peer("::1", 81)]) == b"::1 81 1\n"


@pytest.mark.parametrize(
    ("ip", "port", "weight"),
    [
        ("example.com", 80, 1),  # names must be resolved before the push
        ("1.2.3.4; include /etc/passwd", 80, 1),
        ("10.0.0.1\n}", 80, 1),
        ("10.0.0.1", 0, 1),
        ("10.0.0.1", 65536, 1),
        ("10.0.0.1", 80, 0),
    ],
)
def test_invalid_peers_are_refused(ip: str, port: int, weight: int) -> None:
    with pytest.raises(ValueError):
        Peer(ip, port, weight)


def test_membership_keeps_valid_entries_and_empty_services() -> None:
    from muster.dataplane.sink import membership

    values = {
        "/services/web/servers/a": '{"host": "10.0.0.1", "port": 80}',
        "/services/web/servers/b": '{"host": "10.0.0.2", "port": 81, "weight": 3}',
        "/services/web/servers/evil": '{"host": "1.2.3.4; include /etc/passwd", "port": 80}',
        "/services/web/servers/notjson": "10.0.0.3:80",
        "/services/gone/servers/x": '{"host": "10.0.0.9", "port": 70000}',
        "/services/bad name/servers/x": '{"host": "10.0.0.9", "port": 80}',
        "/other/x": "y",
    }
    assert membership(values) == {
        "web": [("10.0.0.1", 80, 1), ("10.0.0.2", 81, 3)],
        "gone": [],
    }
