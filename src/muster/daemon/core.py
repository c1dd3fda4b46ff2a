"""The ``Daemon``: keep every template resource in step with the backend (onetime, interval, watch).

Theory of operation (watch mode). Two tasks share one ``TaskGroup``:

* the **watcher** keeps ONE ``wait_changed`` open on the union of every resource's keys (confd
  opens one per resource). Each return marks the state dirty. It resumes from the last revision
  it saw, re-reads everything after a compaction, retries with capped backoff while the backend
  is down (and forces a full re-read once it is back), and every ``resync_interval`` of silence
  re-reads conf.d and everything, which also replaces a watch that may have died silently.
* the **processor** waits for dirty, takes one snapshot per distinct key set, renders every
  resource and applies the batch (``resources.sync.apply``: one reload per distinct command).
  A change is applied at once, even right after a batch: no added latency. Changes that
  arrive during a batch fold into the next one. The one delay is for reloads: a resource
  with a ``reload_cmd`` runs at most once per ``reload_interval`` (0.1 s); a change inside
  that interval is applied at once to every other resource and the data plane, while the
  reloading resources are *held* until the interval ends. If more changes arrive while
  held (a burst), the hold goes on until they pause for ``debounce_window``, or
  ``debounce_max`` after the first held change at the latest, so a burst of 200
  registrations costs two or three reloads, not two hundred.
  A batch in which a resource failed (its check, say) runs again after a backoff of 1 s,
  doubling up to 30 s while it keeps failing, so a transient failure heals by itself and
  a lasting one costs a render and a check twice a minute, never a reload storm.

With a backend that keeps a change log (``backends.changefeed``: the etcd mirrors), a sink
that can take changes (``apply_changes``) is given only the keys changed since its last
feed, so a change among 30,000 services costs the data plane what it touches. The watcher
also hands each change to the sinks at once (``_feed_sinks_early``), so a push never waits
for a batch that is still rendering files (a second or more with 30,000 services).

A third task follows the DNS names the templates resolved (``muster.registry.index``: nginx is
given their addresses, never the names): a name whose answer changes marks the state dirty.

Nothing polls while idle: both tasks block on the backend or an ``Event``. To stop, cancel
the mode's task; ``hangup()`` (SIGHUP, wired up by ``muster.daemon.main.run``) re-reads conf.d.
``clock``/``sleep`` are injectable so the debounce can be tested without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Literal, Protocol, TextIO, cast

from muster.backends.base import Backend
from muster.backends.changefeed import ChangeLog, Cursor
from muster.backoff import Backoff
from muster.config import Config, guard_settings
from muster.daemon.heap import SETTLE_AFTER_RENDER_MS
from muster.daemon.report import BatchReport, Failure
from muster.daemon.views import Read, View, follow, reread
from muster.dataplane.mode import DataPlaneMode
from muster.errors import (
    BackendError,
    ConfigError,
    Error,
    ResourceError,
    RevisionCompacted,
    TemplateError,
    WatchUnsupported,
)
from muster.log import kv
from muster.registry.guard import Guards
from muster.registry.index import DEFAULT_RESOLVER
from muster.resources.render import TemplateCache, render
from muster.resources.spec import ResourceSpec, load_resources
from muster.resources.sync import SyncOptions, SyncResult, apply
from muster.status import Status

__all__ = ["Clock", "Daemon", "Observer", "Sink", "Sleep", "config_diff", "minimal_prefixes"]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

BACKOFF_START = 0.05
BACKOFF_MAX = 1.0  # a restarted etcd must be noticed well within a second
INLINE_RENDER_MS = 5.0  # renders that took less last time run on the event loop itself
RETRY_FAILED_START = 1.0  # a batch with a failed resource runs again after this, doubling...
RETRY_FAILED_MAX = 30.0  # ...up to this: a lasting failure costs a check twice a minute
NAMES_REFRESH = 2.0  # how often stale DNS names of rendered servers are looked up again
UNRENDERED_MAX = 4_096  # changed keys remembered for a resource not rendered (the renderer redoes more)


def config_diff(old: bytes | None, new: bytes, limit: int = 256 * 1024) -> str:
    """A short unified diff of a resource's file for the dashboard's events; a summary
    when either side is large (difflib is quadratic) or unknown (the first render)."""
    new_lines = new.count(b"\n")
    if old is None:
        return f"first render in this daemon: {new_lines} lines"
    old_lines = old.count(b"\n")
    if len(old) > limit or len(new) > limit:
        return f"{old_lines} -> {new_lines} lines (too large to diff here)"
    lines = difflib.unified_diff(
        old.decode(errors="replace").splitlines(), new.decode(errors="replace").splitlines(), lineterm="", n=1
    )
    return "\n".join(list(lines)[2:200])


def _group_by_keys(specs: Sequence[ResourceSpec]) -> dict[tuple[str, ...], list[ResourceSpec]]:
    groups: dict[tuple[str, ...], list[ResourceSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.prefixed_keys, []).append(spec)
    return groups


def minimal_prefixes(prefixes: Sequence[str]) -> list[str]:
    """Drop prefixes already covered by another (``/a`` covers ``/a/b``), keeping order stable."""
    roots = sorted({p.rstrip("/") or "/" for p in prefixes})
    kept: list[str] = []
    for root in roots:
        if any(k == "/" or root == k or root.startswith(k + "/") for k in kept):
            continue
        kept.append(root)
    return kept


class Sink(Protocol):
    """Something fed every snapshot of ``prefixes`` before files render (the Lua data plane).

    ``apply`` raises ``muster.errors.Error`` when it cannot deliver; ``run`` is a background
    task for the life of watch mode (e.g. noticing that nginx restarted).
    """

    @property
    def prefixes(self) -> tuple[str, ...]: ...

    async def apply(self, values: Mapping[str, str]) -> None: ...

    async def run(self) -> None: ...


class Observer(Protocol):
    """Something shown each batch's values under ``root``, when the batch read them anyway."""

    @property
    def root(self) -> str: ...

    async def apply(self, values: Mapping[str, str]) -> None: ...

    async def apply_changes(self, changes: Mapping[str, str | None]) -> None: ...


class Daemon:
    """Runs the resources of ``config`` against ``backend``; one method per confd mode."""

    def __init__(
        self,
        config: Config,
        backend: Backend,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        diff_out: TextIO | None = None,
        sinks: Sequence[Sink] = (),
        dataplane: str | None = None,
        status: Status | None = None,
        settle_heap: Callable[[], None] | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.config = config
        #: Fed the values of its ``root`` whenever a batch reads them (for the dashboard).
        self.observer = observer
        self._observed = False  # whether the observer holds the last view of its root
        #: Called after a batch with a long render (``daemon.heap.settle`` in ``muster confd``).
        self.settle_heap = settle_heap
        self.status = status
        self.sinks = list(sinks)
        self.backend = backend
        self.clock = clock
        self.sleep = sleep
        self.specs: list[ResourceSpec] = []
        self.opts = SyncOptions(
            noop=config.noop,
            sync_only=config.sync_only,
            keep_stage_file=config.keep_stage_file,
            check_timeout=config.check_timeout,
            reload_timeout=config.reload_timeout,
            diff_out=diff_out,
        )
        self.batches = 0
        # With a data plane sink, templates render membership-blind ({{dataplane}} is not "reload").
        mode = dataplane or (DataPlaneMode.LUA if self.sinks else DataPlaneMode.RELOAD).value
        #: The panic guards of every template view and sink (``muster.registry.guard``).
        self.guards = Guards(guard_settings(config), clock=clock)
        self._templates = TemplateCache(dataplane=mode, guards=self.guards)
        for sink in self.sinks:
            if hasattr(sink, "guard"):
                sink.guard = self.guards.new()
        self._guard_changed = asyncio.Event()
        # What ``_follow_guard`` last read of the guards (and whether it waits for the batch
        # it forced): a batch that leaves them so need not wake it (a batch per change).
        self._guard_seen: float | None = None
        self._guard_forced = False
        self._views: dict[tuple[str, ...], View] = {}  # each key set's values (daemon.views)
        # resource -> the key set and view generation it was last applied from
        self._applied: dict[str, tuple[ResourceSpec, tuple[str, ...], int]] = {}
        # resource -> the keys of its view changed since it last rendered (None: unknown)
        self._unrendered: dict[str, tuple[tuple[str, ...], set[str] | None]] = {}
        self._render_ms: dict[str, float] = {}
        self._cursors: dict[int, Cursor] = {}  # id(sink) -> where its change log reads resume
        self._contents: dict[str, bytes] = {}  # last applied file per resource, for the status's diffs
        self._first_pending: float | None = None  # when the change the next batch serves came
        self._feeding = asyncio.Lock()  # one change-log feed at a time: its cursor moves on
        self._sinks_due = asyncio.Event()
        # watch-mode state shared by the watcher and the processor
        self._dirty = asyncio.Event()
        self._batch_done = asyncio.Event()  # set whenever the processor finishes with a dirty mark
        self._synced = asyncio.Event()
        self._hup = asyncio.Event()
        self._synced_rev: int | None = None
        self._last_change = 0.0
        self._last_batch_end: float | None = None
        # Reload pacing (see the module docstring): when the last reload ran, the hold that
        # keeps the reloading resources back, how many batches it has seen, and its end.
        self._last_reload: float | None = None
        self._hold: asyncio.Task[None] | None = None
        self._held_since = 0.0
        self._held_changes = 0
        self._hold_over = False
        self._trigger = "start"
        self._retry: asyncio.Task[None] | None = None
        self._retry_backoff = Backoff(RETRY_FAILED_START, RETRY_FAILED_MAX, jitter=False)

    # -- resources -----------------------------------------------------------------------------

    def load(self) -> list[Failure]:
        """(Re-)read conf.d; bad files are logged and returned, the good ones replace ``specs``."""
        specs, errors = load_resources(
            self.config.resource_dir, self.config.template_dir, global_prefix=self.config.prefix
        )
        for err in errors:
            logger.error(kv("resource.load.failed", error=err))
        if not specs and not errors:
            logger.warning(
                kv("resources.none", dir=self.config.resource_dir, note="nothing to keep up to date")
            )
        elif [s.name for s in specs] != [s.name for s in self.specs]:
            logger.info(kv("resources.loaded", count=len(specs), names=",".join(s.name for s in specs)))
        self.specs = specs
        return [Failure(str(e).split(":", 1)[0], e) for e in errors]

    # -- one batch -----------------------------------------------------------------------------

    async def process(self, specs: Sequence[ResourceSpec] | None = None) -> BatchReport:
        """Snapshot, render and apply every resource once; never raises for a resource's failure.

        The steps: feed the sinks (membership first), read each distinct key set (from the
        change log where it can answer, see ``daemon.views``), render its resources, apply
        the rendered files as one batch (``resources.sync.apply``), record the outcome.
        """
        specs = self.specs if specs is None else specs
        started = self.clock()
        report = BatchReport()
        # A periodic resync exists to catch what a watch missed: it reads in full, and skips
        # the resources whose values it finds unchanged.
        resync = self._trigger == "resync"
        full_renders = self._templates.full_renders()
        revisions: list[int | None] = []
        for sink in self.sinks:
            # Membership first: a new service's servers are in place before its location loads.
            # Its revision counts like a resource's: the watch resumes from the oldest one,
            # so a change landing between this read and the resources' reads comes again.
            revision, values = await self._feed(sink, report)
            revisions.append(revision)
            if values is not None and self._covers(sink.prefixes):
                await self._observe(values, None)
        rendered: list[tuple[ResourceSpec, bytes]] = []
        used: dict[str, tuple[tuple[str, ...], int]] = {}  # resource -> the view generation rendered
        for keys, members in _group_by_keys(specs).items():
            read = await self._read(keys, members, report, resync=resync)
            if read is None:
                continue
            revisions.append(read.view.revision)
            if self._covers(keys):
                # What the batch read anyway: the dashboard costs no read of its own.
                await self._observe(read.view.values, read.changed)
            for spec in members:
                content = await self._render_member(spec, read, report, skip_unchanged=resync)
                if content is not None:
                    used[spec.name] = (keys, read.view.generation)
                    rendered.append((spec, content))
        results = await apply(rendered, self.opts)
        self._record(results, used, report, {spec.name: content for spec, content in rendered})
        if self._settle_due(full_renders, rendered):
            assert self.settle_heap is not None
            self.settle_heap()
        known = [r for r in revisions if r is not None]
        report.revision = min(known) if known and len(known) == len(revisions) else None
        self._report(specs, report, started, max(known) if known else None)
        return report

    async def _observe(self, values: Mapping[str, str], changed: Collection[str] | None) -> None:
        """Show the observer ``values`` (whole, or only the ``changed`` keys when it holds the
        view they changed from)."""
        assert self.observer is not None
        if changed is None or not self._observed:
            await self.observer.apply(values)
            self._observed = True
        elif changed:
            await self.observer.apply_changes({key: values.get(key) for key in changed})

    def _covers(self, prefixes: Sequence[str]) -> bool:
        """Whether a read of ``prefixes`` holds everything under the observer's root."""
        if self.observer is None:
            return False
        root = self.observer.root
        return any(p.rstrip("/") in ("", root) or root.startswith(p.rstrip("/") + "/") for p in prefixes)

    def _settle_due(self, full_renders: int, rendered: Sequence[tuple[ResourceSpec, bytes]]) -> bool:
        """A long render from scratch ran (it left the objects ``daemon.heap`` freezes); a
        long incremental one (a template calling ``services``) is no reason to scan the heap."""
        return (
            self.settle_heap is not None
            and self._templates.full_renders() > full_renders
            and any(self._render_ms.get(spec.name, 0.0) >= SETTLE_AFTER_RENDER_MS for spec, _ in rendered)
        )

    async def _read(
        self, keys: tuple[str, ...], members: Sequence[ResourceSpec], report: BatchReport, *, resync: bool
    ) -> Read | None:
        """The values of ``keys`` now, from the change log when it can answer and this is no
        ``resync``; None when the backend failed."""
        view = self._views.get(keys)
        read = None if resync else follow(view, self.backend, keys)
        if read is None:
            try:
                snapshot = await self.backend.get_values(list(keys))
            except BackendError as exc:
                logger.error(kv("backend.read.failed", keys=",".join(keys), error=exc))
                report.backend_error = exc
                report.failures.extend(Failure(s.name, exc) for s in members)
                return None
            read = reread(view, snapshot, self.backend, keys, diff_all=resync)
        self._views[keys] = read.view
        self._note_changes(keys, members, read.changed)
        level = logging.INFO if read.count else logging.DEBUG
        if logger.isEnabledFor(level):  # a batch per change: build no line nobody reads
            logger.log(
                level,
                kv(
                    "backend.snapshot",
                    keys=",".join(keys),
                    revision=read.view.revision,
                    count=len(read.view.values),
                    changed=read.count,
                    changes=read.summary,
                ),
            )
        return read

    def _note_changes(
        self, keys: tuple[str, ...], members: Sequence[ResourceSpec], changed: Collection[str] | None
    ) -> None:
        """Add ``changed`` to what each resource reading ``keys`` has not rendered yet, held
        ones included (the view moved on without them); None: unknown from now on."""
        for spec in [*self.specs, *members]:
            if spec.prefixed_keys != keys:
                continue
            entry = self._unrendered.get(spec.name)
            if entry is None or entry[0] != keys or entry[1] is None:
                continue  # never rendered from this view, or unknown already: the renderer diffs
            if changed is None or len(entry[1]) + len(changed) > UNRENDERED_MAX:
                self._unrendered[spec.name] = (keys, None)
            else:
                entry[1].update(changed)

    async def _render_member(
        self, spec: ResourceSpec, read: Read, report: BatchReport, *, skip_unchanged: bool
    ) -> bytes | None:
        """Render ``spec`` over the view; None when it failed (logged, in ``report``), or when
        ``skip_unchanged`` and the view is the very one it was last applied from."""
        keys = spec.prefixed_keys
        if skip_unchanged and self._applied.get(spec.name) == (spec, keys, read.view.generation):
            return None
        self._applied.pop(spec.name, None)
        entry = self._unrendered.get(spec.name)
        changed = entry[1] if entry is not None and entry[0] == keys else None
        try:
            if self._render_ms.get(spec.name, INLINE_RENDER_MS) < INLINE_RENDER_MS:
                # A quick render costs less than a hop to a worker thread and back.
                return self._render(spec, read.view.values, changed)
            # A long one runs off the loop so the watch and signals stay served (the view
            # changes only in this task, which awaits the render).
            return await asyncio.to_thread(self._render, spec, read.view.values, changed)
        except (TemplateError, ResourceError) as exc:
            logger.error(
                kv(
                    "resource.render.failed",
                    resource=spec.name,
                    src=spec.src,
                    error=exc,
                    note="dest left unchanged",
                )
            )
            report.failures.append(Failure(spec.name, exc))
            return None

    def _record(
        self,
        results: Sequence[SyncResult],
        used: Mapping[str, tuple[tuple[str, ...], int]],
        report: BatchReport,
        contents: Mapping[str, bytes],
    ) -> None:
        """Note what the batch applied: the reload time for pacing, and each resource's outcome
        (in the status too, with the file's diff for the dashboard)."""
        if any(r.changed and r.spec.reload_cmd for r in results) and not self.opts.noop:
            self._last_reload = self.clock()
        for result in results:
            if self.status is not None:
                name = result.spec.name
                content = contents[name]
                previous = self._contents.get(name)
                if result.changed and result.error is None:
                    self._contents[name] = content
                self.status.applied(
                    name,
                    changed=result.changed,
                    reloaded=result.reloaded,
                    error=None if result.error is None else str(result.error),
                    diff=config_diff(previous, content) if result.changed else result.diff,
                    rolled_back=result.rolled_back,
                )
            if result.error is not None:
                report.failures.append(Failure(result.spec.name, result.error))
            else:
                self._applied[result.spec.name] = (result.spec, *used[result.spec.name])
            report.changed += result.changed

    def _report(
        self, specs: Sequence[ResourceSpec], report: BatchReport, started: float, newest: int | None
    ) -> None:
        """Count the batch, log it and record it in the status."""
        self.batches += 1  # counted when done, so tests can wait for a finished batch
        if self._guard_forced or self.guards.next_deadline() != self._guard_seen:
            self._guard_changed.set()
        seconds = self.clock() - started
        logger.info(
            kv(
                "batch.complete",
                trigger=self._trigger,
                resources=len(specs),
                changed=report.changed,
                failed=len(report.failures),
                revision=report.revision,
                duration_ms=round(seconds * 1000, 1),
            )
        )
        if self.status is not None:
            failures = {f.resource: str(f.error) for f in report.failures}
            if len(specs) < len(self.specs):
                # A batch without the held resources: their last outcome stands.
                ran = {s.name for s in specs} | {"dataplane"}
                failures = {**{k: v for k, v in self.status.errors.items() if k not in ran}, **failures}
            self.status.record(
                failures=failures,
                changed=report.changed,
                revision=newest,
                backend_failed=report.backend_error is not None,
                seconds=seconds,
            )

    async def _feed(self, sink: Sink, report: BatchReport) -> tuple[int | None, Mapping[str, str] | None]:
        """Give ``sink`` its keys (or what changed in them); return their revision, and the
        values when a whole snapshot was read (a change log's feed reads none)."""
        fed = await self._feed_changes(sink, report)
        if fed is not False:
            return fed, None
        try:
            snapshot = await self.backend.get_values(list(sink.prefixes))
        except BackendError as exc:
            logger.error(kv("backend.read.failed", keys=",".join(sink.prefixes), error=exc))
            report.backend_error = exc
            report.failures.append(Failure("dataplane", exc))
            return None, None
        try:
            await sink.apply(snapshot.values)
        except Error as exc:
            logger.error(kv("dataplane.apply.failed", error=exc, note="retried at the next change"))
            report.failures.append(Failure("dataplane", exc))
        return snapshot.revision, snapshot.values

    async def _feed_changes(self, sink: Sink, report: BatchReport) -> int | None | Literal[False]:
        """Feed ``sink`` from the backend's change log; False when either cannot."""
        apply_changes = getattr(sink, "apply_changes", None)
        if apply_changes is None or not isinstance(self.backend, ChangeLog):
            return False
        async with self._feeding:
            changes = self.backend.changes(list(sink.prefixes), self._cursors.get(id(sink)))
            if changes is None:
                self._cursors.pop(id(sink), None)
                return False
            # The sink's state moves on even when its push fails (it pushes in full next time);
            # only a sink that raised something else may have lost it: read everything then.
            self._cursors.pop(id(sink), None)
            try:
                if changes.full:
                    await sink.apply(cast(Mapping[str, str], changes.values))
                else:  # even with no change: the panic guard's holds end inside it
                    await apply_changes(changes.values)
            except Error as exc:
                logger.error(kv("dataplane.apply.failed", error=exc, note="retried at the next change"))
                report.failures.append(Failure("dataplane", exc))
            self._cursors[id(sink)] = changes.cursor
            return changes.revision

    async def _feed_sinks_early(self) -> None:
        """Give the sinks each change the watcher sees from the change log, without waiting
        for the batch (which feeds them too, and renders files after); forever."""
        while True:
            await self._sinks_due.wait()
            self._sinks_due.clear()
            report = BatchReport()
            for sink in self.sinks:
                await self._feed_changes(sink, report)

    def _render(
        self, spec: ResourceSpec, values: Mapping[str, str], changed: Collection[str] | None = None
    ) -> bytes:
        started = time.perf_counter()
        try:
            source = spec.src.read_bytes()
        except OSError as exc:
            raise ResourceError(f"cannot read template {spec.src}: {exc.strerror or exc}") from exc
        try:
            content = render(spec, values, source, self._templates, changed)
            if self.status is not None:
                self.status.rendered(spec.name)
        finally:
            # The renderer has followed on to ``values`` (even when the template failed).
            self._unrendered[spec.name] = (spec.prefixed_keys, set())
        elapsed_ms = (time.perf_counter() - started) * 1000
        self._render_ms[spec.name] = elapsed_ms
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                kv(
                    "resource.render.complete",
                    resource=spec.name,
                    bytes=len(content),
                    duration_ms=round(elapsed_ms, 2),
                )
            )
        return content

    # -- modes ---------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Process every resource once; log EVERY failure; return the worst exit code (0 if none)."""
        self._trigger = "onetime"
        failures = self.load()
        report = await self.process()
        failures += report.failures
        for failure in failures:
            logger.error(kv("resource.failed", resource=failure.resource, error=failure.error))
        if failures:
            logger.error(
                kv("onetime.failed", failed=len(failures), resources=",".join(f.resource for f in failures))
            )
        return max((f.error.exit_code for f in failures), default=0)

    async def run_interval(self) -> None:
        """confd's default mode: re-read conf.d, process everything, sleep ``interval``; forever.

        A conf.d that cannot be read at start is a ``ConfigError``; later it is logged and the
        files stay as they are until it is back.
        """
        self.load()
        while True:
            self._trigger = "interval"
            await self.process()
            await self._sleep_or_hup(self.config.interval)
            try:
                self.load()
            except ConfigError as exc:
                logger.error(kv("resources.load.failed", error=exc))

    async def run_watch(self) -> None:
        """Watch the union of all resources' keys and apply changes as described above; forever."""
        self.load()
        self._mark_dirty("start")
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._processor(), name="muster-processor")
                tg.create_task(self._watcher(), name="muster-watcher")
                tg.create_task(self._follow_names(), name="muster-dns-follow")
                tg.create_task(self._follow_guard(), name="muster-guard")
                for sink in self.sinks:
                    tg.create_task(sink.run(), name="muster-sink")
                if self.sinks:
                    tg.create_task(self._feed_sinks_early(), name="muster-sink-feed")
        finally:
            for task in (self._retry, self._hold):
                if task is not None:
                    task.cancel()

    async def _sleep_or_hup(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._hup.wait()
        if self._hup.is_set():
            logger.info(kv("resources.reload", reason="SIGHUP"))
        self._hup.clear()

    def accept_removals(self) -> None:
        """SIGUSR1: apply every removal the panic guard holds, now."""
        logger.warning(kv("guard.accept", held=sum(self.guards.held().values()), by="SIGUSR1"))
        self.guards.accept()
        self._force_render("accept")

    def _force_render(self, trigger: str) -> None:
        if self._dirty.is_set() and self._trigger == "resync":
            self._trigger = trigger  # a resync skips unchanged values: this must render
        self._mark_dirty(trigger)

    async def _follow_guard(self) -> None:
        """Run a batch when the earliest hold of the panic guard ends (its removal applies)."""
        forced: float | None = None
        while True:
            deadline = self._guard_seen = self.guards.next_deadline()
            if deadline is not None and deadline == forced:
                deadline = None  # no render updated that guard (its resource is gone): do not spin
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._guard_changed.wait()
            if self._guard_changed.is_set():
                self._guard_changed.clear()  # a batch ran: the deadlines may have moved
            else:
                forced = deadline
                self._force_render("guard")
                self._guard_forced = True
                await self._guard_changed.wait()  # for that batch, not to spin meanwhile
                self._guard_forced = False

    def hangup(self) -> None:
        """SIGHUP: re-read conf.d and everything now."""
        self._hup.set()

    # -- watch mode internals ------------------------------------------------------------------

    def _mark_dirty(self, trigger: str) -> None:
        now = self.clock()
        if not self._dirty.is_set():
            self._trigger = trigger
            self._first_pending = now  # the change the status's "change -> applied" times
        self._last_change = now
        self._dirty.set()

    def _watch_prefixes(self) -> list[str]:
        keys = [k for spec in self.specs for k in spec.prefixed_keys]
        return minimal_prefixes(keys + [p for sink in self.sinks for p in sink.prefixes])

    async def _processor(self) -> None:
        backoff = Backoff(BACKOFF_START, BACKOFF_MAX, jitter=False)
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            specs = self._due_specs()
            if specs is None:
                self._batch_done.set()
                continue  # only held resources would run: the hold's end runs them
            partial = len(specs) < len(self.specs)
            trigger, pending = self._trigger, self._first_pending
            try:
                report = await self.process(specs)
            except Exception as exc:  # a bug must not stop the daemon: log it, retry
                logger.exception(kv("batch.crashed", error=exc))
                if self.status is not None:
                    self.status.crash(exc)
                report = BatchReport(backend_error=BackendError(str(exc)))
            self._last_batch_end = self.clock()
            if self.status is not None and trigger == "change" and pending is not None:
                self.status.change_applied(self._last_batch_end - pending)
            if report.backend_error is not None:
                # The files stay as they are; try again soon, the watcher may wake us earlier.
                log = logger.debug if backoff.failing else logger.warning
                delay = backoff.next()
                log(kv("batch.retry", in_s=round(delay, 2), error=report.backend_error))
                self._batch_done.set()  # before the backoff: a change the watcher reports ends it
                await self._sleep_unless_dirty(delay)
                self._mark_dirty("retry")
                continue
            backoff.reset()
            self._synced_rev = report.revision
            self._synced.set()
            self._batch_done.set()
            if not partial or report.failures:
                # A batch without the held resources says nothing about their failures.
                self._retry_failures(report)

    def _due_specs(self) -> list[ResourceSpec] | None:
        """The resources this batch runs: all of them, or, inside the reload interval, those
        without a ``reload_cmd`` (None when that leaves nothing to do, sinks included)."""
        if self._hold_over:
            self._hold_over = False
            return self.specs
        if self._hold is None:
            reloads = any(spec.reload_cmd for spec in self.specs)
            last = self._last_reload
            if not reloads or last is None or self.clock() >= last + self.config.reload_interval:
                return self.specs
            self._held_since = self.clock()
            self._held_changes = 0
            self._hold = asyncio.create_task(self._hold_reloads(last + self.config.reload_interval))
        self._held_changes += 1
        others = [spec for spec in self.specs if not spec.reload_cmd]
        return others if others or self.sinks else None

    async def _hold_reloads(self, until: float) -> None:
        """Keep the reloading resources back until ``until``; fold a burst beyond it."""
        await self.sleep(max(0.0, until - self.clock()))
        if self._held_changes > 1:
            await self._debounce(self._held_since)
        self._hold = None
        self._hold_over = True
        self._force_render("held")

    async def _sleep_unless_dirty(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if something marks the state dirty meanwhile: a backend
        that comes back reports a change at once, which must not wait out the backoff (after
        etcd regained quorum this cost up to BACKOFF_MAX on top of the convergence)."""
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        dirty = asyncio.ensure_future(self._dirty.wait())
        try:
            await asyncio.wait({sleeper, dirty}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (sleeper, dirty):
                fut.cancel()
            await asyncio.gather(sleeper, dirty, return_exceptions=True)

    def _retry_failures(self, report: BatchReport) -> None:
        """Run the batch again after a capped backoff while a resource fails; a change may run
        one sooner (it renders every resource too), which does not reset the backoff."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if not report.failures:
            self._retry_backoff.reset()
            return
        log = logger.debug if self._retry_backoff.failing else logger.info
        delay = self._retry_backoff.next()
        log(
            kv(
                "batch.retry_failed",
                in_s=delay,
                resources=",".join(sorted({f.resource for f in report.failures})),
            )
        )
        self._retry = asyncio.create_task(self._mark_dirty_after(delay, "retry"))

    async def _mark_dirty_after(self, seconds: float, trigger: str) -> None:
        await self.sleep(seconds)
        self._mark_dirty(trigger)

    async def _follow_names(self) -> None:
        """Mark dirty when a DNS name the templates resolved answers anew (the stock template
        renders its addresses: a slow name answering at last, an address that moved), and
        keep the names fresh. The templates resolve through ``DEFAULT_RESOLVER``."""
        loop = asyncio.get_running_loop()
        renamed = asyncio.Event()

        def note(host: str) -> None:  # called in a lookup thread
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody left to tell
                loop.call_soon_threadsafe(renamed.set)

        unsubscribe = DEFAULT_RESOLVER.subscribe(note)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(NAMES_REFRESH):
                        await renamed.wait()
                if renamed.is_set():
                    renamed.clear()
                    self._force_render("dns")
                DEFAULT_RESOLVER.refresh()
        finally:
            unsubscribe()

    async def _debounce(self, first: float) -> None:
        """Wait until changes pause for the window, or ``first`` (the oldest held change) is
        ``debounce_max`` old."""
        began = self.clock()
        while True:
            deadline = min(self._last_change + self.config.debounce_window, first + self.config.debounce_max)
            now = self.clock()
            if now >= deadline:
                logger.debug(
                    kv(
                        "batch.debounced",
                        waited_ms=round((now - began) * 1000, 1),
                        pending_ms=round((now - first) * 1000, 1),
                    )
                )
                return
            await self.sleep(deadline - now)

    async def _watcher(self) -> None:
        await self._synced.wait()
        since = self._synced_rev
        backoff = Backoff(BACKOFF_START, BACKOFF_MAX, jitter=False)
        failing: BackendError | None = None
        while True:
            if self._synced_rev is not None and (since is None or self._synced_rev > since):
                since = self._synced_rev
            prefixes = self._watch_prefixes()
            try:
                outcome, revision = await self._wait_for_change(prefixes, since)
            except WatchUnsupported as exc:
                logger.warning(
                    kv(
                        "watch.unsupported",
                        backend=self.config.backend,
                        error=exc,
                        fallback=f"re-read every {self.config.interval}s",
                    )
                )
                while True:
                    await self._sleep_or_hup(self.config.interval)
                    self.load()
                    self._mark_dirty("interval")
            except RevisionCompacted as exc:
                logger.warning(
                    kv(
                        "watch.compacted",
                        since=since,
                        compact_revision=exc.compact_revision,
                        action="full re-read",
                    )
                )
                self._synced.clear()
                self._mark_dirty("compacted")
                await self._synced.wait()
                since = self._synced_rev
                continue
            except Exception as exc:  # BackendError, or a backend bug: the watch must not die
                delay = backoff.next()
                if failing is None:
                    log = logger.warning if isinstance(exc, BackendError) else logger.exception
                    log(kv("watch.failed", backend=self.config.backend, error=exc, action="retrying"))
                else:
                    logger.debug(kv("watch.retry", error=exc, in_s=round(delay, 2)))
                failing = exc if isinstance(exc, BackendError) else BackendError(str(exc))
                await self.sleep(delay)
                continue
            if failing is not None:
                # Back in touch: re-read everything in case the outage hid something.
                logger.info(kv("watch.recovered", backend=self.config.backend))
                failing = None
                backoff.reset()
                self._mark_dirty("reconnect")
            if outcome == "change":
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(kv("watch.changed", revision=revision))
                if self.status is not None:
                    self.status.watch_changed(revision)
                self._sinks_due.set()
                if revision is not None:
                    since = revision
                self._mark_dirty("change")
                if revision is not None and not self.sinks:
                    await self._batch_taken()
            else:
                logger.info(kv("resources.reload", reason=outcome))
                self._hup.clear()
                try:
                    self.load()
                except ConfigError as exc:
                    logger.error(kv("resources.load.failed", error=exc))
                self._mark_dirty(outcome)

    async def _batch_taken(self) -> None:
        """Wait for the processor to finish the batch in progress, or the one the change just
        reported starts, before asking the backend for more.

        Why: under churn a watch reports a change per message (500/s), each wakeup cost the
        watcher two tasks and a wait, and every one after the first only set ``_dirty``
        again. Asking afterwards, from the revision last reported, loses nothing (a backend
        with revisions reports every later change at once) and wakes the watcher once per
        batch. Not with sinks (their early feed wants every change at once) nor for a
        backend without revisions (its ``wait_changed`` waits for the next change from now).
        """
        self._batch_done.clear()
        await self._batch_done.wait()

    async def _wait_for_change(self, prefixes: list[str], since: int | None) -> tuple[str, int | None]:
        """("change", rev) from the backend, ("SIGHUP", None), or ("resync", None) on the timer."""
        waiters: dict[asyncio.Future[object], str] = {}
        if prefixes:
            waiters[asyncio.ensure_future(self.backend.wait_changed(prefixes, since))] = "change"
        waiters[asyncio.ensure_future(self._hup.wait())] = "SIGHUP"
        timeout = self.config.resync_interval or None
        try:
            done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in waiters:
                fut.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        for fut in done:
            if waiters[fut] == "change":
                return "change", fut.result()  # type: ignore[return-value]
        if done:
            return "SIGHUP", None
        return "resync", None
