"""``muster up``: etcd, nginx, the muster daemon and demo servers on loopback, in one command.

Theory of operation. The processes start in dependency order (etcd, then nginx, then
``muster confd -watch`` with the stock template resource), each driver returning only once
its process answers; then the demo servers start and register through muster's own
registration agent. While running, one task prints every change under ``/services`` (read
through muster's backend, as the daemon reads it) and another notices a process that died:
nginx's master is started again (its orphaned workers killed first; at most ``RESTARTS``
times in ``RESTART_WINDOW`` seconds, so a crash loop does not spin), and any other process
that dies stops the stack. SIGINT, SIGTERM or SIGHUP (the terminal closed) ends it in
reverse order: deregister the demo servers first (so nginx stops sending them traffic),
then stop the daemon, nginx and etcd, each by its own pid. Nothing is left running, even
when startup fails half way. The signals stay captured until everything has stopped, and no
print can raise: once stdout is gone (a terminal hung up, or the reader of a pipe left, as
in ``muster up | head -3``), the lines are dropped and the stack stops, as a program killed
by SIGPIPE would have stopped, but without leaving its processes behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import select
import signal
import stat
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import click

from muster.backends import BackendOptions, create
from muster.dataplane.mode import DataPlaneMode
from muster.errors import BackendError, ConfigError, Error
from muster.log import configure, kv
from muster.registration import registration
from muster.registry.index import DEFAULT_ROOT, index_services
from muster.signals import capture_signals
from muster.stack.demo import DemoServer
from muster.stack.etcd import etcd_available
from muster.stack.local import Stack, UpOptions, leftover_processes, stop_processes
from muster.stack.nginx import nginx_available
from muster.stack.redis import redis_available
from muster.stack.zookeeper import zookeeper_available

__all__ = ["UP_STATUS_FILE", "run_up", "up"]

log = logging.getLogger(__name__)

SERVICE = "hello"
#: The file in the state directory that names the running stack's status URL (``muster status``).
UP_STATUS_FILE = "status-url"
DEMO_TTL = 10
#: nginx's master is restarted at most this many times in any RESTART_WINDOW seconds;
#: one more exit within the window stops the stack.
RESTARTS = 5
RESTART_WINDOW = 60.0


# -- the running stack --------------------------------------------------------------------------


async def _routed_ids(url: str, want: set[str], timeout: float) -> set[str]:
    """GET ``url`` until every ID in ``want`` has answered or ``timeout`` passes."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout

    def get() -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                return str(resp.read().decode().strip())
        except (OSError, ValueError):
            return None

    while not want <= seen and time.monotonic() < deadline:
        body = await asyncio.to_thread(get)
        if body is not None:
            seen.add(body)
        else:
            await asyncio.sleep(0.05)
    return seen


async def _watch_services(stack: Stack, say: Callable[[str], None]) -> None:
    """Print each service/server change under ``/services`` until cancelled."""

    backend = create(stack.opts.backend, BackendOptions(nodes=tuple(stack.nodes)))
    shown: dict[str, str] = {}
    revision: int | None = None
    try:
        while True:
            try:
                snapshot = await backend.get_values([DEFAULT_ROOT])
                revision = snapshot.revision
                _show_changes(snapshot.values, shown, say)
                revision = await backend.wait_changed([DEFAULT_ROOT], revision)
            except BackendError as exc:
                log.debug(kv("up.watch.retry", error=exc))
                await asyncio.sleep(1.0)
    finally:
        await backend.aclose()


def _show_changes(values: Mapping[str, str], shown: dict[str, str], say: Callable[[str], None]) -> None:
    """Print the servers that came, went or were left out since ``shown``; update it."""
    items = dict(values)
    root = DEFAULT_ROOT
    names = {k[len(root) + 1 :].split("/", 1)[0] for k in items if k.startswith(root + "/")}
    index = index_services(items.items(), names, root)
    now: dict[str, str] = {}
    for name, servers in index.services.items():
        for server in servers:
            now[server.Key] = f"+ {name}/{server.ID} -> {server.Addr}" + (
                f" weight={server.Weight}" if server.Weight != 1 else ""
            )
    for key, reason in index.rejected.items():
        now[key] = f"! {key.encode('unicode_escape').decode()} left out: {reason}"
    stamp = time.strftime("%H:%M:%S")
    for key in sorted(shown.keys() - now.keys()):
        if shown[key].startswith("+"):
            say(f"{stamp}  - {shown[key][2:].split(' -> ')[0]}")
    for key in sorted(now):
        if shown.get(key) != now[key]:
            say(f"{stamp}  {now[key]}")
    shown.clear()
    shown.update(now)


class _Output:
    """Where ``muster up`` prints: stdout (or ``say``) until it is gone, then nowhere.

    Python ignores SIGPIPE, so a write to a pipe whose reader left (``muster up | head -3``;
    ``| tee log`` ended by the same Ctrl-C) raises ``BrokenPipeError``, and one to a closed
    terminal ``OSError(EIO)``. No such error may escape into the shutdown path and skip the
    stop: the first calls ``gone`` with the reason, and every later line is dropped. A
    descriptor found in error by ``check()`` counts as gone too, so a reader that left is
    noticed before the next line. stdout's descriptor is then pointed at /dev/null, so the
    interpreter's final flush of what it still buffers cannot fail either.
    """

    def __init__(self, gone: Callable[[str], None], say: Callable[[str], None] | None = None) -> None:
        self._gone = gone
        self._say = say or click.echo
        self._fd = _stdout_fd() if say is None else None
        self.closed = False

    def __call__(self, line: str) -> None:
        if not self.closed:
            try:
                self._say(line)
            except OSError as exc:
                self._close(exc.strerror or str(exc))

    def check(self) -> None:
        """Count stdout as gone if its descriptor is in error (a pipe with no reader left)
        or hung up (a closed terminal), as the next write would find."""
        if self.closed or self._fd is None:
            return
        poller = select.poll()
        poller.register(self._fd, 0)  # POLLERR and POLLHUP are always reported
        if any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0)):
            self._close("its reader left" if stat.S_ISFIFO(os.fstat(self._fd).st_mode) else "hung up")

    def _close(self, reason: str) -> None:
        self.closed = True
        if self._fd is not None:
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._fd)
                os.close(devnull)
        self._gone(reason)


def _stdout_fd() -> int | None:
    try:
        return sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # None (started with fd 1 closed), or no fd
        return None


@contextlib.contextmanager
def _sigpipe_ignored() -> Iterator[None]:
    """SIGPIPE ignored while the stack runs, as Python sets it at startup: an embedding
    program that restored the default action would have the first write to a pipe with no
    reader kill ``muster up`` at once, its processes left running."""
    try:
        previous = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    except ValueError:  # not the main thread: signal dispositions cannot be changed here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGPIPE, previous)


class _RestartBudget:
    """At most ``limit`` restarts in any ``window`` seconds, by ``clock``."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._times: deque[float] = deque()

    def take(self) -> bool:
        """Count a restart and return True, or False if ``limit`` were counted in the window."""
        now = self._clock()
        while self._times and now - self._times[0] >= self.window:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True


async def _supervise(stack: Stack, out: _Output, budget: _RestartBudget) -> str:
    """Restart nginx whenever its master exits, within ``budget``; return the line that
    says why the stack must stop (a process died, or nginx could not be kept up). Runs
    until cancelled otherwise. Also notices, every half second, a stdout that is gone
    (``out`` then stops the stack)."""
    while True:
        how = stack.nginx_exit()
        if how is not None:
            assert stack.nginx is not None
            where = f"log: {stack.nginx.log_path}"
            if not budget.take():
                return (
                    f"nginx exited ({how}) again, after {budget.limit} restarts within "
                    f"{budget.window:g} s ({where}); stopping everything"
                )
            try:
                restarted = await asyncio.to_thread(stack.restart_nginx)
            except (Error, OSError) as exc:
                return f"nginx exited ({how}) and did not start again: {exc}\nstopping everything"
            if restarted:
                out(f"{time.strftime('%H:%M:%S')}  nginx exited ({how}); restarted")
            continue
        dead = stack.dead()
        if dead is not None:
            return f"{dead} exited unexpectedly; stopping everything"
        out.check()
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def _demo_servers(stack: Stack, count: int) -> AsyncIterator[list[DemoServer]]:
    """Start ``count`` demo servers and register each; deregister and stop them on exit."""

    async with contextlib.AsyncExitStack() as exits:
        servers: list[DemoServer] = []
        for i in range(1, count + 1):
            server = await exits.enter_async_context(DemoServer(f"{SERVICE}-{i}"))
            servers.append(server)
        regs = []
        for server in servers:
            reg = registration(
                SERVICE,
                server.host,
                server.port,
                server_id=server.server_id,
                ttl=DEMO_TTL,
                backend=stack.opts.backend,
                nodes=stack.nodes,
            )
            regs.append(await exits.enter_async_context(reg))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(15.0):
                for reg in regs:
                    await reg.wait_registered()
        yield servers
        # Leaving the stack revokes each registration before its server stops.


def _banner(stack: Stack, servers: list[DemoServer], seen: set[str], say: Callable[[str], None]) -> None:
    assert stack.nginx is not None
    url = stack.nginx.url
    etcd = stack.nodes[0]
    store = "redis" if stack.redis is not None else "zookeeper" if stack.zookeeper is not None else "etcd"
    say("")
    say(f"muster is up: nginx on {url}, {store} on {', '.join(stack.nodes)} ({stack.opts.backend})")
    if servers:
        state = "all routed" if len(seen) >= len(servers) else f"{len(seen)} of {len(servers)} routed so far"
        plural = "s, round robin" if len(servers) > 1 else ""
        say(f"  curl {url}/{SERVICE}/            # {len(servers)} demo server{plural} ({state})")
    say("  register your own server (kept while the command runs):")
    say(
        f"    muster register --service api --host 127.0.0.1 --port 9000 --node {etcd}"
        + (f" --backend {stack.opts.backend}" if stack.opts.backend != "etcdv3" else "")
    )
    if stack.opts.backend == "etcd":
        say("  or as in the seed post, with curl and a TTL:")
        say(
            f"    curl {etcd}/v2/keys/services/api/servers/$(hostname -s) "
            '-d value=\'{"host":"127.0.0.1","port":9000}\' -d ttl=60 -X PUT'
        )
    elif stack.redis is not None:
        value = json.dumps({"host": "127.0.0.1", "port": 9000})
        say(f"  or by hand:  redis-cli -p {stack.redis.port} SET /services/api/servers/one '{value}'")
    elif stack.zookeeper is not None:
        pass  # zkCli.sh makes no parent znodes: `muster register` above is the way
    else:
        value = json.dumps({"host": "127.0.0.1", "port": 9000})
        say(f"  or by hand:  etcdctl --endpoints {etcd} put /services/api/servers/one '{value}'")
    say(f"  state and logs: {stack.state}   rendered config: {stack.dest}")
    if stack.daemon is not None and stack.daemon.status_url:
        say(f"  dashboard: {stack.daemon.status_url}/   or in a terminal: muster status [--watch]")
        say(f"  muster's own state: curl {stack.daemon.status_url}/status   (/readyz, /metrics)")
    say("Ctrl-C stops everything. Changes under /services:")


async def run_up(opts: UpOptions, say: Callable[[str], None] | None = None) -> int:
    """Run the stack until SIGINT, SIGTERM or SIGHUP, a process dies or stdout is gone;
    return the exit status. ``say`` prints a line (default: to stdout, watched for a reader
    that leaves)."""
    if opts.backend == "redis":
        if not redis_available():
            raise ConfigError("redis-server is not installed: run scripts/install-deps")
    elif opts.backend == "zookeeper":
        if not zookeeper_available():
            raise ConfigError("zookeeper (and java) is not installed: run scripts/install-deps")
    elif not etcd_available():
        raise ConfigError("etcd is not installed (/usr/bin/etcd): run scripts/install-deps")
    if not nginx_available():
        raise ConfigError("nginx is not installed (/usr/sbin/nginx): run scripts/install-deps")
    stack = Stack(opts)
    stop = asyncio.Event()

    def output_gone(reason: str) -> None:
        if not stop.is_set():
            log.warning(kv("up.stdout.gone", reason=reason, action="stopping everything"))
            stop.set()

    out = _Output(output_gone, say)
    # SIGHUP stops the stack as SIGINT does, unless it was ignored from the start: under
    # nohup, the user asked for the stack to outlive the terminal.
    hangup = stop.set if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN else _ignore
    # Captured until everything has stopped: a second signal must not kill this process
    # half way through stopping the others.
    handlers = {sig: lambda _sig: stop.set() for sig in (signal.SIGINT, signal.SIGTERM)}
    with capture_signals({**handlers, signal.SIGHUP: lambda _sig: hangup()}), _sigpipe_ignored():
        lock = _take_lock(stack.state, out)
        try:
            return await _run(stack, stop, out)
        finally:
            out("stopping muster, nginx and etcd...")
            (stack.state / UP_STATUS_FILE).unlink(missing_ok=True)
            await asyncio.to_thread(stack.stop)
            lock.release()
            out("stopped.")


def _ignore() -> None:
    pass


async def _run(stack: Stack, stop: asyncio.Event, out: _Output) -> int:
    """Start the stack and the demo servers, wait for ``stop`` or a dead process; the
    caller stops the stack's processes."""
    opts = stack.opts
    members = f"{opts.etcd_nodes} member" + ("s" if opts.etcd_nodes > 1 else "")
    store = {"redis": "redis-server", "zookeeper": "zookeeper"}.get(opts.backend, f"etcd ({members})")
    out(f"starting {store}, nginx and muster...")
    # Startup runs in a thread and cannot be interrupted half way: a signal meanwhile
    # only sets ``stop``, and we stop everything once it returns.
    await asyncio.to_thread(stack.start)
    if stop.is_set():
        return 130
    for note in stack.notes:
        out(note)
    assert stack.nginx is not None
    status = 0
    async with _demo_servers(stack, opts.demo) as servers:
        seen = await _routed_ids(f"{stack.nginx.url}/{SERVICE}/", {s.server_id for s in servers}, 10.0)
        _banner(stack, servers, seen, out)
        if stack.daemon is not None and stack.daemon.status_url:
            # ``muster status`` run here finds this stack's status server by this file.
            (stack.state / UP_STATUS_FILE).write_text(stack.daemon.status_url + "\n")
        async with asyncio.TaskGroup() as tg:
            watcher = tg.create_task(_watch_services(stack, out))
            budget = _RestartBudget(RESTARTS, RESTART_WINDOW)
            supervisor = tg.create_task(_supervise(stack, out, budget))
            stopper = tg.create_task(stop.wait())
            await asyncio.wait([supervisor, stopper], return_when=asyncio.FIRST_COMPLETED)
            if supervisor.done():
                out(supervisor.result())
                status = 1
            for task in (watcher, supervisor, stopper):
                task.cancel()
        out("stopping: deregistering the demo servers...")
    return status


class _StateLock:
    """An exclusive ``flock`` on ``STATE/muster-up.pid``, held while ``muster up`` runs.

    The kernel drops the lock when the process dies, however it dies, so a lock that can
    be taken means no ``muster up`` runs here now: unlike a pid in a file, it cannot be
    mistaken for a live run when the dead run's pid has been reused (pid_max may be
    32768). The file names the pid of the run holding it; a clean exit empties it, so a
    pid found on taking the lock means that run was killed.
    """

    def __init__(self, path: Path, fd: int, previous: int) -> None:
        self.path = path
        self.previous = previous
        self._fd = fd

    @classmethod
    def take(cls, path: Path) -> _StateLock:
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise ConfigError(
                        f"muster up (pid {_read_pid(fd) or '?'}) is already running with "
                        f"state directory {path.parent}"
                    ) from None
                try:
                    same = os.stat(path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:  # else we locked a file someone removed: lock the one there now
                    previous = _read_pid(fd)
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                    return cls(path, fd, previous)
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def release(self) -> None:
        """Mark a clean exit (an empty file) and unlock."""
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = -1


def _read_pid(fd: int) -> int:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0)
    except (OSError, ValueError):
        return 0


def _take_lock(state: Path, say: Callable[[str], None]) -> _StateLock:
    """Refuse to run twice on one state directory; after a killed run, first stop the
    processes it left behind (etcd, nginx, the daemon)."""
    state.mkdir(parents=True, exist_ok=True)
    lock = _StateLock.take(state / "muster-up.pid")
    try:
        # Only after a run that did not exit cleanly: a clean one left nothing, and a user's
        # own process naming a file in here (``tail -f`` of a log) is none of our business.
        left = leftover_processes(state) if lock.previous else []
        if left:
            names = ", ".join(sorted({_process_name(pid) for pid in left}))
            say(f"stopping what an earlier muster up (pid {lock.previous}) left running: {names}...")
            stop_processes(left)
    except BaseException:
        lock.release()
        raise
    return lock


def _process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            args = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return str(pid)
    if "confd" in args[1:4]:
        return "muster confd"
    # nginx rewrites its argv into one title ("nginx: master process /usr/sbin/nginx -p ..."),
    # so its first argument is no path: the kernel's name for the process is right for all.
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip() or str(pid)
    except OSError:
        return os.path.basename(args[0])


@click.command("up")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="nginx's port.")
@click.option("--etcd-port", type=click.IntRange(1, 65535), default=2379, show_default=True)
@click.option("--etcd-nodes", type=click.Choice(["1", "3"]), default="1", show_default=True)
@click.option("--backend", type=click.Choice(["etcdv3", "etcd", "redis", "zookeeper"]), default="etcdv3",
              show_default=True,
              help="etcd's v3 API, the seed post's v2 keys API, a redis-server or a ZooKeeper.")  # fmt: skip
@click.option(
    "--demo", type=click.IntRange(0, 50), default=3, show_default=True, help="Demo servers of 'hello'."
)
@click.option("--state-dir", type=click.Path(path_type=Path), default=Path(".muster"), show_default=True)
@click.option(
    "--dataplane",
    type=click.Choice([m.value for m in (DataPlaneMode.AUTO, DataPlaneMode.LUA, DataPlaneMode.RELOAD)]),
    default="auto",
    show_default=True,
    help="lua: server changes reach nginx with no reload; reload: render and reload; auto: lua if installed.",
)
@click.option("--log-level", default="warning", show_default=True, help="muster's own log level here.")
@click.pass_context
def up(
    ctx: click.Context,
    port: int,
    etcd_port: int,
    etcd_nodes: str,
    backend: str,
    demo: int,
    state_dir: Path,
    dataplane: str,
    log_level: str,
) -> None:
    """Run etcd, nginx, the muster daemon and demo servers locally until Ctrl-C.

    A default port that is taken (Debian's etcd-server package starts an etcd on 2379) is
    replaced by a free one; a port given on the command line must be free.
    """
    configure(log_level)
    default = click.core.ParameterSource.DEFAULT
    fallback = frozenset(
        flag for flag, name in (("--port", "port"), ("--etcd-port", "etcd_port"))
        if ctx.get_parameter_source(name) is default
    )  # fmt: skip
    opts = UpOptions(
        fallback_ports=fallback,
        port=port,
        etcd_port=etcd_port,
        etcd_nodes=int(etcd_nodes),
        backend=backend,
        demo=demo,
        state_dir=state_dir,
        dataplane=dataplane,
    )
    try:
        status = asyncio.run(run_up(opts))
    except Error as exc:
        with contextlib.suppress(OSError):  # stderr may be gone with the terminal
            click.echo(f"muster up: {exc}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(status)
