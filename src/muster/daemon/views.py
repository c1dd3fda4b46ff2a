"""The daemon's copy of each key set's values, kept current from a backend's change log.

Why: ``get_values`` hands out a copy of every key (a mirror's snapshot is a dict copy), and
the batch then compared it key by key with the last one, for its log and for the incremental
renderers: work in proportion to the registry, per change (about 100 ms of a change at
10,000 services). With a ``ChangeLog`` backend (the etcd mirrors) a ``View`` is read in full
once and then changed in place by what the log says changed since the view's cursor, so a
batch costs what the change touches, and ``Read.changed`` names the keys for the renderers
(``render(changed=...)``).

When the log cannot answer (a backend without one, no live mirror, a resync) the view is
replaced by a ``get_values`` snapshot and diffed in full, as before (``reread``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from muster.backends.base import Backend, Snapshot
from muster.backends.changefeed import ChangeLog, Cursor
from muster.daemon.report import change_summary, summarize

__all__ = ["Read", "View", "follow", "reread"]


@dataclass(slots=True)
class View:
    """One key set's values at ``revision``; ``generation`` moves whenever they change (what
    the daemon compares to skip unchanged resources); ``cursor`` is where the change log
    resumes (None: the next read must be full)."""

    values: dict[str, str]
    revision: int | None
    generation: int = 0
    cursor: Cursor | None = None


@dataclass(frozen=True, slots=True)
class Read:
    """What one read of a key set found: the view, the keys that may have changed since the
    last read (None: unknown, any may have), and how many did with a bounded list for the log."""

    view: View
    changed: Collection[str] | None
    count: int
    summary: str


def follow(view: View | None, backend: Backend, keys: Sequence[str]) -> Read | None:
    """Advance ``view`` (changed in place) by the backend's change log; None when the backend
    keeps no log or none serves ``keys`` (then ``reread``). Synchronous: one consistent state."""
    if not isinstance(backend, ChangeLog):
        return None
    if view is None:
        changes = backend.changes(list(keys), None)
    elif view.cursor is None:
        # Read in full just before the mirror opened: the log may cover everything since.
        changes = backend.changes(list(keys), None, since=view.revision)
    else:
        changes = backend.changes(list(keys), view.cursor)
    if changes is None:
        return None
    if changes.full or view is None:
        values = {k: v for k, v in changes.values.items() if v is not None}
        count, summary = change_summary(None if view is None else view.values, values)
        generation = 0 if view is None else view.generation + (count > 0)
        fresh = View(values, changes.revision, generation, changes.cursor)
        return Read(fresh, None, count, summary)
    current = view.values
    added: list[str] = []
    removed: list[str] = []
    modified: list[str] = []
    for key, value in changes.values.items():
        before = current.get(key)
        if value is None:
            if before is not None:
                removed.append(key)
                del current[key]
        elif before is None:
            added.append(key)
            current[key] = value
        elif before != value:
            modified.append(key)
            current[key] = value
    count, summary = summarize(added, removed, modified)
    view.revision = changes.revision
    view.cursor = changes.cursor
    view.generation += count > 0
    return Read(view, changes.values.keys(), count, summary)


def reread(
    view: View | None, snapshot: Snapshot, backend: Backend, keys: Sequence[str], *, diff_all: bool = False
) -> Read:
    """Replace ``view`` by ``snapshot`` (read just now, with no await since), diffing it in full
    unless the change log describes exactly that snapshot (its cursor then goes with the new
    view). ``diff_all``: diff in full even then (a resync, which must find what a log missed)."""
    cursor: Cursor | None = None
    candidates: Collection[str] | None = None
    if isinstance(backend, ChangeLog):
        changes = backend.changes(list(keys), None if view is None else view.cursor)
        if changes is not None and changes.revision == snapshot.revision:
            cursor = changes.cursor
            candidates = None if changes.full or diff_all else changes.values.keys()
    old: Mapping[str, str] | None = None if view is None else view.values
    count, summary = change_summary(old, snapshot.values, candidates)
    generation = 0 if view is None else view.generation + (count > 0)
    # ``follow`` changes a view in place: never the snapshot a backend may keep (a mirror's seed).
    values = (
        dict(snapshot.values)
        if cursor is not None or not isinstance(snapshot.values, dict)
        else snapshot.values
    )
    return Read(View(values, snapshot.revision, generation, cursor), candidates, count, summary)
