"""Helpers for daemon tests: a confdir builder, a fake clock for the debounce, and ``eventually``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

LIST_TEMPLATE = '{{range gets "/svc/*"}}{{.Key}}={{.Value}}\n{{end}}'


class FakeClock:
    """A monotonic clock that only moves when the test calls ``advance()`` (trio's MockClock idea).

    ``sleep`` parks the caller until the clock passes its deadline; ``sleeping`` counts them.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, future))
        try:
            await future
        finally:
            self._sleepers = [(d, f) for d, f in self._sleepers if f is not future]

    @property
    def sleeping(self) -> int:
        return sum(1 for _, f in self._sleepers if not f.done())

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for deadline, future in self._sleepers:
            if deadline <= self.now and not future.done():
                future.set_result(None)


async def eventually(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Wait (in real time) until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.005)


class ConfDir:
    """A confd confdir in a temp dir: ``add()`` writes a template and its resource TOML."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.out = root / "out"
        for sub in ("conf.d", "templates", "out"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.reloads = root / "reloads.log"

    def add(
        self,
        name: str,
        template: str = LIST_TEMPLATE,
        *,
        keys: str = '["/svc"]',
        extra: str = "",
        reload: bool = True,
    ) -> Path:
        (self.root / "templates" / f"{name}.tmpl").write_text(template)
        dest = self.out / name
        reload_line = f'reload_cmd = "echo {name} >> {self.reloads}"\n' if reload else ""
        (self.root / "conf.d" / f"{name}.toml").write_text(
            f'[template]\nsrc = "{name}.tmpl"\ndest = "{dest}"\nkeys = {keys}\n{reload_line}{extra}'
        )
        return dest

    def reload_count(self) -> int:
        return len(self.reloads.read_text().split()) if self.reloads.exists() else 0
