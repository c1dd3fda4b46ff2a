"""Wake up when files or directories change: inotify on Linux, ``stat`` polling elsewhere.

The file backend needs "something under these paths may have changed" and nothing
more: it re-reads the keys and compares values itself. So a ``FileWatch`` only has
to wake its waiter, never to say what changed, and a spurious wake-up is harmless.

- ``InotifyWatch`` (Linux, through ``ctypes``: the standard library has no binding)
  watches each directory that holds a watched file (so editors that save by
  writing a new file and renaming it over the old one are seen) and every directory
  below a watched directory, re-adding watches after each wake-up so new
  subdirectories are covered. A burst of events is coalesced for ``settle`` seconds.
- ``PollWatch`` compares (size, mtime, inode) of every watched path once per
  ``interval`` seconds: a few system calls per second, for systems without inotify.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import stat
import sys
from collections.abc import Sequence
from typing import Final, Protocol

__all__ = ["FileWatch", "InotifyWatch", "PollWatch", "open_watch"]

# inotify(7) event masks.
_IN_MODIFY: Final = 0x002
_IN_ATTRIB: Final = 0x004
_IN_CLOSE_WRITE: Final = 0x008
_IN_MOVED_FROM: Final = 0x040
_IN_MOVED_TO: Final = 0x080
_IN_CREATE: Final = 0x100
_IN_DELETE: Final = 0x200
_IN_DELETE_SELF: Final = 0x400
_IN_MOVE_SELF: Final = 0x800
_MASK: Final = (
    _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE
    | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF
)  # fmt: skip


class FileWatch(Protocol):
    async def wait(self) -> None:
        """Return once something under the watched paths may have changed."""
        ...

    def close(self) -> None:
        """Release the watch; safe to call twice."""
        ...


def _watched_dirs(paths: Sequence[str]) -> list[str]:
    dirs: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, _subdirs, _files in os.walk(path):
                dirs.append(root)
        else:
            dirs.append(os.path.dirname(os.path.abspath(path)))
    return dirs


class InotifyWatch:
    """Event-driven watch through the Linux inotify API."""

    def __init__(self, paths: Sequence[str], *, settle: float = 0.05) -> None:
        libc_name = ctypes.util.find_library("c")
        self._libc = ctypes.CDLL(libc_name, use_errno=True)
        fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._fd: int | None = fd
        self._paths = tuple(paths)
        self._settle = settle
        self._add_watches()

    def _add_watches(self) -> None:
        # Adding an already watched directory again is a no-op, so this also picks
        # up directories created since the last call.
        for directory in _watched_dirs(self._paths):
            if self._fd is not None:
                self._libc.inotify_add_watch(self._fd, os.fsencode(directory), _MASK)

    def _drain(self) -> None:
        assert self._fd is not None
        try:
            while os.read(self._fd, 65536):
                pass
        except BlockingIOError:
            pass

    async def wait(self) -> None:
        if self._fd is None:
            raise RuntimeError("watch is closed")
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        loop.add_reader(self._fd, ready.set)
        try:
            await ready.wait()
            await asyncio.sleep(self._settle)  # let an editor finish its save
        finally:
            if self._fd is not None:
                loop.remove_reader(self._fd)
        self._drain()
        self._add_watches()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class PollWatch:
    """Compare ``stat`` marks of every watched path once per ``interval`` seconds."""

    def __init__(self, paths: Sequence[str], *, interval: float = 1.0) -> None:
        self._paths = tuple(paths)
        self._interval = interval
        self._mark = self._fingerprint()

    def _fingerprint(self) -> tuple[tuple[str, int, int, int], ...]:
        marks: list[tuple[str, int, int, int]] = []
        for root in self._paths:
            todo = [root]
            while todo:
                path = todo.pop()
                try:
                    st = os.stat(path)
                except OSError:
                    marks.append((path, -1, -1, -1))
                    continue
                marks.append((path, st.st_size, st.st_mtime_ns, st.st_ino))
                if stat.S_ISDIR(st.st_mode):
                    try:
                        todo.extend(os.path.join(path, n) for n in os.listdir(path))
                    except OSError:
                        pass
        return tuple(sorted(marks))

    async def wait(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            now = await asyncio.to_thread(self._fingerprint)
            if now != self._mark:
                self._mark = now
                return

    def close(self) -> None:
        return None


def open_watch(paths: Sequence[str], *, poll_interval: float = 1.0, inotify: bool = True) -> FileWatch:
    """An ``InotifyWatch`` where the platform has inotify, else a ``PollWatch``."""
    if inotify and sys.platform.startswith("linux"):
        try:
            return InotifyWatch(paths)
        except (OSError, AttributeError):
            pass  # no inotify (or no instances left): fall back to polling
    return PollWatch(paths, interval=poll_interval)
