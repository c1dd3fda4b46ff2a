"""Zero-reload data plane: push service membership into a running nginx (Lua balancer).

Structure (which services exist, the template itself) still goes through render, check
and reload; membership (which servers a service has) is pushed to nginx's shared dict
over the admin endpoint, so a server joining or leaving costs no reload.
"""

from __future__ import annotations

from muster.dataplane.nginx.admin import AdminError, LuaAdmin
from muster.dataplane.nginx.pusher import DataPlane
from muster.dataplane.peers import Peer, encode_peers

__all__ = ["AdminError", "DataPlane", "LuaAdmin", "Peer", "encode_peers"]
