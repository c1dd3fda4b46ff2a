"""muster's own template functions as the daemon binds them, over the stock nginx template."""

from __future__ import annotations

from muster.confd.store import KVStore
from muster.resources.render import TemplateCache
from muster.stack.stock import STOCK_TEMPLATE, stock_dir

VALUES = {
    "/services/web/servers/a": '{"host": "10.0.0.1", "port": 8080}',
    "/services/web/servers/evil": '{"host": "10.0.0.2;\\n}\\nserver { listen 80; }", "port": 80}',
    "/services/api/servers/x": "not json",
}


def render(mode: str) -> str:
    source = (stock_dir() / "templates" / STOCK_TEMPLATE).read_bytes()
    template, slot = TemplateCache(dataplane=mode).get(STOCK_TEMPLATE, source)
    slot.store = KVStore(VALUES)
    return template.execute(None)


def test_stock_template_renders_valid_servers_only() -> None:
    out = render("reload")
    assert "server 10.0.0.1:8080" in out
    assert "10.0.0.2" not in out and "listen 80" not in out
    assert "location /api/" in out and "return 503" in out  # api has no valid server


def test_dataplane_function_reports_the_mode() -> None:
    source = b"{{dataplane}}"
    for mode in ("reload", "lua"):
        template, slot = TemplateCache(dataplane=mode).get("t", source)
        slot.store = KVStore({})
        assert template.execute(None) == mode
