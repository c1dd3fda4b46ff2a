"""Run ``muster register`` as a subprocess in tests: the ``spawn`` fixture and its ``Agent`` handle."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


class Agent:
    """One ``muster register`` subprocess, its log, and the key it manages."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, key: str) -> None:
        self.proc = proc
        self.log = log
        self.key = key

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_output(self, needle: str, timeout: float = 20.0) -> None:
        """Wait until the agent has logged ``needle`` (it also proves its handlers are set up)."""
        deadline = time.monotonic() + timeout
        while needle not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the agent never logged {needle!r}:\n{self.output()}")
            time.sleep(0.05)

    def signal(self, signum: int) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=15)


SpawnAgent = Callable[..., Agent]


@pytest.fixture(name="spawn")
def spawn_fixture(tmp_path: Path) -> Iterator[SpawnAgent]:
    """``spawn(url, api, prefix, *flags, server_id=..., command=[...])`` starts ``muster register``."""
    agents: list[Agent] = []

    def start(
        url: str | list[str],
        api: str,
        prefix: str,
        *flags: str,
        server_id: str = "a",
        service: str = "web",
        command: list[str] | None = None,
        ttl: int = 10,
    ) -> Agent:
        nodes = [url] if isinstance(url, str) else url
        args = [
            sys.executable,
            "-m",
            "muster",
            "register",
            "--service",
            service,
            "--host",
            "127.0.0.1",
            "--port",
            "8080",
            "--id",
            server_id,
            "--ttl",
            str(ttl),
            "--backend",
            api,
            "--prefix",
            prefix,
            "--log-level",
            "debug",
        ]
        for node in nodes:
            args += ["--node", node]
        args += list(flags)
        if command:
            args += ["--", *command]
        log = tmp_path / f"register-{len(agents)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        agent = Agent(proc, log, f"{prefix}/{service}/servers/{server_id}")
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait()
