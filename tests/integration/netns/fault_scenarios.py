"""The fault scenarios of issue 14, each under steady load through both proxies of a ``netbed.Bed``.

Each function heals the bed first (``ensure_healthy``), makes its fault, undoes it, and
returns an ``Outcome``: the requests the load generator sent, how many failed, and the
convergence time with what it measures. The tests (``test_faults_netns.py``) assert on
outcomes; ``bench/faults.py`` prints them as a table, with longer durations.

Convergence is always measured with a *change*: a new service ``conv-*`` (one server,
svc0's demo) written to etcd, and the time until the proxy concerned answers 200 for it,
polled every 10 ms. A proxy routes it only once its daemon has read the change and pushed
it to nginx, so this is the end-to-end time from the event named to traffic.

Scenarios that need the panic guard (issue 14 item 2) are here too (``NEEDS_GUARD``):
without it their failure counts are not 0, and the tests mark them xfail.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadgen import LoadReport
from netbed import SERVICE, Bed, BedError, until

__all__ = [
    "NEEDS_GUARD",
    "SCENARIOS",
    "Outcome",
    "daemon_kill",
    "delete_prefix",
    "etcd_quorum",
    "format_table",
    "proxy_partition",
    "service_kill",
    "service_partition",
    "watched_member_cut",
]


@dataclass
class Outcome:
    """One scenario's result; ``convergence`` in seconds (None: never converged)."""

    scenario: str
    requests: int
    failed: int
    convergence: float | None
    #: What ``convergence`` measures, from which event to which.
    measured: str
    notes: dict[str, Any] = field(default_factory=dict)
    report: LoadReport | None = None

    def describe(self) -> str:
        conv = "never" if self.convergence is None else f"{self.convergence:.3f}s"
        text = f"{self.scenario}: {self.requests} requests, {self.failed} failed, convergence {conv}"
        text += f" ({self.measured}); {self.notes}"
        if self.report is not None and self.report.failed:
            text += f"; failures: {self.report.describe()}; first: {self.report.failures[:3]}"
        return text


def _outcome(
    name: str, report: LoadReport | None, conv: float | None, measured: str, **notes: Any
) -> Outcome:
    assert report is not None
    return Outcome(name, report.requests, report.failed, conv, measured, notes, report)


def _probe(bed: Bed, name: str) -> tuple[str, str]:
    key, value = bed.probe_server(f"conv-{name}-{time.monotonic_ns() % 10**9}")
    return key, value


def _forget(bed: Bed, key: str) -> None:
    """Delete a probe service; the panic guard would hold its last server for the whole
    grace period, so accept the removal (SIGUSR1) at once."""
    bed.delete(key)
    time.sleep(0.2)
    bed.accept_held()


def _service_of(key: str) -> str:
    return key.split("/")[2]


def _since(t0: float, t1: float | None) -> float | None:
    return None if t1 is None else round(t1 - t0, 3)


def proxy_partition(bed: Bed, seconds: float = 60.0) -> Outcome:
    """proxy0 cut off from every etcd member for ``seconds`` (silent drops, both ways).

    Halfway through, a new service is written: proxy1 routes it at once, proxy0 must not
    lose anything meanwhile, and must route it within 1 s of the heal.
    """
    bed.ensure_healthy()
    key, value = _probe(bed, "partition")
    service = _service_of(key)
    with bed.load() as load:
        time.sleep(1.0)
        fault = bed.partition([bed.proxy_hosts[0]], bed.etcd_hosts)
        cut = fault.started
        try:
            fewest = bed.sample_peers(seconds / 2)
            bed.put(key, value)
            written = time.monotonic()
            other = bed.wait_serving([1], service, timeout=10.0)
            saw_early = bed.serves(0, service)
            fewest = _fewer(fewest, bed.sample_peers(max(0.0, cut + seconds - time.monotonic())))
        finally:
            healed = bed.heal(fault)
        converged = bed.wait_serving([0], service, timeout=30.0)
        time.sleep(1.0)
        peers_after = bed.peers(0)
    _forget(bed, key)
    return _outcome(
        "proxy partitioned from etcd",
        load.report,
        _since(healed, converged),
        "heal -> the partitioned proxy routes a service written during the partition",
        partition_s=round(healed - cut, 1),
        other_proxy_s=_since(written, other),
        routed_while_cut=saw_early,
        fewest_hello_peers=fewest,
        hello_peers_after=peers_after,
    )


def etcd_quorum(bed: Bed, loss_seconds: float = 5.0) -> Outcome:
    """The etcd leader killed (SIGKILL); then the new leader's link taken down: one member of
    three left, no quorum, for ``loss_seconds``; then the first leader restarted (quorum again).

    Convergence: from the first write etcd accepts after quorum returns (a new service,
    retried every 20 ms from the restart on) until both proxies route it.
    """
    bed.ensure_healthy()
    key, value = _probe(bed, "quorum")
    service = _service_of(key)
    with bed.load() as load:
        time.sleep(1.0)
        first = bed.leader()
        if first is None:
            raise BedError("no etcd leader before the scenario")
        bed.etcd[first].kill()
        killed = time.monotonic()
        others = [i for i in range(3) if i != first]
        # The survivors name the dead leader until one of them wins an election.
        elected = until(lambda: bed.leader(others) in others, 20.0)
        second = bed.leader(others)
        if elected is None or second is None or second == first:
            raise BedError(f"no new leader after etcd{first} was killed")
        time.sleep(1.0)
        fault = bed.link_down(bed.etcd_hosts[second])
        lone = next(i for i in others if i != second)
        try:
            lost = until(lambda: not bed.etcd[lone].health(timeout=0.3), 20.0)
            if lost is None:
                raise BedError(f"etcd{lone} has a leader with etcd{first} dead and etcd{second} cut off")
            time.sleep(loss_seconds)
            bed.etcd[first].start(wait=False)
            back = [first, lone]

            def write() -> bool:
                try:
                    bed.put(key, value, members=back, timeout=0.5)
                except BedError:
                    return False
                return True

            quorum = until(write, 60.0, interval=0.02)
            if quorum is None:
                raise BedError("etcd did not take a write within 60 s of the restart")
            converged = bed.wait_serving([0, 1], service, timeout=30.0)
        finally:
            bed.heal(fault)
        for member in bed.etcd:
            member.wait_healthy(timeout=30.0)
        time.sleep(1.0)
        peers_after = [bed.peers(0), bed.peers(1)]
    _forget(bed, key)
    return _outcome(
        "etcd leader killed, quorum lost and regained",
        load.report,
        _since(quorum, converged),
        "first write accepted after quorum -> both proxies route it",
        killed=f"etcd{first}",
        cut_off=f"etcd{second}",
        election_s=_since(killed, elected),
        no_quorum_s=round(quorum - lost, 1),
        hello_peers_after=peers_after,
    )


def daemon_kill(bed: Bed, down_seconds: float = 2.0) -> Outcome:
    """proxy0's daemon killed with SIGKILL, a new service written while it is down, the
    daemon started again after ``down_seconds``.

    It must push nginx everything again (a new generation), with no reload, and route the
    service written meanwhile; convergence is from the restart (Python's start-up included).
    """
    bed.ensure_healthy()
    key, value = _probe(bed, "daemon")
    service = _service_of(key)
    daemon = bed.daemons[0]
    with bed.load() as load:
        time.sleep(1.0)
        reloads = [n.reloads() for n in bed.nginx]
        generation = bed.admin_state(0)["generation"]
        daemon.kill()
        bed.put(key, value)
        time.sleep(down_seconds)
        routed_while_down = bed.serves(0, service)
        daemon.start()
        restarted = time.monotonic()
        converged = bed.wait_serving([0], service, timeout=60.0)
        repushed = until(lambda: bed.admin_state(0)["generation"] not in ("", generation), 10.0)
        time.sleep(4.0)  # two verify rounds of the Lua plane: a storm would show here
        reloads_after = [n.reloads() - r for n, r in zip(bed.nginx, reloads, strict=True)]
        peers_after = bed.peers(0)
    _forget(bed, key)
    return _outcome(
        "daemon killed (SIGKILL) and restarted",
        load.report,
        _since(restarted, converged),
        "restart -> the proxy routes a service written while the daemon was down",
        reloads=reloads_after,
        repushed_s=_since(restarted, repushed),
        routed_while_down=routed_while_down,
        hello_peers_after=peers_after,
    )


def service_kill(bed: Bed) -> Outcome:
    """svc0's server killed with SIGKILL (its agent lives on): nginx retries each request on
    another server until the agent's check fails and the key goes; then it is started again.

    Convergence: from the kill until both proxies hold two servers of ``hello``.
    """
    bed.ensure_healthy()
    with bed.load() as load:
        time.sleep(1.0)
        bed.demos[0].kill()
        killed = time.monotonic()
        removed = until(lambda: bed.peers(0) == 2 and bed.peers(1) == 2, 30.0)
        time.sleep(1.0)
        bed.demos[0].start()
        started = time.monotonic()
        back = until(lambda: bed.peers(0) == 3 and bed.peers(1) == 3, 30.0)
        time.sleep(1.0)
    return _outcome(
        "service process killed (SIGKILL)",
        load.report,
        _since(killed, removed),
        "kill -> both proxies stop routing to it (agent check fails, key removed)",
        rejoined_s=_since(started, back),
    )


def service_partition(bed: Bed, extra_seconds: float = 3.0, stagger: float = 0.0) -> Outcome:
    """Every service host cut off from etcd (the proxies still reach them) until TTL +
    ``extra_seconds`` after the last cut: every lease expires. Needs the panic guard.

    With ``stagger`` the hosts are cut one after another, ``stagger`` seconds apart, so
    their leases expire in separate batches, as when registrations are of different ages.
    Convergence: from the heal until every key is back (the agents registered again) and
    both proxies hold all three servers.
    """
    bed.ensure_healthy()
    with bed.load() as load:
        time.sleep(1.0)
        faults = []
        fewest = [3, 3]
        healed = time.monotonic()
        try:
            for i, host in enumerate(bed.service_hosts):
                faults.append(bed.partition([host], bed.etcd_hosts))
                if i < len(bed.service_hosts) - 1 and stagger:
                    fewest = _fewer(fewest, bed.sample_peers(stagger))
            fewest = _fewer(fewest, bed.sample_peers(bed.ttl + extra_seconds))
            keys_during = len(bed.keys("/services/"))
            at_end = [bed.peers(0) or 0, bed.peers(1) or 0]
        finally:
            for fault in faults:
                healed = bed.heal(fault)

        def recovered() -> bool:
            keys = len(bed.keys(f"/services/{SERVICE}/", timeout=0.5))
            return keys == 3 and bed.peers(0) == 3 and bed.peers(1) == 3

        back = until(recovered, 60.0, interval=0.02)
        time.sleep(1.0)
    staggered = f", {stagger:g} s apart" if stagger else ""
    return _outcome(
        f"service hosts partitioned from etcd > TTL{staggered}",
        load.report,
        _since(healed, back),
        "heal -> every agent registered again and both proxies route all three",
        keys_left_during=keys_during,
        fewest_hello_peers=fewest,
        hello_peers_at_end=at_end,
        ttl_s=bed.ttl,
    )


def _fewer(a: list[int], b: list[int]) -> list[int]:
    return [min(x, y) for x, y in zip(a, b, strict=True)]


def delete_prefix(bed: Bed) -> Outcome:
    """``etcdctl del --prefix /services`` while the agents live. Needs the panic guard to
    serve on; the agents put their keys back within one refresh interval (TTL / 3).

    Convergence: from the delete until every key is back in etcd.
    """
    bed.ensure_healthy()
    with bed.load() as load:
        time.sleep(1.0)
        deleted = bed.delete("/services/", prefix=True)
        at = time.monotonic()
        fewest = [3, 3]

        def restored_yet() -> bool:
            for p in range(2):
                fewest[p] = min(fewest[p], bed.peers(p) or 0)
            return len(bed.keys(f"/services/{SERVICE}/")) == 3

        restored = until(restored_yet, 30.0, interval=0.02)
        back = until(lambda: bed.peers(0) == 3 and bed.peers(1) == 3, 30.0)
        time.sleep(1.0)
    return _outcome(
        "del --prefix /services",
        load.report,
        _since(at, restored),
        "delete -> every agent has put its key back",
        deleted=deleted,
        fewest_hello_peers=fewest,
        refresh_interval_s=round(bed.ttl / 3, 2),
        routed_again_s=_since(at, back),
    )


def watched_member_cut(bed: Bed) -> Outcome:
    """The etcd member the proxies' daemons watch is cut off (its link down, silently);
    the other two keep quorum and take writes at once (after an election if it led).

    Convergence: from the first write the others accept until both proxies route it. A
    daemon sees nothing until it notices that its member is gone.
    """
    bed.ensure_healthy()
    key, value = _probe(bed, "cut")
    service = _service_of(key)
    with bed.load() as load:
        time.sleep(1.0)
        watched = [bed.watched_member(p) for p in range(2)]
        target = watched[0]
        was_leader = bed.leader() == target
        fault = bed.link_down(bed.etcd_hosts[target])
        others = [i for i in range(3) if i != target]
        try:

            def write() -> bool:
                try:
                    bed.put(key, value, members=others, timeout=0.5)
                except BedError:
                    return False
                return True

            written = until(write, 30.0, interval=0.02)
            if written is None:
                raise BedError(f"etcd{others} took no write within 30 s of cutting etcd{target} off")
            converged = bed.wait_serving([0, 1], service, timeout=30.0)
            each = {p: bed.serves(p, service) for p in range(2)}
        finally:
            bed.heal(fault)
        bed.etcd[target].wait_healthy(timeout=30.0)
        time.sleep(1.0)
    _forget(bed, key)
    return _outcome(
        "etcd member under the daemons' watch cut off",
        load.report,
        _since(written, converged),
        "first write accepted by the other members -> both proxies route it",
        cut_off=f"etcd{target}",
        watched=[f"etcd{w}" for w in watched],
        was_leader=was_leader,
        routed=each,
    )


SCENARIOS: dict[str, Callable[..., Outcome]] = {
    "proxy-partition": proxy_partition,
    "etcd-quorum": etcd_quorum,
    "watched-member-cut": watched_member_cut,
    "daemon-kill": daemon_kill,
    "service-kill": service_kill,
    "service-partition": service_partition,
    "service-partition-staggered": functools.partial(service_partition, stagger=3.0),
    "delete-prefix": delete_prefix,
}
NEEDS_GUARD = frozenset({"service-partition", "service-partition-staggered", "delete-prefix"})


def format_table(outcomes: list[Outcome]) -> str:
    """A plain-text table: scenario, requests, failed, convergence, the fewest servers of
    ``hello`` a proxy held during the fault (where sampled), and what convergence measures."""
    rows = [("scenario", "requests", "failed", "convergence", "fewest", "measured")]
    for o in outcomes:
        conv = "never" if o.convergence is None else f"{o.convergence:.3f} s"
        fewest = o.notes.get("fewest_hello_peers")
        kept = f"{min(fewest)}/3" if fewest else "-"
        rows.append((o.scenario, str(o.requests), str(o.failed), conv, kept, o.measured))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in (1, 2, 3, 4)] + [row[5]]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 8)
    return "\n".join(lines)
