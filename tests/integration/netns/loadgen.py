"""The bed's load generator and demo server: a script run inside a namespace, and its driver.

``python loadgen.py load --url U [--url U ...] --out FILE`` sends steady GETs to every URL
(``--rate`` per URL per second, from ``--concurrency`` workers per URL, each on its own
keep-alive connection) until SIGTERM, lets the requests in flight finish, then writes a
JSON report: requests, failures (a status other than 200, a transport error or a timeout),
per-second counts and the first failures with their time. Times are ``time.monotonic()``,
which every process on the machine shares, so a test can line failures up with the faults
it made. ``python loadgen.py demo ID HOST PORT`` runs muster's demo server on HOST.

``LoadGen`` (used by ``netbed.Bed.load()``) runs the script in a namespace: ``with`` starts
it and returns once it is sending; ``report`` holds the result after the block.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

__all__ = ["LoadGen", "LoadReport"]

_STARTED = "loadgen.started"
_MAX_FAILURES_KEPT = 200


@dataclass
class LoadReport:
    """What the load generator saw: counts, per-second counts, the first failures."""

    requests: int
    failed: int
    #: (second, requests, failed) for each whole monotonic second with a request.
    per_second: list[tuple[int, int, int]] = field(default_factory=list)
    #: (time, url, error) of the first failures.
    failures: list[tuple[float, str, str]] = field(default_factory=list)
    by_error: dict[str, int] = field(default_factory=dict)

    def failed_seconds(self) -> list[tuple[int, int]]:
        """(second, failed) for the seconds with a failure."""
        return [(sec, bad) for sec, _, bad in self.per_second if bad]

    def describe(self) -> str:
        errors = ", ".join(f"{n}x {e}" for e, n in sorted(self.by_error.items(), key=lambda x: -x[1])[:5])
        return f"{self.requests} requests, {self.failed} failed" + (f" ({errors})" if errors else "")


class LoadGen:
    """Runs ``loadgen.py load`` in namespace ``ns``; a context manager (see the module doc)."""

    def __init__(self, ns: str, urls: list[str], directory: Path, *, rate: float = 50.0) -> None:
        self.ns = ns
        self.urls = urls
        self.rate = rate
        directory.mkdir(parents=True, exist_ok=True)
        stamp = f"{time.monotonic_ns()}"
        self.out = directory / f"report-{stamp}.json"
        self.log = directory / f"load-{stamp}.log"
        self.report: LoadReport | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        argv = [sys.executable, str(Path(__file__)), "load", "--out", str(self.out), "--rate", str(self.rate)]
        for url in self.urls:
            argv += ["--url", url]
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, *argv], stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while _STARTED not in self.log.read_text(errors="replace"):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the load generator did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.02)

    def stop(self) -> LoadReport:
        """SIGTERM, wait for the requests in flight, read the report."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        try:
            raw = json.loads(self.out.read_text())
        except (OSError, ValueError) as exc:
            tail = self.log.read_text()[-2000:]
            raise RuntimeError(f"no report from the load generator ({exc}):\n{tail}") from exc
        self.report = LoadReport(
            requests=raw["requests"],
            failed=raw["failed"],
            per_second=[(int(a), int(b), int(c)) for a, b, c in raw["per_second"]],
            failures=[(float(t), str(u), str(e)) for t, u, e in raw["failures"]],
            by_error=raw["by_error"],
        )
        return self.report

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.stop()
        else:
            try:
                self.stop()
            except RuntimeError:
                pass  # the original exception matters more


# -- the script ------------------------------------------------------------------------------------


async def _load(urls: list[str], rate: float, concurrency: int, timeout: float, out: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    per_second: dict[int, list[int]] = {}
    failures: list[tuple[float, str, str]] = []
    by_error: Counter[str] = Counter()
    period = concurrency / rate

    def record(url: str, error: str | None) -> None:
        now = time.monotonic()
        row = per_second.setdefault(int(now), [0, 0])
        row[0] += 1
        if error is not None:
            row[1] += 1
            by_error[error.split(":")[0]] += 1
            if len(failures) < _MAX_FAILURES_KEPT:
                failures.append((now, url, error))

    async def worker(url: str, offset: float) -> None:
        # One session (and so one keep-alive connection) per worker, as separate clients.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            due = loop.time() + offset
            while not stop.is_set():
                delay = due - loop.time()
                if delay > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                        break
                    except TimeoutError:
                        pass
                error: str | None = None
                try:
                    async with session.get(url) as resp:
                        body = await resp.read()
                        if resp.status != 200:
                            error = f"HTTP {resp.status}: {body[:60]!r}"
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                record(url, error)
                due = max(due + period, loop.time())  # steady: no burst to catch up

    tasks = [
        asyncio.create_task(worker(url, period * i / concurrency)) for url in urls for i in range(concurrency)
    ]
    print(_STARTED, flush=True)
    await asyncio.gather(*tasks)
    rows = sorted((sec, n, bad) for sec, (n, bad) in per_second.items())
    report: dict[str, Any] = {
        "requests": sum(n for _, n, _ in rows),
        "failed": sum(bad for _, _, bad in rows),
        "per_second": rows,
        "failures": failures,
        "by_error": dict(by_error),
    }
    out.write_text(json.dumps(report))


async def _demo(server_id: str, host: str, port: int) -> None:
    from muster.stack.demo import DemoServer, serve

    await serve([DemoServer(server_id, host=host, port=port)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="cmd", required=True)
    load = sub.add_parser("load")
    load.add_argument("--url", action="append", required=True)
    load.add_argument("--rate", type=float, default=50.0, help="requests per second per URL")
    load.add_argument("--concurrency", type=int, default=5, help="workers per URL")
    load.add_argument("--timeout", type=float, default=5.0)
    load.add_argument("--out", type=Path, required=True)
    demo = sub.add_parser("demo")
    demo.add_argument("id")
    demo.add_argument("host")
    demo.add_argument("port", type=int)
    args = parser.parse_args(argv)
    if args.cmd == "load":
        asyncio.run(_load(args.url, args.rate, args.concurrency, args.timeout, args.out))
    else:
        asyncio.run(_demo(args.id, args.host, args.port))


if __name__ == "__main__":
    main()
