"""``muster up`` starts nginx again when its master exits, within a restart budget."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from muster.errors import Error
from muster.stack.local import Stack, UpOptions
from muster.stack.nginx import NginxProcess
from muster.stack.up import _Output, _RestartBudget, _supervise


class FakeNginx:
    """An nginx whose master exits ``exits`` more times: after each restart it exits again."""

    log_path = Path("/state/nginx/logs/error.log")

    def __init__(self, exits: int, how: str = "killed") -> None:
        self.exits = exits
        self.how = how
        self.restarts = 0

    def exit_reason(self) -> str | None:
        return self.how if self.exits > 0 else None


class FakeStack:
    def __init__(self, nginx: FakeNginx, fail: Exception | None = None) -> None:
        self.nginx = nginx
        self.fail = fail
        self.died: str | None = None

    def nginx_exit(self) -> str | None:
        return self.nginx.exit_reason()

    def restart_nginx(self) -> bool:
        if self.fail is not None:
            raise self.fail
        self.nginx.restarts += 1
        self.nginx.exits -= 1
        if self.nginx.exits == 0:
            self.died = "etcd m0 (log: x)"  # ends the test: the loop returns
        return True

    def dead(self) -> str | None:
        return self.died


def supervise(fake: FakeStack, budget: _RestartBudget) -> tuple[str, list[str]]:
    import asyncio

    lines: list[str] = []
    out = _Output(lambda reason: None, lines.append)
    result = asyncio.run(_supervise(cast(Stack, fake), out, budget))
    return result, [line.split("  ", 1)[1] for line in lines]  # drop the time stamp


def test_the_budget_allows_limit_restarts_in_any_window() -> None:
    now = [0.0]
    budget = _RestartBudget(5, 60.0, clock=lambda: now[0])
    for t in (0.0, 1.0, 2.0, 3.0, 4.0):
        now[0] = t
        assert budget.take()
    now[0] = 59.9
    assert not budget.take()  # a sixth within 60 s of the first
    now[0] = 60.0
    assert budget.take()  # the first left the window
    assert not budget.take()


def test_a_dead_master_is_restarted_and_said() -> None:
    fake = FakeStack(FakeNginx(exits=2))
    result, lines = supervise(fake, _RestartBudget(5, 60.0))
    assert fake.nginx.restarts == 2
    assert lines == ["nginx exited (killed); restarted"] * 2
    assert result == "etcd m0 (log: x) exited unexpectedly; stopping everything"


def test_a_crash_loop_stops_the_stack_after_the_budget() -> None:
    fake = FakeStack(FakeNginx(exits=100, how="signal SIGSEGV"))
    result, lines = supervise(fake, _RestartBudget(5, 60.0))
    assert fake.nginx.restarts == 5 and len(lines) == 5
    assert result == (
        "nginx exited (signal SIGSEGV) again, after 5 restarts within 60 s "
        "(log: /state/nginx/logs/error.log); stopping everything"
    )


def test_a_master_that_does_not_start_again_stops_the_stack() -> None:
    fake = FakeStack(FakeNginx(exits=1), fail=Error("nginx exited with 1:\nbind() failed"))
    result, lines = supervise(fake, _RestartBudget(5, 60.0))
    assert lines == []
    said = "nginx exited (killed) and did not start again: nginx exited with 1:\nbind() failed"
    assert result == said + "\nstopping everything"


class Popen:
    def __init__(self, returncode: int | None) -> None:
        self.returncode = returncode
        self.pid = 999_999_999  # no such process: kill_group finds nothing

    def poll(self) -> int | None:
        return self.returncode


@pytest.mark.parametrize(
    ("code", "how"),
    [(None, None), (-signal.SIGKILL, "killed"), (-signal.SIGSEGV, "signal SIGSEGV"), (1, "status 1")],
)
def test_exit_reason_names_how_the_master_ended(tmp_path: Path, code: int | None, how: str | None) -> None:
    nginx = NginxProcess(tmp_path, port=1, status_port=2)
    assert nginx.exit_reason() is None  # never started
    nginx._proc = cast(Any, Popen(code))
    assert nginx.exit_reason() == how
    if code is not None:
        nginx.stop()  # reaped by us: no longer an exit to act on
        assert nginx.exit_reason() is None


class RecordingNginx:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def stop(self) -> None:
        self.calls.append("stop")

    def start(self, timeout: float) -> None:
        self.entered.set()
        self.release.wait(5)
        self.calls.append("start")

    def wait_serving(self, timeout: float) -> None:
        self.calls.append("serving")


def test_restart_removes_the_stale_socket_and_no_restart_follows_a_stop(tmp_path: Path) -> None:
    stack = Stack(UpOptions(state_dir=tmp_path))
    nginx = RecordingNginx()
    stack.nginx = cast(NginxProcess, nginx)
    stack.admin_socket.parent.mkdir(parents=True)
    stack.admin_socket.write_text("")  # left by the killed master
    nginx.release.set()
    assert stack.restart_nginx()
    assert nginx.calls == ["stop", "start", "serving"] and not stack.admin_socket.exists()
    stack.stop()
    nginx.calls.clear()
    assert not stack.restart_nginx()
    assert nginx.calls == []


def test_a_stop_during_a_restart_waits_and_stops_the_new_master(tmp_path: Path) -> None:
    stack = Stack(UpOptions(state_dir=tmp_path))
    nginx = RecordingNginx()
    stack.nginx = cast(NginxProcess, nginx)
    restarting = threading.Thread(target=stack.restart_nginx)
    restarting.start()
    assert nginx.entered.wait(5)
    stopping = threading.Thread(target=stack.stop)
    stopping.start()
    stopping.join(0.2)
    assert stopping.is_alive()  # waits for the start under way
    nginx.release.set()
    restarting.join(5)
    stopping.join(5)
    assert nginx.calls == ["stop", "start", "serving", "stop"]
