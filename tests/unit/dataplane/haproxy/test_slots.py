from __future__ import annotations

from muster.dataplane.haproxy.runtime import parse_info
from muster.dataplane.haproxy.slots import Slot, haproxy_weights, parse_servers_state, plan_backend, prefill
from muster.dataplane.peers import Peer

# Captured from haproxy 2.6.12 (show servers state): s1 ready after "set server ... addr/weight/
# state ready" on a "disabled" slot (admin 4: CMAINT stays), s2 put back in maint (admin 5),
# s3 as the config left it, s4 an IPv6 peer.
STATE = """\
1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state \
srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl \
srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 svc_hello 1 s1 127.0.0.1 2 4 5 1 37 1 0 0 8 0 0 0 - 9001 - 0 0 - - 0
3 svc_hello 2 s2 127.0.0.1 0 5 1 1 13 1 0 0 8 0 0 0 - 9003 - 0 0 - - 0
3 svc_hello 3 s3 0.0.0.0 0 5 1 1 38 1 0 0 8 0 0 0 - 0 - 0 0 - - 0
3 svc_hello 4 s4 ::1 2 4 1 1 38 1 0 0 8 0 0 0 - 81 - 0 0 - - 0
"""


def test_parse_servers_state() -> None:
    assert parse_servers_state(STATE) == [
        Slot("svc_hello", "s1", Peer("127.0.0.1", 9001, 5)),
        Slot("svc_hello", "s2", None),
        Slot("svc_hello", "s3", None),
        Slot("svc_hello", "s4", Peer("::1", 81)),
    ]


def test_parse_info() -> None:
    info = parse_info("Name: HAProxy\nPid: 31743\nStart_time_sec: 1795589111\n\n")
    assert info["Pid"] == "31743" and info["Start_time_sec"] == "1795589111"


def empty(n: int) -> list[Slot]:
    return [Slot("b", f"s{i}", None) for i in range(1, n + 1)]


def test_plan_fills_free_slots_in_order() -> None:
    cmds, after, left = plan_backend("b", empty(3), [Peer("10.0.0.1", 80, 2)])
    assert cmds == [
        "set server b/s1 addr 10.0.0.1 port 80",
        "set server b/s1 weight 2",
        "set server b/s1 state ready",
    ]
    assert after == [Slot("b", "s1", Peer("10.0.0.1", 80, 2)), *empty(3)[1:]] and left == []


def test_plan_keeps_slots_and_changes_only_what_differs() -> None:
    slots = [Slot("b", "s1", Peer("10.0.0.1", 80)), Slot("b", "s2", Peer("10.0.0.2", 80)), *empty(3)[2:]]
    # 10.0.0.1 leaves, 10.0.0.2 changes weight, 10.0.0.3 joins (into the freed s1).
    cmds, after, left = plan_backend("b", slots, [Peer("10.0.0.2", 80, 4), Peer("10.0.0.3", 80)])
    assert cmds == ["set server b/s2 weight 4", "set server b/s1 addr 10.0.0.3 port 80"]
    assert [s.peer for s in after] == [Peer("10.0.0.3", 80), Peer("10.0.0.2", 80, 4), None]
    assert plan_backend("b", after, [Peer("10.0.0.2", 80, 4), Peer("10.0.0.3", 80)])[0] == []


def test_plan_empties_and_reports_overflow() -> None:
    slots = [Slot("b", "s1", Peer("10.0.0.1", 80)), Slot("b", "s2", None)]
    assert plan_backend("b", slots, [])[0] == ["set server b/s1 state maint"]
    peers = [Peer(f"10.0.0.{i}", 80) for i in range(1, 5)]
    cmds, after, left = plan_backend("b", slots, peers)
    assert [s.peer for s in after] == peers[:2] and left == peers[2:]


def test_weights_are_scaled_into_haproxy_range() -> None:
    assert haproxy_weights([Peer("10.0.0.1", 80, 3), Peer("10.0.0.1", 80, 3)]) == [Peer("10.0.0.1", 80, 3)]
    scaled = haproxy_weights([Peer("10.0.0.1", 80, 1000), Peer("10.0.0.2", 80, 500), Peer("10.0.0.3", 80, 1)])
    assert [p.weight for p in scaled] == [256, 128, 1]


def test_prefill_expands_templates_with_live_slots() -> None:
    config = (
        "frontend f\n    bind :80\n"
        "backend svc_a\n    balance roundrobin\n    server-template s 1-3 0.0.0.0:0 disabled maxconn 10\n"
        "backend svc_b\n    server-template s 2 0.0.0.0:0 disabled\n"
    )
    filled = prefill(config, {("svc_a", "s2"): Peer("10.0.0.1", 8080, 3), ("svc_b", "s1"): Peer("::1", 81)})
    assert filled == (
        "frontend f\n    bind :80\n"
        "backend svc_a\n    balance roundrobin\n"
        "    server s1 0.0.0.0:0 maxconn 10 disabled\n"
        "    server s2 10.0.0.1:8080 maxconn 10 weight 3\n"
        "    server s3 0.0.0.0:0 maxconn 10 disabled\n"
        "backend svc_b\n"
        "    server s1 [::1]:81 weight 1\n"
        "    server s2 0.0.0.0:0 disabled\n"
    )
    assert prefill(config, {}).count("disabled") == 5
