"""The nginx configuration lines that load muster's Lua balancer and admin endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = ["LUA_MODULES", "LuaSettings", "http_block", "lua_available", "lua_dir", "main_block"]

# Debian's libnginx-mod-http-lua; the Lua module needs NDK loaded first.
LUA_MODULES = (
    Path("/usr/lib/nginx/modules/ndk_http_module.so"),
    Path("/usr/lib/nginx/modules/ngx_http_lua_module.so"),
)
RESTY_CORE = Path("/usr/share/lua/5.1")


def lua_dir() -> Path:
    """Where muster's ``.lua`` files are installed."""
    return Path(str(resources.files("muster.dataplane.nginx") / "lua"))


def lua_available() -> bool:
    """Whether this host's nginx can load the Lua module muster's data plane needs."""
    return all(p.exists() for p in LUA_MODULES) and (RESTY_CORE / "resty" / "core.lua").exists()


@dataclass(frozen=True, slots=True)
class LuaSettings:
    """Balancer tuning, mirroring nginx's own ``max_fails``/``fail_timeout``/``keepalive``."""

    admin_socket: Path
    shared_dict_size: str = "16m"
    rate_limit_dict_size: str = "8m"
    max_fails: int = 1
    fail_timeout: int = 10
    max_tries: int = 3
    keepalive: int = 64
    #: Count requests per service and server (``muster_traffic.lua``); off saves its log phase.
    traffic: bool = True
    #: Holds the traffic counters; a series that does not fit is counted as dropped.
    traffic_dict_size: str = "16m"


def main_block() -> str:
    """``load_module`` lines for the top of nginx.conf (main context)."""
    return "".join(f"load_module {p};\n" for p in LUA_MODULES)


def http_block(settings: LuaSettings) -> str:
    """The ``http {}`` context lines: shared dict, the balancer upstream, the admin server.

    Locations route to a service by setting ``$muster_service`` and proxying to
    ``http://muster_balancer``. The admin server listens only on a unix socket, so
    only processes that can reach the state directory can change membership.
    """
    s = settings
    # The traffic dict is declared even when counting is off, so the admin endpoint answers.
    start = '    require("muster_traffic").start()\n' if s.traffic else ""
    log = 'log_by_lua_block { require("muster_traffic").log() }\n' if s.traffic else ""
    return f"""\
lua_package_path "{lua_dir()}/?.lua;{RESTY_CORE}/?.lua;;";
lua_shared_dict muster {s.shared_dict_size};
lua_shared_dict muster_rl {s.rate_limit_dict_size};  # routes' rate limits: LRU, apart from muster's
lua_shared_dict muster_traffic {s.traffic_dict_size};
init_worker_by_lua_block {{
    require("muster_balancer").configure({{max_fails = {s.max_fails}, fail_timeout = {s.fail_timeout},
                                          max_tries = {s.max_tries}}})
{start}}}
{log}upstream muster_balancer {{
    server 0.0.0.1:1;  # placeholder: the Lua balancer picks every peer
    balancer_by_lua_block {{ require("muster_balancer").balance() }}
    keepalive {s.keepalive};
}}
server {{
    listen unix:{s.admin_socket};
    access_log off;
    client_max_body_size 8m;
    client_body_buffer_size 8m;
    location /muster/ {{ content_by_lua_block {{ require("muster_admin").handle() }} }}
}}
"""
