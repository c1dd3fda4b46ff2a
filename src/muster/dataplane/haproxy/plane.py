"""Keep the servers HAProxy's backends hold equal to the registry's, over the runtime API.

Theory of operation: each service ``NAME`` is a backend ``svc_NAME`` rendered with N
server slots (``server-template``). ``apply(desired, verify=...)`` has the contract of
``muster.dataplane.DataPlane.apply``: per service, only the ``set server`` commands
that turn its slots into its peers are sent, all in one pipelined batch, so a change
costs one connection. With ``verify`` (the sink's periodic check), while HAProxy's
state is unknown, or while a service waits for its backend, ``show info`` is read
first: a worker pid or start time other than the last one seen means HAProxy was
reloaded or restarted (or muster itself started), so the slots are read back with
``show servers state`` and that, not what muster last sent, is the base of the diff.
A failed batch forgets what HAProxy holds, so the next call re-reads.

A service whose backend does not exist yet (its reload is still to come) is skipped
and filled as soon as the new worker is seen; a service with more peers than slots
gets the first N (sorted) and a warning, since more slots is a change of structure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from muster.dataplane.haproxy.runtime import HAProxyCLI, RuntimeAPIError, parse_info
from muster.dataplane.haproxy.slots import Slot, haproxy_weights, parse_servers_state, plan_backend
from muster.dataplane.peers import Peer
from muster.dataplane.sink import MembershipSink
from muster.log import kv
from muster.registry.index import DEFAULT_ROOT, valid_name

__all__ = ["BACKEND_PREFIX", "HAProxyDataPlane", "RuntimeAPIError", "haproxy_sink"]

log = logging.getLogger(__name__)

BACKEND_PREFIX = "svc_"


class HAProxyDataPlane:
    """Pushes per-service peer lists into HAProxy's backend slots through ``HAProxyCLI``."""

    def __init__(self, cli: HAProxyCLI, *, backend_prefix: str = BACKEND_PREFIX) -> None:
        self.cli = cli
        self.backend_prefix = backend_prefix
        self._identity: tuple[str, str] | None = None  # (worker pid, start time) last seen
        self._slots: dict[str, list[Slot]] = {}  # backend -> its slots as HAProxy holds them
        self._reported: dict[str, tuple[str, int]] = {}  # service -> problem logged once
        self._waiting = False  # some service has no backend yet: look for a new worker

    def __repr__(self) -> str:
        return f"<HAProxyDataPlane {self.cli.path} backends={len(self._slots)}>"

    @property
    def identity(self) -> tuple[str, str] | None:
        """The HAProxy worker the slots were read from: ``(pid, start time)``."""
        return self._identity

    @property
    def admin(self) -> HAProxyCLI:
        """The runtime API client (named as ``DataPlane.admin``, which the sink closes)."""
        return self.cli

    async def apply(
        self,
        desired: Mapping[str, Iterable[Peer]],
        *,
        verify: bool = False,
        only: Collection[str] | None = None,
    ) -> int:
        """Make HAProxy hold ``desired``; return how many services' slots were changed.

        ``only`` (the services that may have changed) is not used: every service is compared.

        Raises ``RuntimeAPIError`` (an ``AdminError``) if HAProxy cannot be reached or
        refuses a command; the next call reads its state again and retries in full.
        """
        started = time.monotonic()
        try:
            if verify or self._identity is None or self._waiting:
                info = parse_info(await self.cli.command("show info"))
                identity = (info.get("Pid", ""), info.get("Start_time_sec", ""))
                if identity != self._identity:
                    await self._read_slots()
                    if self._identity is not None:
                        log.info(kv("dataplane.haproxy.new_worker", pid=identity[0]))
                    self._identity = identity
            changed = await self._push(desired)
        except (RuntimeAPIError, ValueError):
            self._identity = None
            raise
        if changed:
            ms = round((time.monotonic() - started) * 1000, 1)
            log.info(kv("dataplane.push.complete", services=changed, ms=ms))
        return changed

    async def _read_slots(self) -> None:
        text = await self.cli.command("show servers state")
        slots: dict[str, list[Slot]] = {}
        for slot in parse_servers_state(text):
            if slot.backend.startswith(self.backend_prefix):
                slots.setdefault(slot.backend, []).append(slot)
        self._slots = slots

    async def _push(self, desired: Mapping[str, Iterable[Peer]]) -> int:
        commands: list[str] = []
        owners: list[str] = []  # the backend each command belongs to
        planned: dict[str, list[Slot]] = {}
        wanted_backends: set[str] = set()
        self._waiting = False
        for name, peers in desired.items():
            if not valid_name(name):
                self._report(name, "invalid_name", 0)
                continue
            backend = self.backend_prefix + name
            wanted_backends.add(backend)
            slots = self._slots.get(backend)
            if slots is None:
                self._report(name, "no_backend", 0)
                self._waiting = True
                continue
            cmds, after, left_out = plan_backend(backend, slots, haproxy_weights(peers))
            if left_out:
                self._report(name, "slots_full", len(slots))
            else:
                self._reported.pop(name, None)
            if cmds:
                commands += cmds
                owners += [backend] * len(cmds)
                planned[backend] = after
        # Backends of services no longer registered: empty their slots.
        for backend, slots in self._slots.items():
            if backend not in wanted_backends:
                cmds, after, _ = plan_backend(backend, slots, [])
                if cmds:
                    commands += cmds
                    owners += [backend] * len(cmds)
                    planned[backend] = after
        if not commands:
            return 0
        answers = await self.cli.run(commands)
        failed = [(cmd, ans) for cmd, ans in zip(commands, answers, strict=True) if not _ok(ans)]
        if failed:
            cmd, answer = failed[0]
            raise RuntimeAPIError(f"haproxy refused {cmd!r}: {answer} ({len(failed)} commands failed)")
        self._slots.update(planned)
        return len(set(owners))

    def _report(self, name: str, problem: str, slots: int) -> None:
        if self._reported.get(name) == (problem, slots):
            return
        self._reported[name] = (problem, slots)
        if problem == "slots_full":
            log.warning(kv("dataplane.haproxy.slots_full", service=name, slots=slots))
        elif problem == "no_backend":
            log.info(kv("dataplane.haproxy.no_backend", service=name, backend=self.backend_prefix + name))
        else:
            log.warning(kv("dataplane.haproxy.invalid_name", service=name[:64]))

    def forget(self) -> None:
        """Assume nothing about HAProxy's state: the next ``apply`` reads it back."""
        self._identity = None


def haproxy_sink(
    admin_socket: str | Path, root: str = DEFAULT_ROOT, *, verify_interval: float = 2.0
) -> MembershipSink:
    """The daemon's membership sink for HAProxy's runtime API at ``admin_socket`` (``unix:`` optional)."""
    path = str(admin_socket).removeprefix("unix:")
    plane = HAProxyDataPlane(HAProxyCLI(path))
    return MembershipSink(plane, root, verify_interval=verify_interval)


def _ok(answer: str) -> bool:
    # "set server" answers nothing on success, except for addresses ("IP changed from ...",
    # "no need to change the addr ..."); every refusal is some other sentence.
    return answer == "" or answer.startswith(("IP changed from", "no need to change"))
