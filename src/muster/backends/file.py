"""confd's ``file`` backend: keys from YAML files or directories of them.

Each ``-file`` path is a YAML file or a directory walked recursively (in Go's
``filepath.Walk`` order) for files whose base name matches ``-filter``; every file is
flattened as confd does (``backends.yamlkeys``) and later files override earlier ones.
``get_values`` keeps confd's plain string-prefix filter: ``/app`` also selects
``/application/x``.

Watching (``backends.filewatch``): inotify on Linux, so a saved file is seen within
milliseconds, including by editors that replace files by rename; elsewhere a
``stat`` poll once per second. Either only wakes ``wait_changed``, which re-reads
the keys: only a change of the selected keys' values ends the wait, so touching a
file or editing an unrelated key does not trigger a render.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Sequence

from muster.backends.base import Snapshot
from muster.backends.filewatch import open_watch
from muster.backends.options import BackendOptions
from muster.backends.yamlkeys import KeyFileError, load_json_keys, load_yaml_keys
from muster.errors import BackendError, BackendUnavailable, ConfigError
from muster.golang import path as gopath
from muster.log import kv

__all__ = ["FileBackend", "find_key_files", "load_key_files"]

log = logging.getLogger(__name__)

#: Seconds between two stat scans where there is no inotify (see module docstring).
POLL_INTERVAL = 1.0


def _walk(root: str, pattern: str, found: list[str]) -> None:
    # filepath.Walk: lexical order, depth first, symlinks not followed; every entry's
    # base name is matched, and only non-directories (by os.Stat) are kept.
    try:
        names = sorted(os.listdir(root))
    except OSError as exc:
        raise BackendUnavailable(f"file backend: cannot read directory {root}: {exc.strerror}") from exc
    for name in names:
        path = os.path.join(root, name)
        try:
            is_real_dir = stat.S_ISDIR(os.lstat(path).st_mode)
        except OSError:
            continue
        if _matches(pattern, name) and not os.path.isdir(path):
            found.append(path)
        if is_real_dir:
            _walk(path, pattern, found)


def _matches(pattern: str, name: str) -> bool:
    try:
        return gopath.match(pattern, name)
    except gopath.BadPattern:
        raise ConfigError(f"file backend: bad -filter pattern {pattern!r}: syntax error in pattern") from None


def find_key_files(paths: Sequence[str], pattern: str = "*") -> list[str]:
    """util.RecursiveFilesLookup over each path: a file is taken as is, a directory
    is walked for files whose name matches ``pattern``."""
    found: list[str] = []
    for root in paths:
        try:
            is_dir = os.path.isdir(root)
            os.stat(root)
        except OSError as exc:
            raise BackendUnavailable(f"file backend: {root}: {exc.strerror}") from exc
        if is_dir:
            _matches(pattern, "x")  # a bad pattern is an error even in an empty directory
            _walk(root, pattern, found)
        else:
            found.append(root)
    return found


def load_key_file(path: str) -> dict[str, str]:
    """One key file flattened: JSON when it ends in ``.json``, else YAML."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise BackendUnavailable(f"file backend: cannot read {path}: {exc.strerror}") from exc
    try:
        if path.endswith(".json"):
            return load_json_keys(data, path)
        return load_yaml_keys(data, path)
    except KeyFileError as exc:
        raise BackendError(str(exc)) from exc


def load_key_files(paths: Sequence[str], pattern: str = "*") -> dict[str, str]:
    """Every key of every file, later files overriding earlier ones."""
    values: dict[str, str] = {}
    for path in find_key_files(paths, pattern):
        values.update(load_key_file(path))
    return values


def _select(values: dict[str, str], prefixes: Sequence[str]) -> dict[str, str]:
    # confd keeps a key if it merely starts with one of the keys (string prefix).
    return {k: v for k, v in values.items() if any(k.startswith(p) for p in prefixes)}


class FileBackend:
    """Keys read from ``options.files`` (files or directories) filtered by ``options.filter``."""

    def __init__(
        self, *, options: BackendOptions, poll_interval: float = POLL_INTERVAL, inotify: bool = True
    ) -> None:
        if not options.files:
            raise ConfigError("file backend: no -file given")
        self._paths = tuple(options.files)
        self._filter = options.filter or "*"
        self._poll_interval = poll_interval
        self._inotify = inotify
        # Every key as first read since the last change was reported: what the
        # caller's renders are based on (see wait_changed).
        self._baseline: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"FileBackend(files={list(self._paths)!r}, filter={self._filter!r})"

    def _read_all(self) -> dict[str, str]:
        return load_key_files(self._paths, self._filter)

    async def get_values(self, prefixes: Sequence[str]) -> Snapshot:
        everything = await asyncio.to_thread(self._read_all)
        if self._baseline is None:
            self._baseline = everything
        values = _select(everything, prefixes)
        log.debug(kv("file.get_values.complete", files=len(self._paths), keys=len(values)))
        return Snapshot(values=values, revision=None)

    async def wait_changed(self, prefixes: Sequence[str], since: int | None) -> int | None:
        """Return (None: files have no revisions) once the selected keys' values change.

        The baseline is the first ``get_values`` read since the last reported change
        (whatever prefixes it asked for), so a change made between a read and this
        call is not missed, even when the caller waits on the union of several
        resources' prefixes. Files that fail to parse mid-edit are retried on the
        next change.
        """
        if self._baseline is None:
            self._baseline = await asyncio.to_thread(self._read_all)
        baseline = _select(self._baseline, prefixes)
        watch = await asyncio.to_thread(
            open_watch, self._paths, poll_interval=self._poll_interval, inotify=self._inotify
        )
        try:
            # Compare once the watch is armed: the files may have changed since the
            # baseline was read, and nothing can slip between this check and the watch.
            changed = await self._changed_from(baseline, prefixes)
            while not changed:
                await watch.wait()
                changed = await self._changed_from(baseline, prefixes)
        finally:
            watch.close()
        self._baseline = None
        return None

    async def _changed_from(self, baseline: dict[str, str], prefixes: Sequence[str]) -> bool:
        try:
            values = _select(await asyncio.to_thread(self._read_all), prefixes)
        except BackendError as exc:
            log.warning(kv("file.watch.read_failed", error=exc))
            return False
        if values == baseline:
            return False
        log.debug(kv("file.watch.changed", keys=len(values)))
        return True

    async def aclose(self) -> None:
        self._baseline = None

    async def __aenter__(self) -> FileBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
