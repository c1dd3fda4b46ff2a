"""The stock nginx template in the Lua data plane's mode: valid, and blind to membership."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from muster.confd.store import KVStore
from muster.dataplane.nginx.conf import LuaSettings, http_block, lua_available, main_block
from muster.resources.render import TemplateCache
from muster.stack.nginx import NginxProcess, nginx_available
from muster.stack.stock import STOCK_TEMPLATE, stock_dir

pytestmark = [
    pytest.mark.skipif(not nginx_available(), reason="nginx is not installed"),
    pytest.mark.skipif(not lua_available(), reason="libnginx-mod-http-lua is not installed"),
]


def render(values: dict[str, str], mode: str) -> str:
    source = (stock_dir() / "templates" / STOCK_TEMPLATE).read_bytes()
    template, slot = TemplateCache(dataplane=mode).get(STOCK_TEMPLATE, source)
    slot.store = KVStore(values)
    return template.execute(None)


def server(port: int) -> str:
    return json.dumps({"host": "127.0.0.1", "port": port})


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[NginxProcess]:
    settings = LuaSettings(admin_socket=tmp_path / "admin.sock")
    snippets = {"main_snippets": [main_block()], "http_snippets": [http_block(settings)]}
    proc = NginxProcess(tmp_path / "nginx", **snippets)
    with proc:
        yield proc


def test_lua_mode_output_depends_on_neither_services_nor_servers() -> None:
    one = render({"/services/web/servers/a": server(1)}, "lua")
    two = render({"/services/web/servers/a": server(1), "/services/web/servers/b": server(2)}, "lua")
    bad = render({"/services/web/servers/a": "not json"}, "lua")
    other = render({"/services/web/servers/a": server(1), "/services/api/servers/a": server(1)}, "lua")
    assert one == two == bad == other == render({}, "lua")
    assert "upstream svc_" not in one and "muster_balancer" in one
    assert "upstream svc_web" in render({"/services/web/servers/a": server(1)}, "reload")


def status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


async def test_lua_mode_routes_new_services_with_no_reload(nginx: NginxProcess, tmp_path: Path) -> None:
    from muster.dataplane import DataPlane, LuaAdmin
    from muster.dataplane.sink import MembershipSink

    nginx.dest.write_text(render({}, "lua"))
    nginx.check()
    nginx.reload()
    workers = nginx.worker_pids()
    assert status(f"{nginx.url}/web/") == (404, "muster: no such service\n")  # server.conf's answer
    async with LuaAdmin(f"unix:{tmp_path / 'admin.sock'}") as admin:
        sink = MembershipSink(DataPlane(admin))
        # A service whose only entry is invalid is known but has no server: 503.
        await sink.apply({"/services/web/servers/a": "not json"})
        assert status(f"{nginx.url}/web/") == (503, "no server of web is available\n")
        # Its first valid server: routed at once (the status server echoes the path).
        await sink.apply({"/services/web/servers/a": server(nginx.status_port)})
        assert status(f"{nginx.url}/web/.muster/ping")[0] == 200
        assert status(f"{nginx.url}/web/nothing-here")[0] == 404  # the backend's own 404
        await sink.apply({})
        assert status(f"{nginx.url}/web/.muster/ping") == (404, "muster: no such service\n")  # gone
        assert "[error]" not in nginx.log_path.read_text(), "404 and 503 are not errors"
    assert nginx.worker_pids() == workers, "services coming and going must not reload nginx"
