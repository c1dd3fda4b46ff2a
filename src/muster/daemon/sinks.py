"""Choose the data plane a daemon runs with, from its configuration."""

from __future__ import annotations

import logging

from muster.config import Config
from muster.dataplane.haproxy.plane import haproxy_sink
from muster.dataplane.mode import DataPlaneMode
from muster.dataplane.nginx.admin import LuaAdmin
from muster.dataplane.nginx.conf import lua_available
from muster.dataplane.nginx.pusher import DataPlane
from muster.dataplane.sink import MembershipSink
from muster.log import kv

__all__ = ["build_sink", "lua_sink"]

log = logging.getLogger(__name__)


def lua_sink(config: Config) -> MembershipSink | None:
    """The membership sink for ``-dataplane lua`` (or ``auto`` when it can work), else ``None``.

    ``auto`` picks Lua only when an admin endpoint is configured and this host has the
    Lua module; otherwise it says once why, and server changes go through render and reload.
    """
    if config.dataplane == DataPlaneMode.RELOAD:
        return None
    if config.dataplane == DataPlaneMode.AUTO:
        if not config.dataplane_admin:
            return None
        if not lua_available():
            log.warning(
                kv(
                    "dataplane.lua_unavailable",
                    reason="libnginx-mod-http-lua or lua-resty-core is not installed",
                    fallback="render and reload",
                )
            )
            return None
    plane = DataPlane(LuaAdmin(config.dataplane_admin))
    log.info(kv("dataplane.lua", admin=config.dataplane_admin, root=config.dataplane_root))
    return MembershipSink(plane, config.dataplane_root)


def build_sink(config: Config) -> tuple[MembershipSink | None, str]:
    """The sink for ``config.dataplane`` and the mode templates see through ``{{dataplane}}``.

    ``haproxy`` pushes membership over HAProxy's runtime API at ``-dataplane-admin``;
    ``lua`` and ``auto`` go through ``lua_sink``; anything else renders and reloads.
    """
    if config.dataplane == DataPlaneMode.HAPROXY:
        log.info(kv("dataplane.haproxy", admin=config.dataplane_admin, root=config.dataplane_root))
        return haproxy_sink(config.dataplane_admin, config.dataplane_root), DataPlaneMode.HAPROXY.value
    sink = lua_sink(config)
    return sink, (DataPlaneMode.LUA if sink is not None else DataPlaneMode.RELOAD).value
