"""What every process driver of the local stack shares: pid, liveness, log tail, ``with``."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["ManagedProcess", "log_tail"]


def log_tail(path: Path, lines: int, missing: str = "") -> str:
    """The last ``lines`` lines of a process's log, for error messages; ``missing`` if unreadable."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return missing
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """Base of the drivers: ``_proc`` is the child while it runs; ``with`` starts and stops it."""

    _proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The child's (for nginx and haproxy: the master's) pid while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
