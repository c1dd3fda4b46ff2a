from __future__ import annotations

from pathlib import Path

from muster.resources.spec import load_resources
from muster.stack.stock import NginxPaths, stock_dir, write_resource, write_resource_general


def test_shipped_resource_is_valid_and_targets_debian_paths() -> None:
    specs, errors = load_resources(stock_dir() / "conf.d", stock_dir() / "templates", global_prefix="")
    assert errors == []
    [spec] = specs
    assert spec.dest == Path("/etc/nginx/conf.d/muster-services.conf")
    assert spec.keys == ("/services",)
    assert "muster nginx-check --conf /etc/nginx/nginx.conf" in (spec.check_cmd or "")
    assert spec.reload_cmd == "muster nginx-reload --pid-file /run/nginx.pid"


def test_written_resources_load_with_their_commands(tmp_path: Path) -> None:
    dest = tmp_path / "odd dir" / 'services "x".conf'
    write_resource(tmp_path / "a", dest, "check {{.src}}", "reload")
    paths = NginxPaths(tmp_path / "nginx.conf", dest, tmp_path / "nginx.pid", tmp_path)
    write_resource_general(tmp_path / "b", paths)
    for confdir in (tmp_path / "a", tmp_path / "b"):
        specs, errors = load_resources(confdir / "conf.d", confdir / "templates", global_prefix="")
        assert errors == []
        assert specs[0].dest == dest
        assert specs[0].src.read_text() == (stock_dir() / "templates" / "services.conf.tmpl").read_text()
    general = load_resources(tmp_path / "b" / "conf.d", tmp_path / "b" / "templates", global_prefix="")[0][0]
    assert "-m muster.nginxctl check --conf" in (general.check_cmd or "")
    assert "--replace {{.dest}} --with {{.src}}" in (general.check_cmd or "")
