"""The data-plane modes ``-dataplane`` names, in one place."""

from __future__ import annotations

import enum

__all__ = ["DataPlaneMode"]


class DataPlaneMode(enum.StrEnum):
    """How server changes reach the proxy. A ``StrEnum``: flags, TOML and templates see the string."""

    AUTO = "auto"  # lua when an admin endpoint is set and nginx's Lua module is installed, else reload
    LUA = "lua"  # membership pushed into nginx's shared memory: no reload
    HAPROXY = "haproxy"  # servers set through HAProxy's runtime API
    RELOAD = "reload"  # render the config and reload nginx, as confd does

    @classmethod
    def parse(cls, value: str) -> DataPlaneMode:
        """The mode named ``value``; ``ValueError`` naming the choices otherwise."""
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ValueError(f"dataplane must be one of {choices}, not {value!r}") from None
