"""check/reload commands: path substitution, exit status, output, and timeouts that kill the group."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from muster.errors import CommandFailed
from muster.resources.commands import expand, run_command


def test_expand_quotes_only_when_needed() -> None:
    assert expand("nginx -t -c {{.src}}", src="/etc/nginx/.x123", dest="/d") == "nginx -t -c /etc/nginx/.x123"
    assert expand("cp {{ .src }} {{.dest}}", src="/a b/c", dest="/d;rm") == "cp '/a b/c' '/d;rm'"
    assert expand("{{- .dest -}}", src="", dest="/it's") == "'/it'\"'\"'s'"
    assert expand("{{.other}}", src="/a", dest="/b") == "{{.other}}"


async def test_success_captures_output() -> None:
    result = await run_command("echo out; echo err >&2", timeout=5, what="check")
    assert result.returncode == 0
    assert result.output == "out\nerr\n"


async def test_failure_carries_status_and_output() -> None:
    with pytest.raises(CommandFailed) as info:
        await run_command("echo 'bad config line 3'; exit 3", timeout=5, what="check")
    assert info.value.returncode == 3
    assert "bad config line 3" in info.value.output
    assert str(info.value).startswith("check ") and "exited with status 3" in str(info.value)


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(CommandFailed) as info:
        # The shell starts a grandchild that would outlive a plain kill of the shell.
        await run_command(f"sleep 30 & echo $! > {pidfile}; wait", timeout=0.3, what="reload")
    assert time.monotonic() - started < 5
    assert info.value.returncode is None
    assert "timed out" in str(info.value)
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.02)
    assert not _alive(child), "the grandchild survived the timeout"


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for init to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def test_background_child_holding_stdout_does_not_block() -> None:
    started = time.monotonic()
    result = await run_command("(sleep 3 &) ; echo done", timeout=10, what="reload")
    assert result.output.startswith("done")
    assert time.monotonic() - started < 2


async def test_a_command_cancelled_again_while_being_killed_is_killed_and_reaped(
    tmp_path: Path,
) -> None:
    shell_pid, termed = tmp_path / "sh.pid", tmp_path / "termed"
    # The shell survives SIGTERM (its trap notes it), so killing it takes the whole grace.
    cmd = f"trap 'echo > {termed}' TERM; echo $$ > {shell_pid}; while :; do sleep 0.05; done"
    task = asyncio.create_task(run_command(cmd, timeout=60, what="reload"))
    try:
        await wait_for_file(shell_pid)
        task.cancel()  # the daemon stops: the command gets SIGTERM and a grace period
        await wait_for_file(termed)
        task.cancel()  # stopped again (a second signal) within that grace
        with pytest.raises(asyncio.CancelledError):
            await task
        shell = int(shell_pid.read_text())
        # Not running, and not a zombie either: killed and reaped, so no transport is left
        # open for the garbage collector to warn about in some later test.
        assert not Path(f"/proc/{shell}").exists()
    finally:
        if shell_pid.exists() and _alive(int(shell_pid.read_text())):
            os.killpg(int(shell_pid.read_text()), signal.SIGKILL)


async def wait_for_file(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"no {path}"
        await asyncio.sleep(0.01)
