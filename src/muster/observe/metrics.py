"""One daemon's Prometheus metrics, in a registry of its own, exposed with ``prometheus_client``.

Each daemon gets a ``CollectorRegistry`` rather than the process-wide default: tests run
many daemons in one process, and a library must not register into a global its host
also uses. Event metrics (renders, reloads, pushes, watch lag) are ``prometheus_client``
counters and histograms updated as things happen; state (readiness, revision, last
success, rejected entries, nginx's traffic counters) is read at scrape time by collectors.

Cardinality of the traffic series is bounded: at most ``server_limit`` (service, server)
pairs keep their own labels, the busiest first; the rest of a service is summed into
``server="_other"``. With 10,000 servers and the default 2,000, ``/metrics`` carries
about 2,000 x 19 series plus one ``_other`` per service, instead of 190,000.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from muster.observe.traffic import CODE_CLASSES, ServerTraffic, TrafficSnapshot

__all__ = ["CONTENT_TYPE_LATEST", "DaemonMetrics", "gauge", "reason_class", "traffic_families"]

#: Seconds: a push or batch is milliseconds; a slow etcd makes it seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Families(Collector):
    """Calls ``source`` at each scrape for ready-made metric families."""

    def __init__(self, source: Callable[[], Iterable[Metric]]) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        return list(self._source())


class DaemonMetrics:
    """The event metrics of one daemon; ``add_source`` adds state read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.batch_seconds = Histogram(
            "muster_batch_duration_seconds", "Time a batch took (snapshot, render, apply)",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.renders = Counter("muster_renders", "Templates rendered", ["resource"], registry=r)
        self.reloads = Counter(
            "muster_reloads", "Reload commands run, by outcome (ok, failed, rolled_back)",
            ["resource", "result"], registry=r,
        )  # fmt: skip
        self.pushes = Counter(
            "muster_dataplane_pushes",
            "Pushes of membership to the data plane, by outcome",
            ["result"],
            registry=r,
        )
        self.pushed_services = Counter(
            "muster_dataplane_pushed_services", "Services sent to the data plane", registry=r
        )
        self.push_seconds = Histogram(
            "muster_dataplane_push_duration_seconds", "Time a push to the data plane took",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.watch_events = Counter("muster_watch_events", "Changes the registry watch reported", registry=r)
        self.watch_revision = Gauge(
            "muster_watch_revision", "Registry revision the watch last reported", registry=r
        )
        self.watch_lag = Histogram(
            "muster_watch_lag_seconds",
            "From a change reported by the watch to the end of the batch that applied it",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip

    def add_source(self, source: Callable[[], Iterable[Metric]]) -> None:
        """Read ``source`` at every scrape (it returns metric families)."""
        self.registry.register(_Families(source))

    def exposition(self) -> bytes:
        """The text format of every metric in this daemon's registry."""
        return generate_latest(self.registry)


def traffic_families(snapshot: TrafficSnapshot, server_limit: int = 2000) -> list[Metric]:
    """nginx's traffic counters as metric families with ``service`` and ``server`` labels."""
    labels = ["service", "server"]
    requests = CounterMetricFamily(
        "muster_requests", "Requests through nginx by service, serving server and status class",
        labels=[*labels, "code"],
    )  # fmt: skip
    errors = CounterMetricFamily("muster_upstream_errors", "Tries that failed with an error", labels=labels)
    timeouts = CounterMetricFamily("muster_upstream_timeouts", "Tries that timed out", labels=labels)
    retried = CounterMetricFamily(
        "muster_retried_requests", "Requests served after a failed try", labels=labels
    )
    sent = CounterMetricFamily("muster_response_bytes", "Bytes sent to clients", labels=labels)
    latency = HistogramMetricFamily(
        "muster_upstream_response_seconds", "Upstream response time of the serving try", labels=labels
    )
    dropped = CounterMetricFamily(
        "muster_traffic_dropped_requests", "Requests not counted per server: the counters' dict was full"
    )
    dropped.add_metric([], snapshot.dropped)
    bounds = [*(repr(b) for b in snapshot.bounds), "+Inf"]
    for (service, server), t in _bounded(snapshot.servers, server_limit):
        key = [service, server]
        for code, count in zip(CODE_CLASSES, t.codes, strict=True):
            if count:
                requests.add_metric([*key, code], count)
        errors.add_metric(key, t.errors)
        timeouts.add_metric(key, t.timeouts)
        retried.add_metric(key, t.retried)
        sent.add_metric(key, t.bytes)
        if t.buckets and sum(t.buckets):
            cumulative, total = [], 0
            for bound, count in zip(bounds, t.buckets, strict=False):
                total += count
                cumulative.append((bound, float(total)))
            latency.add_metric(key, cumulative, t.latency_sum)
    return [requests, errors, timeouts, retried, sent, latency, dropped]


def _bounded(
    servers: dict[tuple[str, str], ServerTraffic], limit: int
) -> list[tuple[tuple[str, str], ServerTraffic]]:
    if len(servers) <= limit:
        return sorted(servers.items())
    ranked = sorted(servers.items(), key=lambda item: -item[1].requests)
    kept = dict(ranked[:limit])
    other: dict[str, list[ServerTraffic]] = {}
    for (service, _), t in ranked[limit:]:
        other.setdefault(service, []).append(t)
    for service, rows in other.items():
        kept[(service, "_other")] = _sum(rows)
    return sorted(kept.items())


def _sum(rows: list[ServerTraffic]) -> ServerTraffic:
    width = max(len(t.buckets) for t in rows)
    return ServerTraffic(
        requests=sum(t.requests for t in rows),
        codes=tuple(sum(t.codes[i] for t in rows) for i in range(5)),
        errors=sum(t.errors for t in rows),
        timeouts=sum(t.timeouts for t in rows),
        retried=sum(t.retried for t in rows),
        bytes=sum(t.bytes for t in rows),
        latency_sum=sum(t.latency_sum for t in rows),
        buckets=tuple(sum(t.buckets[i] for t in rows if i < len(t.buckets)) for i in range(width)),
    )


def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    """A one-sample gauge family (for collectors of state)."""
    return GaugeMetricFamily(name, text, value=value)


_REASON = re.compile(r"[A-Za-z][A-Za-z ,-]*?(?=:| ['\"{(0-9\[]| from |$)")


def reason_class(reason: str) -> str:
    """A rejection reason without the value it quotes, fit for a label (a bounded set):
    "invalid host 'x': give an IP address" -> "invalid host"."""
    match = _REASON.match(reason)
    return (match.group(0) if match else "other").strip(" ,")[:60] or "other"
