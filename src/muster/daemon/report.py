"""What a batch did: the resources that failed and why, and a bounded summary of what changed."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from muster.errors import BackendError, Error

__all__ = ["BatchReport", "Failure", "KEYS_LOGGED", "change_summary", "summarize"]

KEYS_LOGGED = 20


@dataclass(frozen=True, slots=True)
class Failure:
    """One resource (or resource file) that failed, and why."""

    resource: str
    error: Error


@dataclass(slots=True)
class BatchReport:
    """What one batch did; ``backend_error`` means some snapshot could not be read at all."""

    failures: list[Failure] = field(default_factory=list)
    changed: int = 0
    revision: int | None = None
    backend_error: BackendError | None = None

    @property
    def exit_code(self) -> int:
        return max((f.error.exit_code for f in self.failures), default=0)


def change_summary(
    old: Mapping[str, str] | None, new: Mapping[str, str], candidates: Collection[str] | None = None
) -> tuple[int, str]:
    """How many keys changed, and a bounded ``+added -removed ~modified`` list (keys, never values).

    ``candidates``: the only keys that may differ (a change log's), so the cost follows them.
    """
    if old is None:
        return len(new), "initial"
    if candidates is not None:
        added = [f"+{k}" for k in candidates if k in new and k not in old]
        removed = [f"-{k}" for k in candidates if k in old and k not in new]
        modified = [f"~{k}" for k in candidates if k in new and k in old and old[k] != new[k]]
    else:
        added = [f"+{k}" for k in new.keys() - old.keys()]
        removed = [f"-{k}" for k in old.keys() - new.keys()]
        modified = [f"~{k}" for k, v in new.items() if old.get(k, v) != v]
    changes = sorted(added + removed + modified, key=lambda s: s[1:])
    return len(changes), _bounded(changes)


def summarize(added: Sequence[str], removed: Sequence[str], modified: Sequence[str]) -> tuple[int, str]:
    """``change_summary``'s answer for keys already sorted into added, removed and modified."""
    changes = [f"+{k}" for k in added] + [f"-{k}" for k in removed] + [f"~{k}" for k in modified]
    changes.sort(key=lambda s: s[1:])
    return len(changes), _bounded(changes)


def _bounded(changes: list[str]) -> str:
    text = ",".join(changes[:KEYS_LOGGED])
    if len(changes) > KEYS_LOGGED:
        text += f",...{len(changes) - KEYS_LOGGED} more"
    return text
