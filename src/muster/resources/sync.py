"""Put rendered files in place safely: stage -> compare -> check -> fsync + rename -> reload -> rollback.

Theory of operation, for one batch of rendered resources:

1. **Stage.** Each output is written to ``.<dest-basename><random>`` in the dest directory
   (same filesystem, so the rename is atomic), fsynced, and given its mode and owner. An
   output equal to dest in content, mode and owner is not written at all (unless
   ``keep_stage_file``): most batches leave most files as they are, and a stage file's
   create + fsync + unlink was most of a daemon's work per change with 30 daemons.
2. **Compare** content, mode, uid and gid of the staged file with dest. Equal: nothing to do.
   ``-noop`` stops here and prints a unified diff.
3. **Check.** ``check_cmd`` runs against the staged file; a failure leaves dest untouched.
4. **Swap.** ``rename(staged, dest)`` then fsync the directory. A bind-mounted single file
   (EBUSY, as in containers) is written in place instead, as confd does.
5. **Reload.** Resources are grouped by their expanded ``reload_cmd``, and each command runs
   once per batch, never twice at the same time (``SyncOptions.locks``).
6. **Rollback.** If a reload fails, every file that command covered is put back as it was
   (content, mode, owner; or removed if it did not exist) and the command runs again, so the
   service goes back to the last good configuration. confd leaves the bad file in place.
   If any file cannot be restored, the command is not run again over that half-restored
   set: those resources fail with both errors, and ``rolled_back`` stays false for them.

dest is only ever replaced whole, only after its check passed: never half-written, never
unchecked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import difflib
import errno
import functools
import logging
import os
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from muster.errors import CommandFailed, Error, ResourceError
from muster.log import kv
from muster.resources.commands import expand, run_command
from muster.resources.spec import ResourceSpec

__all__ = ["Staged", "SyncOptions", "SyncResult", "apply", "rollback", "stage", "swap"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class SyncOptions:
    """How a batch is applied; ``locks`` outlives batches so one command never runs twice at once."""

    noop: bool = False
    sync_only: bool = False
    keep_stage_file: bool = False
    check_timeout: float = 30.0
    reload_timeout: float = 60.0
    diff_out: TextIO | None = None
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, cmd: str) -> asyncio.Lock:
        return self.locks.setdefault(cmd, asyncio.Lock())


@dataclass(frozen=True, slots=True)
class FileState:
    """dest as it was: content and attributes, or ``content is None`` if it did not exist."""

    content: bytes | None
    mode: int = 0
    uid: int = -1
    gid: int = -1


@dataclass(slots=True)
class Staged:
    """A rendered file written next to its dest, and how it differs from dest."""

    spec: ResourceSpec
    path: Path | None
    content: bytes
    previous: FileState
    reasons: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.reasons)


@dataclass(frozen=True, slots=True)
class SyncResult:
    """The outcome for one resource; ``error`` is ``None`` on success.

    ``changed`` means dest was replaced (in ``-noop``: would be). ``rolled_back`` means it
    was replaced, the reload failed, and the previous file was restored.
    """

    spec: ResourceSpec
    changed: bool = False
    reasons: tuple[str, ...] = ()
    diff: str = ""
    error: Error | None = None
    rolled_back: bool = False
    reloaded: bool = False


def read_state(path: Path) -> FileState:
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ResourceError(f"{path} is not a regular file")
            content = fh.read()
    except FileNotFoundError:
        return FileState(None)
    except IsADirectoryError:
        raise ResourceError(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise ResourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return FileState(content, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def _write_staged(dest: Path, content: bytes, mode: int, uid: int, gid: int) -> tuple[Path, FileState]:
    """Write ``content`` to a new ``.<basename>XXXX`` file beside ``dest``; return it and its state."""
    try:
        fd, name = tempfile.mkstemp(prefix="." + dest.name, dir=dest.parent)
    except FileNotFoundError:
        raise ResourceError(f"cannot stage {dest}: directory {dest.parent} does not exist") from None
    except OSError as exc:
        raise ResourceError(f"cannot stage {dest}: {exc.strerror or exc}") from exc
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            try:
                os.fchown(fh.fileno(), uid, gid)
            except OSError as exc:
                # confd ignores chown errors; we say so, and compare what we really got.
                logger.warning(
                    kv("resource.chown.failed", dest=dest, uid=uid, gid=gid, error=exc.strerror or exc)
                )
            os.fsync(fh.fileno())
            st = os.fstat(fh.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        raise ResourceError(f"cannot stage {dest}: {exc.strerror or exc}") from exc
    return path, FileState(content, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def stage(spec: ResourceSpec, content: bytes, *, keep: bool = False) -> Staged:
    """Stage ``content`` for ``spec.dest`` and compare it with dest.

    An unchanged result is not kept on disk (unless ``keep``), so ``path`` may be ``None``.
    """
    previous = read_state(spec.dest)
    if spec.mode is not None:
        mode = spec.mode
    elif previous.content is not None:
        mode = previous.mode
    else:
        mode = 0o644
    uid = spec.uid if spec.uid is not None else os.geteuid()
    gid = spec.gid if spec.gid is not None else os.getegid()
    if (
        not keep
        and previous.content == content
        and (previous.mode, previous.uid, previous.gid) == (mode, uid, gid)
    ):
        # The stage file would equal dest (fchmod sets exactly ``mode``): nothing to write.
        return Staged(spec, None, content, previous, ())
    path, new = _write_staged(spec.dest, content, mode, uid, gid)
    reasons: list[str] = []
    if previous.content is None:
        reasons.append("missing")
    else:
        if previous.content != content:
            reasons.append("content")
        if previous.mode != new.mode:
            reasons.append(f"mode {previous.mode:04o}->{new.mode:04o}")
        if previous.uid != new.uid:
            reasons.append(f"uid {previous.uid}->{new.uid}")
        if previous.gid != new.gid:
            reasons.append(f"gid {previous.gid}->{new.gid}")
    staged = Staged(spec, path, content, previous, tuple(reasons))
    if not staged.changed:
        discard(staged, keep=keep)
    return staged


def discard(staged: Staged, *, keep: bool = False) -> None:
    if staged.path is not None and not keep:
        with contextlib.suppress(OSError):  # a stray stage file is harmless; hiding the real error is not
            staged.path.unlink(missing_ok=True)
        staged.path = None


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def swap(staged: Staged) -> None:
    """Atomically replace dest with the staged file (in place for a busy bind-mounted dest)."""
    assert staged.path is not None
    dest = staged.spec.dest
    try:
        os.rename(staged.path, dest)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise ResourceError(f"cannot replace {dest}: {exc.strerror or exc}") from exc
        # A single file bind-mounted into a container cannot be renamed over (confd does the same).
        logger.warning(kv("resource.swap.in_place", dest=dest, reason="device or resource busy"))
        try:
            st = staged.path.stat()
            with open(dest, "wb") as fh:
                fh.write(staged.content)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(dest, stat.S_IMODE(st.st_mode))
            with contextlib.suppress(OSError):
                os.chown(dest, st.st_uid, st.st_gid)
        except OSError as exc2:
            raise ResourceError(f"cannot write {dest}: {exc2.strerror or exc2}") from exc2
        with contextlib.suppress(OSError):  # dest is written: a stray stage file is no failure
            staged.path.unlink(missing_ok=True)
    staged.path = None
    _fsync_dir(dest.parent)


def rollback(staged: Staged) -> None:
    """Put back what dest was before ``swap(staged)``."""
    dest = staged.spec.dest
    prev = staged.previous
    if prev.content is None:
        try:
            dest.unlink(missing_ok=True)
        except OSError as exc:
            raise ResourceError(f"cannot remove {dest}: {exc.strerror or exc}") from exc
        _fsync_dir(dest.parent)
        return
    path, _ = _write_staged(dest, prev.content, prev.mode, prev.uid, prev.gid)
    restore = Staged(staged.spec, path, prev.content, prev, ("rollback",))
    swap(restore)


def unified_diff(staged: Staged) -> str:
    old = (staged.previous.content or b"").decode("utf-8", "replace").splitlines(keepends=True)
    new = staged.content.decode("utf-8", "replace").splitlines(keepends=True)
    dest = str(staged.spec.dest)
    lines = difflib.unified_diff(old, new, fromfile=dest, tofile=f"{dest} (new)")
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def _bisect_common(equal_at: Callable[[int], bool], limit: int) -> int:
    """The largest ``k <= limit`` with ``equal_at(k)`` (which holds for every smaller k)."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if equal_at(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


_BLOCK = 1 << 14  # bytes compared per step before bisecting inside the first unequal block


def _heads_equal(x: bytes, y: bytes, k: int) -> bool:
    return x[:k] == y[:k]


def _tails_equal(x: bytes, y: bytes, k: int) -> bool:
    return x[len(x) - k :] == y[len(y) - k :]


def _common_head(a: bytes, b: bytes, limit: int) -> int:
    """The length of the common prefix of ``a`` and ``b``, at most ``limit``.

    Block by block, then bisection inside the first block that differs: each byte is
    copied about once, where bisecting the whole file copies it ~log2(size) times (74 ms
    of a change to a 1.5 MB config under load).
    """
    i = 0
    while i < limit:
        j = min(i + _BLOCK, limit)
        x, y = a[i:j], b[i:j]
        if x != y:
            return i + _bisect_common(functools.partial(_heads_equal, x, y), j - i)
        i = j
    return limit


def _common_tail(a: bytes, b: bytes, limit: int) -> int:
    """The length of the common suffix of ``a`` and ``b``, at most ``limit``."""
    la, lb = len(a), len(b)
    i = 0
    while i < limit:
        j = min(i + _BLOCK, limit)
        x, y = a[la - j : la - i], b[lb - j : lb - i]
        if x != y:
            return i + _bisect_common(functools.partial(_tails_equal, x, y), j - i)
        i = j
    return limit


def _lines(region: bytes) -> int:
    return region.count(b"\n") + (1 if region and not region.endswith(b"\n") else 0)


def diff_summary(staged: Staged) -> str:
    """``+added -removed lines at line N``: the one region between the common head and tail.

    Cheap (block compares, no line diff: difflib is quadratic on big files) and exact for
    the usual change, one upstream's servers; scattered edits count as one region spanning them.
    """
    old = staged.previous.content or b""
    new = staged.content
    if old == new:
        return "+0 -0 lines"
    limit = min(len(old), len(new))
    head = _common_head(old, new, limit)
    head = old.rfind(b"\n", 0, head) + 1  # back to the start of that line
    limit -= head
    tail = _common_tail(old, new, limit)
    start_old, start_new = len(old) - tail, len(new) - tail
    at_line_start = (start_old == head or old[start_old - 1] == 10) and (
        start_new == head or new[start_new - 1] == 10
    )
    if tail and not at_line_start:
        # The common tail starts mid-line: only the whole lines after its first newline count.
        newline = old.find(b"\n", start_old)
        tail = len(old) - (newline + 1) if newline >= 0 else 0
    removed = _lines(old[head : len(old) - tail])
    added = _lines(new[head : len(new) - tail])
    line = old.count(b"\n", 0, head) + 1
    return f"+{added} -{removed} lines at line {line}"


async def apply(rendered: Sequence[tuple[ResourceSpec, bytes]], opts: SyncOptions) -> list[SyncResult]:
    """Apply one batch of rendered outputs; every resource gets a result, failures included."""
    results: dict[int, SyncResult] = {}
    swapped: list[tuple[int, Staged, str]] = []
    for index, (spec, content) in enumerate(rendered):
        started = time.monotonic()
        try:
            staged = stage(spec, content, keep=opts.keep_stage_file)
        except ResourceError as exc:
            logger.error(kv("resource.stage.failed", resource=spec.name, dest=spec.dest, error=exc))
            results[index] = SyncResult(spec, error=exc)
            continue
        if not staged.changed:
            # DEBUG, as confd's "in sync": a batch per change would log it for every resource.
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(kv("resource.sync.unchanged", resource=spec.name, dest=spec.dest))
            results[index] = SyncResult(spec)
            continue
        summary = diff_summary(staged)
        reasons = ",".join(staged.reasons)
        logger.info(kv("resource.changed", resource=spec.name, dest=spec.dest, reasons=reasons, diff=summary))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(kv("resource.diff", resource=spec.name, diff=unified_diff(staged)))
        if opts.noop:
            out = opts.diff_out or sys.stdout
            out.write(unified_diff(staged) or f"{spec.dest}: {reasons}\n")
            out.flush()
            discard(staged, keep=opts.keep_stage_file)
            results[index] = SyncResult(spec, changed=True, reasons=staged.reasons, diff=summary)
            continue
        try:
            if spec.check_cmd and not opts.sync_only:
                assert staged.path is not None
                cmd = expand(spec.check_cmd, src=str(staged.path), dest=str(spec.dest))
                await run_command(
                    cmd, timeout=spec.check_timeout or opts.check_timeout, what="check", resource=spec.name
                )
            swap(staged)
        except (CommandFailed, ResourceError) as exc:
            discard(staged, keep=opts.keep_stage_file)
            logger.error(
                kv(
                    "resource.sync.failed",
                    resource=spec.name,
                    dest=spec.dest,
                    error=exc,
                    note="dest left unchanged",
                )
            )
            results[index] = SyncResult(spec, reasons=staged.reasons, diff=summary, error=exc)
            continue
        except BaseException:
            discard(staged)  # cancelled (shutdown) mid-check: leave no stage file behind
            raise
        logger.info(
            kv(
                "resource.sync.complete",
                resource=spec.name,
                dest=spec.dest,
                changed=True,
                diff=summary,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
        )
        results[index] = SyncResult(spec, changed=True, reasons=staged.reasons, diff=summary)
        if spec.reload_cmd and not opts.sync_only:
            # In reload_cmd the checked file now lives at dest, so {{.src}} means dest too.
            cmd = expand(spec.reload_cmd, src=str(spec.dest), dest=str(spec.dest))
            swapped.append((index, staged, cmd))
    await _reload(swapped, results, opts)
    return [results[i] for i in range(len(rendered))]


async def _reload(
    swapped: list[tuple[int, Staged, str]], results: dict[int, SyncResult], opts: SyncOptions
) -> None:
    groups: dict[str, list[tuple[int, Staged]]] = {}
    for index, staged, cmd in swapped:
        groups.setdefault(cmd, []).append((index, staged))
    for cmd, members in groups.items():
        names = ",".join(s.spec.name for _, s in members)
        timeout = min(s.spec.reload_timeout or opts.reload_timeout for _, s in members)
        async with opts.lock(cmd):
            try:
                await run_command(cmd, timeout=timeout, what="reload", resource=names)
            except CommandFailed as exc:
                failure: CommandFailed | None = exc
            else:
                failure = None
            if failure is None:
                for index, _ in members:
                    results[index] = _replace(results[index], reloaded=True)
                continue
            logger.error(kv("resource.rollback.started", resources=names, reason="reload failed"))
            restored = True
            for index, staged in members:
                try:
                    rollback(staged)
                except ResourceError as exc:
                    restored = False
                    logger.error(kv("resource.rollback.failed", resource=staged.spec.name, error=exc))
                    error = ResourceError(f"{failure}; then restoring {staged.spec.dest} failed: {exc}")
                    error.__cause__ = exc
                    results[index] = _replace(results[index], error=error)
                else:
                    results[index] = _replace(results[index], error=failure, rolled_back=True)
            if not restored:
                # Reloading now would load a mix of old and new files that no check ever saw
                # together: leave the service on whatever the failed reload left it with.
                logger.error(
                    kv("resource.rollback.incomplete", resources=names, note="not reloaded; fix and re-sync")
                )
            else:
                try:
                    await run_command(cmd, timeout=timeout, what="reload", resource=names)
                    logger.warning(
                        kv(
                            "resource.rollback.complete",
                            resources=names,
                            note="previous files restored and reloaded",
                        )
                    )
                except CommandFailed:
                    logger.error(
                        kv(
                            "resource.rollback.reload_failed",
                            resources=names,
                            note="previous files restored but the reload still fails",
                        )
                    )


def _replace(result: SyncResult, **changes: object) -> SyncResult:
    return dataclasses.replace(result, **changes)  # type: ignore[arg-type]
