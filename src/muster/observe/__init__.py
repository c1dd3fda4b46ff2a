"""What the daemon shows about itself and nginx: metrics, traffic, recent events, the dashboard.

Pure data and formatting: the status server (``muster.status``) serves it, the daemon and
the data plane feed it. Nothing here opens a socket or reads a file.
"""

from __future__ import annotations

__all__: list[str] = []
