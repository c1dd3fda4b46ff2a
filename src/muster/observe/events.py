"""A bounded log of what the daemon did recently (joins, leaves, rejects, renders, pushes).

The dashboard shows the newest events; a deque keeps memory bounded however busy the
registry is. Each event carries a monotonic ``seq`` so a poller asks only for what is new.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["Event", "EventLog"]


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened: ``kind`` is join, leave, reject, accept, render, reload,
    push or error; ``detail`` a longer text (a config diff summary), possibly empty."""

    seq: int
    time: float
    kind: str
    text: str
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "time": self.time,
            "kind": self.kind,
            "text": self.text,
            "detail": self.detail,
        }


class EventLog:
    """The last ``limit`` events, oldest first."""

    def __init__(self, limit: int = 200, clock: Callable[[], float] = time.time) -> None:
        self._events: deque[Event] = deque(maxlen=limit)
        self._seq = 0
        self._clock = clock

    def add(self, kind: str, text: str, detail: str = "") -> Event:
        self._seq += 1
        # A detail is shown, not stored whole: a diff of a 10 MB config stays a summary.
        event = Event(self._seq, self._clock(), kind, text, detail[:4000])
        self._events.append(event)
        return event

    def since(self, seq: int = 0) -> list[Event]:
        """The events after ``seq`` that are still kept, oldest first."""
        return [e for e in self._events if e.seq > seq]

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def __len__(self) -> int:
        return len(self._events)
