"""Service registration: keep ``PREFIX/NAME/servers/ID`` in the registry while a service is healthy."""

from __future__ import annotations
