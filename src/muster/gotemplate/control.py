"""The executor's control-flow signals: ``{{break}}`` and ``{{continue}}`` unwind as
exceptions, as Go's executor unwinds them with panics (``walkBreak``/``walkContinue``)."""

from __future__ import annotations

__all__ = ["Break", "Continue"]


class Break(Exception):
    """``{{break}}``: unwinds to the innermost ``walk_range`` (Go's walkBreak panic)."""


class Continue(Exception):
    """``{{continue}}``: unwinds to the current iteration (Go's walkContinue panic)."""
