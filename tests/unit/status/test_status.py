"""The status server: readiness follows the batches, metrics parse as Prometheus text."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from muster.errors import ConfigError
from muster.status import Status, StatusServer, parse_address


class Clock:
    def __init__(self) -> None:
        self.now = 1_764_000_000.0

    def __call__(self) -> float:
        return self.now


def test_readiness_follows_the_batches() -> None:
    clock = Clock()
    status = Status(stale_after=600, clock=clock)
    assert status.readiness() == (False, "no batch has completed yet")
    status.record(failures={}, changed=1, revision=7, backend_failed=False, seconds=0.01)
    assert status.readiness() == (True, "ok")
    status.record(
        failures={"nginx": "template: x:1: bad"}, changed=0, revision=8, backend_failed=False, seconds=0
    )
    assert status.readiness() == (False, "the last batch failed for: nginx")
    status.record(failures={}, changed=0, revision=None, backend_failed=False, seconds=0)
    assert status.readiness()[0] and status.revision == 8, "a snapshot without revision keeps the last"
    clock.now += 601
    ready, reason = status.readiness()
    assert not ready and "no successful batch for 601 s" in reason
    status.record(failures={"dataplane": "down"}, changed=0, revision=9, backend_failed=True, seconds=0)
    assert status.readiness() == (False, "the last batch could not read the backend")
    assert (status.batches, status.failed_batches, status.backend_errors, status.files_changed) == (
        4,
        2,
        1,
        1,
    )


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, parsed by prometheus_client's own parser: (name, labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_parse_with_prometheus_client() -> None:
    status = Status(clock=Clock())
    assert ("muster_last_success_time_seconds", ()) not in samples_of(status.metrics()), "no sample yet"
    status.record(failures={}, changed=2, revision=42, backend_failed=False, seconds=0.25)
    status.rendered("nginx")
    status.applied("nginx", changed=True, reloaded=True, error=None, diff="+1 line", rolled_back=False)
    status.applied("nginx", changed=True, reloaded=False, error="check failed", diff="", rolled_back=True)
    status.pushed(3, 0.004, ok=True)
    status.watch_changed(43)
    status.change_applied(0.02)
    status.membership = lambda: (
        {"web": [("10.0.0.1", 80, 1)]},
        {"/services/web/servers/a": "invalid host 'x y': give an IP address or a DNS name",
         "/services/web/servers/b": "invalid host 'z': give an IP address or a DNS name",
         "/services/Web": "service name differs only in case from web, registered first"},
    )  # fmt: skip
    samples = samples_of(status.metrics())
    assert samples[("muster_ready", ())] == 1 and samples[("muster_backend_revision", ())] == 42
    assert samples[("muster_files_changed_total", ())] == 2
    assert samples[("muster_batch_seconds_total", ())] == 0.25
    # Timestamps keep every digit.
    assert samples[("muster_last_success_time_seconds", ())] == 1_764_000_000
    assert samples[("muster_renders_total", (("resource", "nginx"),))] == 1
    assert samples[("muster_reloads_total", (("resource", "nginx"), ("result", "ok")))] == 1
    assert samples[("muster_reloads_total", (("resource", "nginx"), ("result", "rolled_back")))] == 1
    assert samples[("muster_dataplane_pushes_total", (("result", "ok"),))] == 1
    assert samples[("muster_dataplane_pushed_services_total", ())] == 3
    assert samples[("muster_watch_revision", ())] == 43
    assert samples[("muster_watch_lag_seconds_count", ())] == 1
    assert samples[("muster_batch_duration_seconds_bucket", (("le", "0.25"),))] == 1
    # Rejections are counted by reason, without the value they quote (a bounded label set).
    assert samples[("muster_rejected_entries", (("reason", "invalid host"),))] == 2
    assert samples[("muster_rejected_entries", (("reason", "service name differs only in case"),))] == 1
    kinds = [e.kind for e in status.events]
    assert kinds == ["reload", "error", "push"]


def test_each_daemon_has_its_own_registry() -> None:
    one, two = Status(clock=Clock()), Status(clock=Clock())
    one.rendered("a")
    assert ("muster_renders_total", (("resource", "a"),)) not in samples_of(two.metrics())


def test_addresses() -> None:
    assert parse_address("127.0.0.1:9101") == ("127.0.0.1", 9101)
    assert parse_address("[::1]:0") == ("::1", 0)
    for bad in ("9101", "127.0.0.1:", ":9101", "h:99999", "h:x"):
        with pytest.raises(ConfigError, match="status-addr"):
            parse_address(bad)


async def test_server_answers_over_http() -> None:
    status = Status()
    server = StatusServer(status, "127.0.0.1:0")
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/healthz") as resp:
                assert resp.status == 200
            async with session.get(f"{base}/readyz") as resp:
                assert resp.status == 503 and "no batch" in await resp.text()
            status.record(failures={}, changed=0, revision=3, backend_failed=False, seconds=0.0)
            async with session.get(f"{base}/readyz") as resp:
                assert resp.status == 200
            async with session.get(f"{base}/metrics") as resp:
                assert resp.status == 200 and "muster_backend_revision 3.0\n" in await resp.text()
            async with session.get(f"{base}/status") as resp:
                body = await resp.json()
                assert body["ready"] is True and body["revision"] == 3
        # The port is taken now: a second server says so, naming the flag.
        with pytest.raises(ConfigError, match="status-addr: cannot listen"):
            await StatusServer(Status(), f"127.0.0.1:{server.port}").start()
    finally:
        await server.aclose()


def test_a_data_plane_that_recovers_on_its_own_makes_the_daemon_ready() -> None:
    clock = Clock()
    status = Status(stale_after=600, clock=clock)
    status.record(
        failures={"dataplane": "unreachable"}, changed=0, revision=1, backend_failed=False, seconds=0
    )
    assert not status.readiness()[0]
    clock.now += 5
    status.recovered("nginx")  # not what failed: nothing changes
    assert not status.readiness()[0]
    status.recovered("dataplane")
    assert status.readiness() == (True, "ok") and status.last_success == clock.now
