"""nginx's traffic counters per service and server: parsed, and turned into rates and percentiles.

The Lua data plane counts in shared memory (``muster_traffic.lua``) and serves the raw
counters on its admin endpoint; ``parse_traffic`` reads that text into a
``TrafficSnapshot``. ``TrafficHistory`` keeps the last snapshots (one every couple of
seconds, bounded) so the dashboard can show requests/s, error rates, p50/p95 latency
over the last window and small sparklines, all from differences of counters: a counter
that went down (nginx restarted, its shared dict emptied) starts a fresh baseline.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Container, Iterable
from dataclasses import dataclass, field

__all__ = [
    "CODE_CLASSES",
    "IdleSeries",
    "ServerTraffic",
    "TrafficHistory",
    "TrafficSnapshot",
    "parse_traffic",
    "quantile",
]

CODE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_FIELDS = 11  # the scalar fields before the buckets, as muster_traffic.lua numbers them


@dataclass(frozen=True, slots=True)
class ServerTraffic:
    """The counters of one (service, server) since nginx started; ``server`` is "-" for
    requests that reached no server. ``buckets`` are not cumulative; the last is +Inf."""

    requests: int = 0
    codes: tuple[int, ...] = (0, 0, 0, 0, 0)
    errors: int = 0
    timeouts: int = 0
    retried: int = 0
    bytes: int = 0
    latency_sum: float = 0.0
    buckets: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TrafficSnapshot:
    """Every series nginx holds at ``time``; ``bounds`` are the buckets' upper bounds (s)."""

    time: float
    bounds: tuple[float, ...]
    dropped: int
    servers: dict[tuple[str, str], ServerTraffic]


def parse_traffic(text: str, now: float) -> TrafficSnapshot:
    """Read ``GET /muster/traffic``'s answer; ``ValueError`` naming the line if malformed."""
    bounds: tuple[float, ...] = ()
    dropped = 0
    raw: dict[tuple[str, str], dict[int, float]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        try:
            if line.startswith("buckets"):
                bounds = tuple(float(b) for b in line.split()[1:])
            elif line.startswith("dropped "):
                dropped = int(float(line.split()[1]))
            else:
                key, value = line.rsplit(" ", 1)
                service, server, index = key.split("\t")
                raw.setdefault((service, server), {})[int(index)] = float(value)
        except ValueError as exc:
            raise ValueError(f"traffic counters, line {number}: {line[:200]!r}: {exc}") from exc
    width = len(bounds) + 1
    servers: dict[tuple[str, str], ServerTraffic] = {}
    for series, fields in raw.items():

        def n(i: int, fields: dict[int, float] = fields) -> int:
            return int(fields.get(i, 0))

        servers[series] = ServerTraffic(
            requests=n(1),
            codes=tuple(n(i) for i in range(2, 7)),
            errors=n(7),
            timeouts=n(8),
            retried=n(9),
            bytes=n(10),
            latency_sum=fields.get(11, 0.0),
            buckets=tuple(n(_FIELDS + i) for i in range(1, width + 1)),
        )
    return TrafficSnapshot(now, bounds, dropped, servers)


def quantile(q: float, bounds: tuple[float, ...], counts: Iterable[int]) -> float | None:
    """Prometheus' ``histogram_quantile`` over non-cumulative ``counts`` (last is +Inf):
    linear within the bucket; the highest finite bound when it falls in +Inf; None if empty."""
    counts = list(counts)
    total = sum(counts)
    if total <= 0 or not bounds:
        return None
    rank = q * total
    seen = 0.0
    for i, c in enumerate(counts):
        if seen + c >= rank and c > 0:
            if i >= len(bounds):
                return bounds[-1]
            low = bounds[i - 1] if i > 0 else 0.0
            return low + (bounds[i] - low) * (rank - seen) / c
        seen += c
    return bounds[-1]


@dataclass(slots=True)
class _Rates:
    rps: float = 0.0
    error_rate: float = 0.0
    p50: float | None = None
    p95: float | None = None
    spark: list[float] = field(default_factory=list)


class TrafficHistory:
    """Snapshots of the last ``window`` seconds, and ``spark_points`` requests/s per series.

    Whole snapshots are kept for the window only (about 16 at one per 2 s); the sparklines
    keep one float per series and sample, so the longer history costs little per server.
    """

    def __init__(self, window: float = 30.0, spark_points: int = 60) -> None:
        self._snaps: deque[TrafficSnapshot] = deque()
        self._sparks: dict[tuple[str, str], deque[float]] = {}
        self.window = window
        self.spark_points = spark_points

    def add(self, snapshot: TrafficSnapshot) -> None:
        prev = self.latest
        if prev is not None and snapshot.time > prev.time:
            span = snapshot.time - prev.time
            for key, now in snapshot.servers.items():
                before = prev.servers.get(key)
                done = now.requests - (before.requests if before is not None else 0)
                points = self._sparks.get(key)
                if points is None:
                    points = self._sparks[key] = deque(maxlen=self.spark_points)
                points.append(round(max(0, done) / span, 2))
            for key in self._sparks.keys() - snapshot.servers.keys():
                del self._sparks[key]  # forgotten by nginx
        self._snaps.append(snapshot)
        # Keep one snapshot older than the window, so the window is always covered.
        while len(self._snaps) > 2 and snapshot.time - self._snaps[1].time >= self.window:
            self._snaps.popleft()

    @property
    def latest(self) -> TrafficSnapshot | None:
        return self._snaps[-1] if self._snaps else None

    def figures(self) -> dict[tuple[str, str], dict[str, object]]:
        """Per series: totals now, requests/s, the share of 5xx and failed tries, p50/p95
        latency (s) over the window, and requests/s between consecutive snapshots."""
        if not self._snaps:
            return {}
        last = self._snaps[-1]
        base = self._snaps[0]
        out: dict[tuple[str, str], dict[str, object]] = {}
        for key, now in last.servers.items():
            rates = self._rates(key, now, base, last)
            out[key] = {
                "requests": now.requests,
                "codes": dict(zip(CODE_CLASSES, now.codes, strict=True)),
                "errors": now.errors,
                "timeouts": now.timeouts,
                "retried": now.retried,
                "bytes": now.bytes,
                "rps": round(rates.rps, 2),
                "error_rate": round(rates.error_rate, 4),
                "p50": rates.p50,
                "p95": rates.p95,
                "spark": rates.spark,
            }
        return out

    def _rates(
        self, key: tuple[str, str], now: ServerTraffic, base: TrafficSnapshot, last: TrafficSnapshot
    ) -> _Rates:
        rates = _Rates()
        # With one snapshot only, percentiles and error rate cover everything since nginx started.
        before = base.servers.get(key, ServerTraffic()) if base is not last else ServerTraffic()
        if before.requests > now.requests:
            before = ServerTraffic()  # counters reset: nginx started afresh
        span = last.time - base.time
        done = now.requests - before.requests
        if span > 0:
            rates.rps = done / span
        failed = (
            (now.codes[4] - before.codes[4]) + (now.errors - before.errors) + (now.timeouts - before.timeouts)
        )
        if done > 0:
            rates.error_rate = min(1.0, failed / done)
        old = before.buckets or (0,) * len(now.buckets)
        delta = [a - b for a, b in zip(now.buckets, old, strict=False)]
        rates.p50 = _rounded(quantile(0.5, last.bounds, delta))
        rates.p95 = _rounded(quantile(0.95, last.bounds, delta))
        rates.spark = list(self._sparks.get(key, ()))
        return rates


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 5)


class IdleSeries:
    """Finds the counters nginx may drop: series of servers no longer registered whose
    request count has not moved for ``after`` seconds. Without this, every server that ever
    took traffic (each deploy brings new addresses) would keep its keys until nginx restarts,
    and a full dict refuses new series."""

    def __init__(self, after: float = 600.0) -> None:
        self.after = after
        self._since: dict[tuple[str, str], tuple[int, float]] = {}  # key -> (requests, unchanged since)

    def update(
        self, snapshot: TrafficSnapshot, registered: Container[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """The series to forget now, given which (service, address) pairs are registered."""
        idle: list[tuple[str, str]] = []
        seen: dict[tuple[str, str], tuple[int, float]] = {}
        for key, t in snapshot.servers.items():
            if key in registered or key[1] == "-":
                continue
            count, since = self._since.get(key, (t.requests, snapshot.time))
            if count != t.requests:
                count, since = t.requests, snapshot.time
            if snapshot.time - since >= self.after:
                idle.append(key)
            else:
                seen[key] = (count, since)
        self._since = seen
        return sorted(idle)
