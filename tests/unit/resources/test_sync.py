"""The stage -> compare -> check -> swap -> reload -> rollback pipeline, on real files."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest

from muster.errors import CommandFailed
from muster.resources.spec import ResourceSpec
from muster.resources.sync import FileState, Staged, SyncOptions, apply, diff_summary, stage


def spec(tmp_path: Path, name: str = "app", **kw: object) -> ResourceSpec:
    fields: dict[str, object] = {
        "name": name,
        "src": tmp_path / "t.tmpl",
        "dest": tmp_path / f"{name}.conf",
        "keys": ("/",),
    }
    fields.update(kw)
    return ResourceSpec(**fields)  # type: ignore[arg-type]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


async def test_new_file_is_written_with_default_mode(tmp_path: Path) -> None:
    s = spec(tmp_path)
    [result] = await apply([(s, b"hello\n")], SyncOptions())
    assert result.error is None and result.changed and result.reasons == ("missing",)
    assert s.dest.read_bytes() == b"hello\n"
    assert stat.S_IMODE(s.dest.stat().st_mode) == 0o644
    assert leftovers(tmp_path) == []


async def test_unchanged_file_is_not_touched(tmp_path: Path) -> None:
    s = spec(tmp_path, reload_cmd=f"echo r >> {tmp_path}/reloads")
    await apply([(s, b"same")], SyncOptions())
    inode = s.dest.stat().st_ino
    [result] = await apply([(s, b"same")], SyncOptions())
    assert not result.changed and result.error is None
    assert s.dest.stat().st_ino == inode
    assert (tmp_path / "reloads").read_text() == "r\n"
    assert leftovers(tmp_path) == []


async def test_unchanged_output_stages_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A daemon applies a batch per change, and most leave a file as it is: staging it
    # anyway cost a create, an fsync and an unlink per resource per change.
    s = spec(tmp_path, mode=0o640)
    await apply([(s, b"same")], SyncOptions())
    staged: list[str] = []
    real = tempfile.mkstemp

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real(*args, **kwargs)
        staged.append(name)
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    [result] = await apply([(s, b"same")], SyncOptions())
    assert not result.changed and result.error is None and staged == []
    # A different mode, or different content, is still staged and swapped in.
    [result] = await apply([(dataclasses.replace(s, mode=0o644), b"same")], SyncOptions())
    assert result.changed and result.reasons == ("mode 0640->0644",) and len(staged) == 1
    [result] = await apply([(s, b"new")], SyncOptions())
    assert result.changed and s.dest.read_bytes() == b"new" and len(staged) == 2
    assert stat.S_IMODE(s.dest.stat().st_mode) == 0o640


async def test_existing_mode_is_kept_and_explicit_mode_wins(tmp_path: Path) -> None:
    s = spec(tmp_path)
    s.dest.write_bytes(b"old")
    os.chmod(s.dest, 0o600)
    await apply([(s, b"new")], SyncOptions())
    assert stat.S_IMODE(s.dest.stat().st_mode) == 0o600
    s2 = spec(tmp_path, mode=0o640)
    [result] = await apply([(s2, b"new")], SyncOptions())
    assert result.changed and result.reasons == ("mode 0600->0640",)
    assert stat.S_IMODE(s.dest.stat().st_mode) == 0o640


async def test_check_runs_on_the_staged_file_and_failure_keeps_dest(tmp_path: Path) -> None:
    s = spec(
        tmp_path,
        check_cmd=f"cp {{{{.src}}}} {tmp_path}/checked; grep -q good {{{{.src}}}}",
        reload_cmd=f"touch {tmp_path}/reloaded",
    )
    s.dest.write_bytes(b"good old\n")
    [result] = await apply([(s, b"bad new\n")], SyncOptions())
    assert isinstance(result.error, CommandFailed) and result.error.returncode == 1
    assert not result.changed
    assert (tmp_path / "checked").read_bytes() == b"bad new\n"  # the check saw the new content
    assert s.dest.read_bytes() == b"good old\n"
    assert not (tmp_path / "reloaded").exists()
    assert leftovers(tmp_path) == []


async def test_keep_stage_file_keeps_the_failed_stage(tmp_path: Path) -> None:
    s = spec(tmp_path, check_cmd="false")
    await apply([(s, b"x")], SyncOptions(keep_stage_file=True))
    [kept] = leftovers(tmp_path)
    assert kept.startswith(".app.conf")
    assert (tmp_path / kept).read_bytes() == b"x"


async def test_failing_reload_rolls_back_and_reloads_again(tmp_path: Path) -> None:
    log = tmp_path / "reloads"
    # Fails while dest holds "bad", succeeds otherwise: like nginx refusing a config at runtime.
    reload_cmd = f"echo $(cat {{{{.dest}}}}) >> {log}; ! grep -q bad {{{{.dest}}}}"
    s = spec(tmp_path, reload_cmd=reload_cmd, mode=0o600)
    s.dest.write_bytes(b"good\n")
    os.chmod(s.dest, 0o640)
    [result] = await apply([(s, b"bad\n")], SyncOptions())
    assert isinstance(result.error, CommandFailed)
    assert result.rolled_back and result.changed
    assert s.dest.read_bytes() == b"good\n"
    assert stat.S_IMODE(s.dest.stat().st_mode) == 0o640
    assert log.read_text() == "bad\ngood\n"  # the failed reload, then the reload of the old file
    assert leftovers(tmp_path) == []


async def test_rollback_of_a_new_file_removes_it(tmp_path: Path) -> None:
    s = spec(tmp_path, reload_cmd="exit 1")
    [result] = await apply([(s, b"x")], SyncOptions())
    assert result.rolled_back
    assert not s.dest.exists()


async def test_hanging_reload_times_out_and_rolls_back(tmp_path: Path) -> None:
    s = spec(tmp_path, reload_cmd="grep -q new {{.dest}} && sleep 30 || true", reload_timeout=0.3)
    s.dest.write_bytes(b"old\n")
    [result] = await apply([(s, b"new\n")], SyncOptions())
    assert isinstance(result.error, CommandFailed) and result.error.returncode is None
    assert result.rolled_back
    assert s.dest.read_bytes() == b"old\n"


async def test_shared_reload_cmd_runs_once_per_batch(tmp_path: Path) -> None:
    log = tmp_path / "reloads"
    a = spec(tmp_path, "a", reload_cmd=f"echo r >> {log}")
    b = spec(tmp_path, "b", reload_cmd=f"echo r >> {log}")
    c = spec(tmp_path, "c", reload_cmd=f"echo other >> {log}")
    results = await apply([(a, b"1"), (b, b"2"), (c, b"3")], SyncOptions())
    assert all(r.reloaded for r in results)
    assert sorted(log.read_text().split()) == ["other", "r"]


async def test_unchanged_resource_does_not_trigger_the_shared_reload(tmp_path: Path) -> None:
    log = tmp_path / "reloads"
    a = spec(tmp_path, "a", reload_cmd=f"echo r >> {log}")
    await apply([(a, b"1")], SyncOptions())
    await apply([(a, b"1")], SyncOptions())
    assert log.read_text() == "r\n"


async def test_same_command_never_runs_twice_at_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    cmd = f"echo start >> {log}; sleep 0.2; echo end >> {log}"
    opts = SyncOptions()
    await asyncio.gather(
        apply([(spec(tmp_path, "a", reload_cmd=cmd), b"1")], opts),
        apply([(spec(tmp_path, "b", reload_cmd=cmd), b"2")], opts),
    )
    assert log.read_text().split() == ["start", "end", "start", "end"]


async def test_noop_prints_a_diff_and_touches_nothing(tmp_path: Path) -> None:
    s = spec(tmp_path, check_cmd=f"touch {tmp_path}/checked", reload_cmd=f"touch {tmp_path}/reloaded")
    s.dest.write_bytes(b"a\nb\n")
    out = io.StringIO()
    [result] = await apply([(s, b"a\nc\n")], SyncOptions(noop=True, diff_out=out))
    assert result.changed and result.error is None
    assert s.dest.read_bytes() == b"a\nb\n"
    assert "-b\n+c\n" in out.getvalue()
    assert f"--- {s.dest}\n" in out.getvalue()
    assert not (tmp_path / "checked").exists() and not (tmp_path / "reloaded").exists()
    assert leftovers(tmp_path) == []


async def test_sync_only_writes_without_commands(tmp_path: Path) -> None:
    s = spec(tmp_path, check_cmd="false", reload_cmd=f"touch {tmp_path}/reloaded")
    [result] = await apply([(s, b"x")], SyncOptions(sync_only=True))
    assert result.error is None and result.changed
    assert s.dest.read_bytes() == b"x"
    assert not (tmp_path / "reloaded").exists()


async def test_missing_dest_directory_is_a_resource_error(tmp_path: Path) -> None:
    s = spec(tmp_path, dest=tmp_path / "nope" / "x.conf")
    [result] = await apply([(s, b"x")], SyncOptions())
    assert result.error is not None and "does not exist" in str(result.error)


async def test_one_failure_does_not_stop_the_others(tmp_path: Path) -> None:
    bad = spec(tmp_path, "bad", check_cmd="false")
    good = spec(tmp_path, "good")
    results = await apply([(bad, b"x"), (good, b"y")], SyncOptions())
    assert [r.error is None for r in results] == [False, True]
    assert good.dest.read_bytes() == b"y" and not bad.dest.exists()


def test_stage_compares_content_mode_and_owner(tmp_path: Path) -> None:
    s = spec(tmp_path)
    s.dest.write_bytes(b"x")
    os.chmod(s.dest, 0o644)
    staged = stage(s, b"x")
    assert not staged.changed and staged.path is None
    staged = stage(spec(tmp_path, uid=os.geteuid(), gid=os.getegid(), mode=0o644), b"x")
    assert not staged.changed


@pytest.mark.parametrize(
    ("old", "new", "summary"),
    [
        (b"a\nb\nc\n", b"a\nB\nc\n", "+1 -1 lines at line 2"),
        (b"a\nb\nc\n", b"a\nb\nx\nc\n", "+1 -0 lines at line 3"),
        (None, b"a\nb\n", "+2 -0 lines at line 1"),
        (b"a\nb\n", b"", "+0 -2 lines at line 1"),
        (b"a\nb", b"a\nc", "+1 -1 lines at line 2"),
        (b"a\na\na\n", b"a\na\na\na\n", "+1 -0 lines at line 4"),
        (b"s 1;\ns 2;\n", b"s 1;\ns 12;\ns 2;\n", "+1 -0 lines at line 2"),
        (b"a\nb\n", b"a\nb", "+1 -1 lines at line 2"),
        (b"a\nb\nc\n", b"a\nc\n", "+0 -1 lines at line 2"),
        (b"\nabc\n", b"\nabd\n", "+1 -1 lines at line 2"),
        (b"a\nx", b"a\nwx", "+1 -1 lines at line 2"),
        (b"\nx\n", b"y\nx\n", "+1 -1 lines at line 1"),
        (b"same\n", b"same\n", "+0 -0 lines"),
    ],
)
def test_diff_summary(tmp_path: Path, old: bytes | None, new: bytes, summary: str) -> None:
    staged = Staged(spec(tmp_path), None, new, FileState(old), ("content",))
    assert diff_summary(staged) == summary


async def test_cancel_during_check_leaves_no_stage_file_and_no_process(tmp_path: Path) -> None:
    s = spec(tmp_path, check_cmd="sleep 30")
    s.dest.write_bytes(b"old")
    task = asyncio.create_task(apply([(s, b"new")], SyncOptions()))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert s.dest.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


async def test_dest_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    as_dir = spec(tmp_path, "d")
    as_dir.dest.mkdir()
    as_device = spec(tmp_path, "n")
    as_device.dest.symlink_to("/dev/null")
    under_file = spec(tmp_path, "u", dest=tmp_path / "plain" / "x.conf")
    (tmp_path / "plain").write_text("a file, not a directory")
    results = await apply([(as_dir, b"x"), (as_device, b"x"), (under_file, b"x")], SyncOptions())
    messages = [str(r.error) for r in results]
    assert "is a directory" in messages[0]
    assert "is not a regular file" in messages[1]
    assert "Not a directory" in messages[2]
    assert as_device.dest.is_symlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
async def test_owner_change_is_a_change(tmp_path: Path) -> None:
    s = spec(tmp_path)
    s.dest.write_bytes(b"x")
    os.chmod(s.dest, 0o644)
    [result] = await apply([(spec(tmp_path, uid=4321, gid=4321), b"x")], SyncOptions())
    assert result.reasons == ("uid 0->4321", "gid 0->4321")
    assert (s.dest.stat().st_uid, s.dest.stat().st_gid) == (4321, 4321)


async def test_noop_reports_a_mode_only_change(tmp_path: Path) -> None:
    s = spec(tmp_path, mode=0o600)
    s.dest.write_bytes(b"same\n")
    os.chmod(s.dest, 0o644)
    out = io.StringIO()
    [result] = await apply([(s, b"same\n")], SyncOptions(noop=True, diff_out=out))
    assert result.changed and result.reasons == ("mode 0644->0600",)
    assert out.getvalue() == f"{s.dest}: mode 0644->0600\n"
    assert stat.S_IMODE(s.dest.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("old", "new", "hunk", "summary"),
    [
        (None, b"x\n", "@@ -0,0 +1 @@\n+x\n", "+1 -0 lines at line 1"),
        (b"a\n", b"a\nb", "@@ -1 +1,2 @@\n a\n+b\n\\ No newline at end of file\n", "+1 -0 lines at line 2"),
        (b"\xff\n", b"\xfe\xff\n", "@@ -1 +1 @@\n-\ufffd\n+\ufffd\ufffd\n", "+1 -1 lines at line 1"),
    ],
)
async def test_noop_diff_of_a_new_an_unterminated_and_a_binary_file(
    tmp_path: Path, old: bytes | None, new: bytes, hunk: str, summary: str
) -> None:
    s = spec(tmp_path)
    if old is not None:
        s.dest.write_bytes(old)
    out = io.StringIO()
    [result] = await apply([(s, new)], SyncOptions(noop=True, diff_out=out))
    assert out.getvalue() == f"--- {s.dest}\n+++ {s.dest} (new)\n{hunk}"
    assert result.changed and result.diff == summary


@pytest.mark.parametrize(("content", "noop"), [(b"same", False), (b"new", True)])
async def test_keep_stage_file_keeps_an_unchanged_or_noop_stage_too(
    tmp_path: Path, content: bytes, noop: bool
) -> None:
    s = spec(tmp_path, mode=0o644)
    s.dest.write_bytes(b"same")
    os.chmod(s.dest, 0o644)
    [result] = await apply(
        [(s, content)], SyncOptions(keep_stage_file=True, noop=noop, diff_out=io.StringIO())
    )
    assert result.changed == noop
    [kept] = leftovers(tmp_path)
    assert (tmp_path / kept).read_bytes() == content
    assert s.dest.read_bytes() == b"same"


@pytest.mark.parametrize("noop", [False, True])
async def test_an_unchanged_or_noop_resource_does_not_end_the_batch(
    tmp_path: Path, noop: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="muster.resources.sync")
    first, second = spec(tmp_path, "first"), spec(tmp_path, "second")
    await apply([(first, b"same")], SyncOptions())
    results = await apply(
        [(first, b"same"), (second, b"new"), (spec(tmp_path, "third"), b"new")],
        SyncOptions(noop=noop, diff_out=io.StringIO()),
    )
    assert [r.changed for r in results] == [False, True, True]
    assert second.dest.exists() != noop
    assert "resource.sync.unchanged resource=first" in caplog.text


async def test_check_timeout_defaults_to_the_batch_option(tmp_path: Path) -> None:
    s = spec(tmp_path, check_cmd="sleep 30")
    [result] = await apply([(s, b"x")], SyncOptions(check_timeout=0.2))
    assert isinstance(result.error, CommandFailed) and result.error.returncode is None
    assert str(result.error).startswith("check 'sleep 30'")
    assert not s.dest.exists()


async def test_src_in_reload_cmd_is_the_swapped_dest(tmp_path: Path) -> None:
    s = spec(tmp_path, reload_cmd=f"cp {{{{.src}}}} {tmp_path}/seen")
    [result] = await apply([(s, b"new")], SyncOptions())
    assert result.reloaded
    assert (tmp_path / "seen").read_bytes() == b"new"


async def test_at_debug_the_whole_diff_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="muster.resources.sync")
    s = spec(tmp_path)
    s.dest.write_bytes(b"a\nb\n")
    [result] = await apply([(s, b"a\nc\n")], SyncOptions())
    assert result.diff == "+1 -1 lines at line 2"
    [logged] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resource.diff")]
    assert "-b" in logged and "+c" in logged


async def test_noop_output_is_flushed_per_resource(tmp_path: Path) -> None:
    class Recording(io.StringIO):
        flushed: list[str] = []

        def flush(self) -> None:
            self.flushed.append(self.getvalue())

    out = Recording()
    await apply(
        [(spec(tmp_path, "a"), b"1\n"), (spec(tmp_path, "b"), b"2\n")], SyncOptions(noop=True, diff_out=out)
    )
    assert [text.count("+++") for text in out.flushed] == [1, 2]


async def test_results_cannot_be_changed_after_the_fact(tmp_path: Path) -> None:
    [result] = await apply([(spec(tmp_path), b"x")], SyncOptions())
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.changed = False  # type: ignore[misc]
