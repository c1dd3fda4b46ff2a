"""Client for HAProxy's runtime API (the admin-level stats socket), async and over a unix socket.

Commands are pipelined on one connection in HAProxy's interactive ("prompt") mode: each
answer then ends with a ``"\\n> "`` prompt, which is how the answers are told apart
(the non-interactive mode ends answers with a blank line, ambiguous for empty answers).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from pathlib import Path

from muster.errors import RuntimeAPIError
from muster.log import kv

__all__ = ["HAProxyCLI", "RuntimeAPIError", "query"]

log = logging.getLogger(__name__)

_PROMPT = "\n> "
# Commands per connection: HAProxy reads them as they come, this only bounds one answer's size.
_BATCH = 500


class HAProxyCLI:
    """Talks to ``stats socket PATH level admin``; every call opens one short connection."""

    def __init__(self, path: Path | str, *, timeout: float = 5.0) -> None:
        self.path = str(path)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<HAProxyCLI {self.path}>"

    async def aclose(self) -> None:
        """Nothing to release: every call opens and closes its own connection."""

    async def run(self, commands: Sequence[str]) -> list[str]:
        """Run ``commands`` in order; return each one's answer (stripped, ``""`` for silence)."""
        for cmd in commands:
            if "\n" in cmd or "\r" in cmd or ";" in cmd:
                # Newlines and ';' separate commands: callers must never pass them through.
                raise ValueError(f"not one runtime API command: {cmd!r}")
        answers: list[str] = []
        for start in range(0, len(commands), _BATCH):
            answers.extend(await self._run_batch(commands[start : start + _BATCH]))
        return answers

    async def _run_batch(self, commands: Sequence[str]) -> list[str]:
        payload = ("prompt\n" + "".join(c + "\n" for c in commands) + "quit\n").encode("ascii")
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_unix_connection(self.path)
                try:
                    # Write and read at once: a long batch's answers could fill the socket
                    # buffer while we are still writing.
                    send = asyncio.ensure_future(_send(writer, payload))
                    raw = await reader.read()
                    await send
                finally:
                    writer.close()
        except (OSError, TimeoutError) as exc:
            raise RuntimeAPIError(f"haproxy runtime API {self.path}: {exc or type(exc).__name__}") from exc
        text = raw.decode("utf-8", "replace")
        # The "prompt" command answers nothing; then one answer per command, each + prompt.
        parts = text.split(_PROMPT)
        if len(parts) < len(commands) + 1:
            raise RuntimeAPIError(
                f"haproxy runtime API {self.path}: {len(parts) - 1} answers to {len(commands)} commands"
            )
        return [p.strip("\n") for p in parts[1 : len(commands) + 1]]

    async def command(self, cmd: str) -> str:
        """One command's answer."""
        return (await self.run([cmd]))[0]

    async def info(self) -> dict[str, str]:
        """``show info`` as a mapping (``Pid``, ``Start_time_sec``, ``Uptime_sec``, ...)."""
        return parse_info(await self.command("show info"))


async def _send(writer: asyncio.StreamWriter, payload: bytes) -> None:
    writer.write(payload)
    await writer.drain()


def parse_info(text: str) -> dict[str, str]:
    """``Key: value`` lines of ``show info``."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            info[key] = value
    return info


def query(path: Path | str, cmd: str, *, timeout: float = 5.0) -> str:
    """One command, synchronously (for process drivers and reload helpers outside a loop)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(cmd.encode("ascii") + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        log.debug(kv("haproxy.cli.failed", path=path, error=exc))
        raise RuntimeAPIError(f"haproxy runtime API {path}: {exc}") from exc
    return b"".join(chunks).decode("utf-8", "replace")
