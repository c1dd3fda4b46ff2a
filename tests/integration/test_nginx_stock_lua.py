"""The stock nginx template in the Lua data plane's mode: valid, and blind to membership."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from muster.dataplane.nginxconf import LuaSettings, http_block, lua_available, main_block
from muster.resources.render import TemplateCache
from muster.stack.nginx import NginxProcess, nginx_available
from muster.stack.stock import STOCK_TEMPLATE, stock_dir
from muster.store import KVStore

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


def test_lua_mode_output_depends_on_services_not_servers() -> None:
    one = render({"/services/web/servers/a": server(1)}, "lua")
    two = render({"/services/web/servers/a": server(1), "/services/web/servers/b": server(2)}, "lua")
    bad = render({"/services/web/servers/a": "not json"}, "lua")
    assert one == two == bad
    assert "upstream svc_" not in one
    assert "set $muster_service web;" in one
    assert one != render({"/services/web/servers/a": server(1), "/services/api/servers/a": server(1)}, "lua")
    assert "upstream svc_web" in render({"/services/web/servers/a": server(1)}, "reload")


def test_lua_mode_config_loads_and_a_service_without_peers_answers_503(nginx: NginxProcess) -> None:
    nginx.dest.write_text(render({"/services/web/servers/a": server(nginx.status_port)}, "lua"))
    nginx.check()
    nginx.reload()
    try:
        urllib.request.urlopen(f"{nginx.url}/web/", timeout=5)
    except urllib.error.HTTPError as exc:
        with exc:
            assert exc.code == 503  # nothing pushed to the balancer yet
    else:
        pytest.fail("expected 503 before any peer was pushed")
