"""The swap when the filesystem says no: busy or refused renames, failed staging and rollbacks.

Each test here closes a gap a mutation run (``scripts/mutate``) found in ``resources/sync.py``.
A rename can only be made to fail with EBUSY or EXDEV by a bind mount or a second
filesystem, so those tests inject the errno into ``os.rename`` for dest alone; the others
fail for real.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from muster.errors import CommandFailed, ResourceError
from muster.resources.spec import ResourceSpec
from muster.resources.sync import SyncOptions, apply, stage, swap

RenameFn = Callable[[str | os.PathLike[str], str | os.PathLike[str]], None]


def spec(directory: Path, name: str = "app", **kw: object) -> ResourceSpec:
    fields: dict[str, object] = {
        "name": name,
        "src": directory / "t.tmpl",
        "dest": directory / f"{name}.conf",
        "keys": ("/",),
    }
    fields.update(kw)
    return ResourceSpec(**fields)  # type: ignore[arg-type]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def refuse_rename_onto(monkeypatch: pytest.MonkeyPatch, dest: Path, code: int) -> list[Path]:
    """Make ``os.rename(..., dest)`` fail with ``code``; return the list of refused sources."""
    real: RenameFn = os.rename
    refused: list[Path] = []

    def rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst) == dest:
            refused.append(Path(src))
            raise OSError(code, os.strerror(code), str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    return refused


async def test_busy_dest_is_written_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    s = spec(tmp_path, mode=0o640)
    s.dest.write_bytes(b"old\n")
    os.chmod(s.dest, 0o600)
    inode = s.dest.stat().st_ino
    refused = refuse_rename_onto(monkeypatch, s.dest, errno.EBUSY)
    caplog.set_level(logging.INFO, logger="muster.resources.sync")
    [result] = await apply([(s, b"new\n")], SyncOptions())
    assert refused, "the rename was never tried"
    assert result.error is None and result.changed and result.diff == "+1 -1 lines at line 1"
    assert s.dest.read_bytes() == b"new\n"
    assert s.dest.stat().st_ino == inode  # the same file, as a bind mount needs
    assert stat.S_IMODE(s.dest.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []
    assert "resource.swap.in_place" in caplog.text
    assert "resource.changed resource=app dest=" in caplog.text
    assert 'reasons="content,mode 0600->0640" diff="+1 -1 lines at line 1"' in caplog.text


async def test_busy_dest_that_cannot_be_written_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between stage and swap, dest turns into a directory: the in-place write must fail cleanly.
    s = spec(tmp_path, check_cmd="rm {{.dest}} && mkdir {{.dest}}")
    s.dest.write_bytes(b"old")
    refuse_rename_onto(monkeypatch, s.dest, errno.EBUSY)
    [result] = await apply([(s, b"new")], SyncOptions())
    assert str(result.error) == f"cannot write {s.dest}: {os.strerror(errno.EISDIR)}"
    assert not result.changed and s.dest.is_dir()
    assert leftovers(tmp_path) == []


async def test_busy_dest_is_on_disk_before_the_swap_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = spec(tmp_path)
    s.dest.write_bytes(b"old")
    inode = s.dest.stat().st_ino
    real = os.fsync
    synced: list[tuple[int, int]] = []

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        synced.append((st.st_ino, st.st_size))  # what the kernel has when fsync is asked
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    refuse_rename_onto(monkeypatch, s.dest, errno.EBUSY)
    await apply([(s, b"new content")], SyncOptions())
    assert (inode, len(b"new content")) in synced


async def test_busy_dest_whose_owner_cannot_be_set_is_still_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def chown(path: object, uid: int, gid: int) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    s = spec(tmp_path)
    s.dest.write_bytes(b"old")
    refuse_rename_onto(monkeypatch, s.dest, errno.EBUSY)
    monkeypatch.setattr(os, "chown", chown)  # as for anyone but root, on a file of another owner
    [result] = await apply([(s, b"new")], SyncOptions())
    assert result.error is None and s.dest.read_bytes() == b"new"


def test_swap_consumes_the_stage_file(tmp_path: Path) -> None:
    s = spec(tmp_path)
    staged = stage(s, b"new")
    assert staged.path is not None and staged.path.exists()
    swap(staged)
    assert staged.path is None and s.dest.read_bytes() == b"new"
    assert leftovers(tmp_path) == []


async def test_busy_dest_is_rolled_back_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="muster.resources")
    log = tmp_path / "reloads"
    s = spec(tmp_path, reload_cmd=f"cat {{{{.dest}}}} >> {log}; ! grep -q bad {{{{.dest}}}}")
    s.dest.write_bytes(b"good\n")
    refuse_rename_onto(monkeypatch, s.dest, errno.EBUSY)
    [result] = await apply([(s, b"bad\n")], SyncOptions())
    assert isinstance(result.error, CommandFailed) and result.rolled_back
    assert s.dest.read_bytes() == b"good\n"
    assert log.read_text() == "bad\ngood\n"
    assert leftovers(tmp_path) == []
    assert "resource.rollback.started resources=app" in caplog.text
    assert "resource.rollback.complete resources=app" in caplog.text
    assert caplog.text.count("command.reload.failed resource=app") == 1
    assert caplog.text.count("command.reload.complete resource=app") == 1  # the old file's reload


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EACCES, errno.EROFS])
async def test_rename_refused_otherwise_leaves_dest_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    # Only EBUSY means "bind-mounted"; anything else must not fall back to a non-atomic write.
    s = spec(tmp_path, reload_cmd=f"touch {tmp_path}/reloaded")
    other = spec(tmp_path, "other")
    s.dest.write_bytes(b"old\n")
    inode = s.dest.stat().st_ino
    refuse_rename_onto(monkeypatch, s.dest, code)
    [result, fine] = await apply([(s, b"new\n"), (other, b"x")], SyncOptions())
    assert isinstance(result.error, ResourceError)
    assert str(result.error) == f"cannot replace {s.dest}: {os.strerror(code)}"
    assert not result.changed and not result.reloaded and result.reasons == ("content",)
    assert result.diff == "+1 -1 lines at line 1"
    assert s.dest.read_bytes() == b"old\n" and s.dest.stat().st_ino == inode
    assert not (tmp_path / "reloaded").exists()
    assert fine.error is None and other.dest.read_bytes() == b"x"
    assert leftovers(tmp_path) == []


async def test_unstageable_dest_fails_alone_and_names_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # mkstemp adds 8 characters to ".<name>": past NAME_MAX it fails, like an unwritable directory.
    long = spec(tmp_path, "x" * 246)  # dest: 251 characters, its stage file 260
    good = spec(tmp_path, "good")
    bad, fine = await apply([(long, b"x"), (good, b"y")], SyncOptions())
    assert isinstance(bad.error, ResourceError)
    assert str(bad.error) == f"cannot stage {long.dest}: {os.strerror(errno.ENAMETOOLONG)}"
    assert not bad.changed and not long.dest.exists()
    assert fine.error is None and good.dest.read_bytes() == b"y"
    assert "resource.stage.failed" in caplog.text


async def test_failed_stage_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", fsync)
    s = spec(tmp_path)
    s.dest.write_bytes(b"old")
    [result] = await apply([(s, b"new")], SyncOptions())
    assert str(result.error) == f"cannot stage {s.dest}: {os.strerror(errno.EIO)}"
    assert s.dest.read_bytes() == b"old" and leftovers(tmp_path) == []


def refuse_unlink_of_stage_files(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    real = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.parent == directory and self.name.startswith("."):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        real(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)


async def test_stage_file_that_cannot_be_removed_is_no_failure_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written, unstaged = spec(tmp_path, "written"), spec(tmp_path, "unstaged")
    unchecked = spec(tmp_path, "unchecked", check_cmd="false")
    refuse_rename_onto(monkeypatch, written.dest, errno.EBUSY)  # written in place, then unlinked
    refuse_unlink_of_stage_files(monkeypatch, tmp_path)
    ok, refused = await apply([(written, b"x"), (unchecked, b"z")], SyncOptions())
    assert ok.error is None and written.dest.read_bytes() == b"x"
    assert isinstance(refused.error, CommandFailed)

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", fsync)
    [failed] = await apply([(unstaged, b"y")], SyncOptions())
    assert str(failed.error) == f"cannot stage {unstaged.dest}: {os.strerror(errno.EIO)}"
    assert len(leftovers(tmp_path)) == 3  # strays, but each resource got its own outcome


async def test_dest_directory_is_fsynced_where_the_filesystem_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.fsync
    synced: list[int] = []

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        if not stat.S_ISDIR(st.st_mode):
            return real(fd)
        synced.append(st.st_ino)
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))  # as some filesystems answer

    monkeypatch.setattr(os, "fsync", fsync)
    new, gone = spec(tmp_path, "new"), spec(tmp_path, "gone", reload_cmd="exit 1")
    [created, rolled] = await apply([(new, b"x"), (gone, b"y")], SyncOptions())
    assert created.error is None and new.dest.read_bytes() == b"x"
    assert rolled.rolled_back and not gone.dest.exists()
    assert synced == [tmp_path.stat().st_ino] * 3  # after each rename, and the rollback's unlink


async def test_owner_that_cannot_be_set_is_compared_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fchown(fd: int, uid: int, gid: int) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "fchown", fchown)
    s = spec(tmp_path, uid=os.geteuid() + 1, gid=os.getegid() + 1, mode=0o644)
    s.dest.write_bytes(b"same")
    os.chmod(s.dest, 0o644)
    [result] = await apply([(s, b"same")], SyncOptions())
    assert result.error is None and not result.changed  # what we got is what dest has
    assert "resource.chown.failed" in caplog.text


async def test_failed_rollback_is_not_reloaded_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "reloads"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # The reload fails, and takes b's directory with it: a's file can be put back, b's cannot.
    reload_cmd = f"echo r >> {log}; rm -rf {tmp_path}/b; exit 1"
    a = spec(tmp_path / "a", "a", reload_cmd=reload_cmd)
    b = spec(tmp_path / "b", "b", reload_cmd=reload_cmd)
    a.dest.write_bytes(b"old a\n")
    b.dest.write_bytes(b"old b\n")
    ra, rb = await apply([(a, b"new a\n"), (b, b"new b\n")], SyncOptions())
    assert log.read_text() == "r\n"  # never run again over a half-restored set
    assert a.dest.read_bytes() == b"old a\n"
    assert isinstance(ra.error, CommandFailed) and ra.rolled_back
    assert str(ra.error).startswith(f"reload {reload_cmd!r} exited with status 1")
    assert isinstance(rb.error, ResourceError) and not rb.rolled_back and not rb.reloaded
    assert str(rb.error).startswith(str(ra.error) + f"; then restoring {b.dest} failed: cannot stage")
    assert isinstance(rb.error.__cause__, ResourceError)
    assert "command.reload.failed resource=a,b" in caplog.text
    assert "resource.rollback.incomplete resources=a,b" in caplog.text


async def test_new_file_that_cannot_be_removed_again_fails_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "reloads"
    s = spec(tmp_path)
    # The reload turns the new dest into a directory, so the rollback's unlink fails (EISDIR).
    reload_cmd = f"echo r >> {log}; rm {s.dest}; mkdir -p {s.dest}/sub; exit 1"
    s = spec(tmp_path, reload_cmd=reload_cmd)
    [result] = await apply([(s, b"new\n")], SyncOptions())
    assert isinstance(result.error, ResourceError) and not result.rolled_back
    assert f"cannot remove {s.dest}:" in str(result.error)
    assert log.read_text() == "r\n"


async def test_new_file_the_failed_reload_removed_needs_no_removing(tmp_path: Path) -> None:
    log = tmp_path / "reloads"
    s = spec(tmp_path, reload_cmd=f"echo r >> {log}; rm -f {{{{.dest}}}}; exit 1")
    [result] = await apply([(s, b"new\n")], SyncOptions())
    assert isinstance(result.error, CommandFailed) and result.rolled_back
    assert log.read_text() == "r\nr\n" and not s.dest.exists()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counting open files needs /proc")
async def test_swaps_and_rollbacks_leak_no_file_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    s = spec(tmp_path)
    busy = spec(tmp_path, "busy", reload_cmd="exit 1")
    busy.dest.write_bytes(b"0")
    refuse_rename_onto(monkeypatch, busy.dest, errno.EBUSY)
    await apply([(s, b"0"), (busy, b"1")], SyncOptions())  # warm up: the loop's own files
    before = open_fds()
    for n in range(1, 6):
        await apply([(s, str(n).encode()), (busy, str(n).encode())], SyncOptions())
    assert open_fds() == before
    assert s.dest.read_bytes() == b"5" and busy.dest.read_bytes() == b"0"
