"""Server slots of HAProxy backends: read their state, plan runtime API commands, pre-fill configs.

Pure: no sockets, no files. A backend rendered with ``server-template s 1-N 0.0.0.0:0
disabled`` has N slots named ``s1``..``sN``; a slot holds a peer when it is out of
maintenance, and an address and port were set. Filling or emptying a slot is a handful
of ``set server`` commands, so a change of membership needs no reload.

HAProxy 2.6 restores a slot's state from a ``server-state-file`` on reload except its
address (it keeps that only for servers named by a DNS name, with ``init-addr last``),
so a reload would start every slot empty. ``prefill`` instead writes the live state
into the configuration HAProxy is (re)started with: the new worker starts full.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from muster.dataplane.peers import Peer

__all__ = [
    "MAX_HAPROXY_WEIGHT",
    "Slot",
    "haproxy_weights",
    "parse_servers_state",
    "plan_backend",
    "prefill",
]

MAX_HAPROXY_WEIGHT = 256
# srv_admin_state bits: FMAINT (forced), IMAINT (inherited), RMAINT (resolution). CMAINT
# (0x04, "disabled" in the config) stays set after "state ready" and does not stop traffic.
_MAINT = 0x01 | 0x02 | 0x20


@dataclass(frozen=True, slots=True)
class Slot:
    """One server line of ``show servers state``: ``peer`` is None when the slot is empty."""

    backend: str
    name: str
    peer: Peer | None


def parse_servers_state(text: str) -> list[Slot]:
    """Slots from ``show servers state`` (format version 1); unreadable lines are skipped."""
    slots: list[Slot] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 19 or line.startswith("#"):
            continue
        backend, name, addr, admin, uweight, port = (
            fields[1],
            fields[3],
            fields[4],
            fields[6],
            fields[7],
            fields[18],
        )
        slots.append(Slot(backend, name, _peer(addr, admin, uweight, port)))
    return slots


def _peer(addr: str, admin: str, uweight: str, port: str) -> Peer | None:
    try:
        if int(admin) & _MAINT or int(port) == 0 or ipaddress.ip_address(addr).is_unspecified:
            return None
        return Peer(addr, int(port), max(1, int(uweight)))
    except ValueError:
        return None


def haproxy_weights(peers: Iterable[Peer]) -> list[Peer]:
    """``peers`` sorted, with weights scaled into HAProxy's 1..256 keeping their ratios."""
    unique = sorted(set(peers))
    top = max((p.weight for p in unique), default=1)
    if top <= MAX_HAPROXY_WEIGHT:
        return unique
    return [Peer(p.ip, p.port, max(1, p.weight * MAX_HAPROXY_WEIGHT // top)) for p in unique]


def _addr(peer: Peer) -> tuple[str, int]:
    return (str(ipaddress.ip_address(peer.ip)), peer.port)


def plan_backend(
    backend: str, slots: Sequence[Slot], peers: Sequence[Peer]
) -> tuple[list[str], list[Slot], list[Peer]]:
    """Commands that make ``slots`` hold exactly ``peers``; the slots after them; peers left out.

    A peer already in a slot keeps it (only its weight may change), so established
    connections and the round robin position are not disturbed. New peers take free
    slots in slot order; a slot losing its peer goes to maintenance. Peers beyond the
    slot count are returned as left out (the caller reports them).
    """
    wanted = {_addr(p): p for p in peers}
    commands: list[str] = []
    after: list[Slot] = []
    free: list[Slot] = []
    for slot in slots:
        held = wanted.pop(_addr(slot.peer), None) if slot.peer is not None else None
        if held is None:
            free.append(slot)
            after.append(slot)  # replaced below
            continue
        assert slot.peer is not None
        if held.weight != slot.peer.weight:
            commands.append(f"set server {backend}/{slot.name} weight {held.weight}")
        after.append(Slot(backend, slot.name, held))
    # Order of peers to place: as given (sorted by the caller), so results are stable.
    pending = [p for p in peers if _addr(p) in wanted]
    placed: dict[str, Slot] = {}
    for slot in free:
        target = f"{backend}/{slot.name}"
        if pending:
            peer = pending.pop(0)
            if slot.peer is None or _addr(slot.peer) != _addr(peer):
                commands.append(f"set server {target} addr {peer.ip} port {peer.port}")
            if slot.peer is None or slot.peer.weight != peer.weight:
                commands.append(f"set server {target} weight {peer.weight}")
            if slot.peer is None:
                commands.append(f"set server {target} state ready")
            placed[slot.name] = Slot(backend, slot.name, peer)
        else:
            if slot.peer is not None:
                commands.append(f"set server {target} state maint")
            placed[slot.name] = Slot(backend, slot.name, None)
    result = [placed.get(s.name, s) for s in after]
    return commands, result, pending


_TEMPLATE = re.compile(
    r"^(?P<indent>\s*)server-template\s+(?P<prefix>\S+)\s+(?P<range>\d+(?:-\d+)?)\s+(?P<addr>\S+)(?P<rest>.*)$"
)


def prefill(config: str, slots: Mapping[tuple[str, str], Peer]) -> str:
    """``config`` with each ``server-template`` expanded to ``server`` lines, filled from ``slots``.

    ``slots`` maps ``(backend, server)`` to the peer it holds; other slots are written
    ``disabled`` at the template's address. Everything else is left byte for byte.
    """
    out: list[str] = []
    backend = ""
    for line in config.splitlines(keepends=True):
        words = line.split()
        if words and words[0] in ("backend", "listen") and len(words) > 1:
            backend = words[1]
        elif words and words[0] in ("frontend", "defaults", "global", "peers", "resolvers"):
            backend = ""
        match = _TEMPLATE.match(line.rstrip("\r\n"))
        if not match or not backend:
            out.append(line)
            continue
        first, _, last = match["range"].partition("-")
        lo, hi = (1, int(first)) if not last else (int(first), int(last))
        params = [w for w in match["rest"].split() if w != "disabled"]
        for i in range(lo, hi + 1):
            name = f"{match['prefix']}{i}"
            peer = slots.get((backend, name))
            if peer is None:
                words = [name, match["addr"], *params, "disabled"]
            else:
                host = f"[{peer.ip}]" if ":" in peer.ip else peer.ip
                words = [name, f"{host}:{peer.port}", *params, "weight", str(peer.weight)]
            out.append(f"{match['indent']}server {' '.join(words)}\n")
    return "".join(out)
